//! Output quality and size rules: SSIM floors at the default quality, the
//! JPEG quality scale, palette PNG bit depths, shrink-on-load geometry.
//! Speed is measured in the benches, never here.

mod common;

use common::{decode_rgba, encode_with_image, fixture, jpeg_q, photo_like};
use image::{DynamicImage, ImageFormat, RgbaImage};
use pixpress_pipeline::{process, Fit, Format, Options, Step};

/// Mean SSIM of the luma of two same-sized images over 8x8 windows (step 4),
/// the usual constants for 8-bit data.
fn ssim(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let luma = |img: &RgbaImage| -> Vec<f64> {
        img.pixels()
            .map(|p| {
                0.299 * f64::from(p.0[0]) + 0.587 * f64::from(p.0[1]) + 0.114 * f64::from(p.0[2])
            })
            .collect()
    };
    let (la, lb) = (luma(a), luma(b));
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut total, mut n) = (0.0, 0usize);
    for y in (0..h.saturating_sub(7)).step_by(4) {
        for x in (0..w.saturating_sub(7)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..8 {
                for dx in 0..8 {
                    let i = (y + dy) * w + x + dx;
                    let (va, vb) = (la[i], lb[i]);
                    sa += va;
                    sb += vb;
                    saa += va * va;
                    sbb += vb * vb;
                    sab += va * vb;
                }
            }
            let m = 64.0;
            let (ma, mb) = (sa / m, sb / m);
            let (va, vb, cov) = (saa / m - ma * ma, sbb / m - mb * mb, sab / m - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            n += 1;
        }
    }
    total / n as f64
}

fn at(format: Format, quality: u8) -> Options {
    Options {
        quality: Some(quality),
        ..Options::new(format)
    }
}

#[test]
fn default_quality_keeps_an_ssim_floor_in_every_format() {
    let photo = fixture("ljt-testorig.jpg");
    let reference = decode_rgba(&photo);
    let generated = photo_like(320, 240);
    let generated_png = encode_with_image(&DynamicImage::ImageRgb8(generated), ImageFormat::Png);
    let generated_ref = decode_rgba(&generated_png);
    for format in [Format::Jpeg, Format::Webp, Format::Png] {
        for (name, input, reference, floor) in [
            ("photo", &photo, &reference, 0.90),
            ("generated", &generated_png, &generated_ref, 0.90),
        ] {
            let out = process(input, &at(format, 80)).unwrap();
            let score = ssim(reference, &decode_rgba(&out.bytes));
            assert!(
                score >= floor,
                "{name} as {}: SSIM {score:.4} below {floor}",
                format.name()
            );
        }
    }
}

#[test]
fn jpeg_quality_scale_is_monotonic_and_reaches_both_ends() {
    let png = encode_with_image(
        &DynamicImage::ImageRgb8(photo_like(256, 192)),
        ImageFormat::Png,
    );
    let sizes: Vec<usize> = [1, 30, 60, 80, 90, 100]
        .iter()
        .map(|&q| process(&png, &at(Format::Jpeg, q)).unwrap().size)
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "bytes must grow with quality: {sizes:?}"
    );
}

/// Bit depth and colour type from the IHDR chunk of a PNG.
fn ihdr(png: &[u8]) -> (u8, u8) {
    assert_eq!(&png[12..16], b"IHDR");
    (png[24], png[25])
}

#[test]
fn palette_pngs_use_the_smallest_bit_depth_and_keep_their_colours() {
    for (colors, depth) in [(2u32, 1u8), (4, 2), (12, 4), (200, 8)] {
        let img = RgbaImage::from_fn(64, 48, |x, y| {
            let i = (x * 7 + y * 13) % colors;
            // Distinct colours; the first one is half transparent.
            let a = if i == 0 { 128 } else { 255 };
            image::Rgba([
                (i * 37 % 256) as u8,
                (i * 91 % 256) as u8,
                (i * 53 % 256) as u8,
                a,
            ])
        });
        let input = encode_with_image(&DynamicImage::ImageRgba8(img.clone()), ImageFormat::Png);
        let out = process(&input, &Options::new(Format::Png)).unwrap();
        if out.kept_original {
            continue; // the input itself was smaller: nothing of ours to check
        }
        assert_eq!(ihdr(&out.bytes), (depth, 3), "{colors} colours");
        if colors <= 16 {
            // Few distinct colours: the palette holds them exactly.
            assert!(decode_rgba(&out.bytes) == img, "{colors} colours changed");
        } else {
            assert_eq!(decode_rgba(&out.bytes).dimensions(), (64, 48));
        }
    }
}

#[test]
fn shrink_on_load_gives_the_size_a_full_decode_gives() {
    let src = photo_like(1999, 1001);
    let jpeg = jpeg_q(&src, 92);
    let png = encode_with_image(&DynamicImage::ImageRgb8(src), ImageFormat::Png);
    for (width, height, fit) in [
        (Some(300), Some(300), Fit::Inside),
        (Some(250), None, Fit::Inside),
        (Some(120), Some(200), Fit::Cover),
        (Some(333), Some(111), Fit::Fill),
    ] {
        let options = Options {
            steps: vec![Step::Resize { width, height, fit }, Step::Grayscale],
            quality: Some(95),
            ..Options::new(Format::Jpeg)
        };
        // The PNG is always decoded at full size: it is the reference.
        let from_jpeg = process(&jpeg, &options).unwrap();
        let from_png = process(&png, &options).unwrap();
        assert_eq!(
            (from_jpeg.width, from_jpeg.height),
            (from_png.width, from_png.height),
            "{width:?}x{height:?} {fit:?}"
        );
        let (a, b) = (decode_rgba(&from_jpeg.bytes), decode_rgba(&from_png.bytes));
        assert_eq!(a.dimensions(), (from_png.width, from_png.height));
        let score = ssim(&a, &b);
        assert!(
            score > 0.95,
            "{width:?}x{height:?} {fit:?}: SSIM {score:.4}"
        );
    }
}
