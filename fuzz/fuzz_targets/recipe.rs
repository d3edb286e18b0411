//! The img2img recipe parser, then its steps on a small image: parsing
//! never fails, and any recipe either processes or is refused with an
//! error (an oversized resize is a limit error, not an allocation).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pixpress_pipeline::{process, recipe, Format, Limits, Options};

/// A 24x16 PNG made once with the pipeline's own lossless encoder.
fn small_png() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| {
        let image = image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([(x * 10) as u8, (y * 15) as u8, ((x + y) * 5) as u8])
        });
        pixpress_pipeline::stages::encode_png_lossless(&image::DynamicImage::ImageRgb8(image))
            .expect("encode the seed image")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = recipe::parse(text);
    if let Some(q) = parsed.quality {
        assert!((1..=100).contains(&q), "quality {q} out of range");
    }
    let format = parsed.format.unwrap_or(Format::Webp);
    if format == Format::Avif {
        return;
    }
    let options = Options {
        format,
        quality: parsed.quality,
        steps: parsed.steps,
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_pixels: 1 << 20,
            max_dimension: 2048,
        },
        ..Options::new(format)
    };
    let _ = process(small_png(), &options);
});
