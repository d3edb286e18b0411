//! PNG: lossy palette quantisation (imagequant, quality mapped like
//! pngquant's `--quality min-max`), then lossless optimisation with oxipng
//! under a time budget. When the palette cannot reach the minimum quality,
//! or the build leaves imagequant out, the PNG is lossless instead.

use std::time::{Duration, Instant};

use image::DynamicImage;
use oxipng::{BitDepth, ColorType, Deflaters, Options, RawImage, RowFilter, StripChunks};

use crate::PipelineError;

#[cfg(feature = "imagequant")]
/// The palette quality range for a requested quality `q`: `q-15 .. q`, so the
/// default 80 is pngquant's `--quality 65-80`.
pub(crate) fn quality_range(q: u8) -> (u8, u8) {
    let max = q.clamp(1, 100);
    (max.saturating_sub(15), max)
}

#[cfg(feature = "imagequant")]
/// imagequant speed (1 slowest - 10 fastest); 4 is pngquant's default.
const QUANT_SPEED: i32 = 4;

/// Above this many pixels oxipng runs one fast trial instead of its search.
const BIG: u64 = 1_000_000;

/// oxipng settings: up to 1 MP its preset 2 (the CLI default: four filter
/// trials, libdeflate level 11). Above, where near-optimal deflate costs
/// seconds, one trial at libdeflate level 9 with the filter that suits the
/// data (none for palette images, per-row minimum sum for true colour): about
/// twice as fast for 10-20% more bytes. The time budget is 0.5 s plus 0.1 s
/// per megapixel, capped at 3 s and never past the caller's deadline (oxipng
/// checks it between trials and keeps the best result so far).
fn oxipng_options(pixels: u64, palette: bool, deadline: Option<Instant>) -> Options {
    let mut opts = Options::from_preset(2);
    if pixels > BIG {
        opts.filter.clear();
        opts.filter.insert(if palette {
            RowFilter::None
        } else {
            RowFilter::MinSum
        });
        opts.deflate = Deflaters::Libdeflater { compression: 9 };
    }
    opts.strip = StripChunks::All;
    opts.optimize_alpha = true;
    let budget = Duration::from_millis((500 + pixels / 10_000).min(3_000));
    let budget = match deadline {
        Some(d) => budget.min(d.saturating_duration_since(Instant::now())),
        None => budget,
    };
    opts.timeout = Some(budget);
    opts
}

pub(crate) fn encode(
    image: &DynamicImage,
    quality: u8,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, PipelineError> {
    #[cfg(feature = "imagequant")]
    if let Some(raw) = quantize(image, quality)? {
        let pixels = u64::from(image.width()) * u64::from(image.height());
        return optimise(&raw, &oxipng_options(pixels, true, deadline));
    }
    #[cfg(not(feature = "imagequant"))]
    let _ = quality;
    encode_lossless(image, deadline)
}

/// Lossless only (no palette search), under the same time budget.
pub(crate) fn encode_lossless(
    image: &DynamicImage,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, PipelineError> {
    let pixels = u64::from(image.width()) * u64::from(image.height());
    optimise(&lossless(image)?, &oxipng_options(pixels, false, deadline))
}

fn fail(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("png: {e}"))
}

fn optimise(raw: &RawImage, opts: &Options) -> Result<Vec<u8>, PipelineError> {
    raw.create_optimized_png(opts).map_err(fail)
}

/// The pixels as they are; oxipng reduces colour type and bit depth itself.
pub(crate) fn lossless(image: &DynamicImage) -> Result<RawImage, PipelineError> {
    let (w, h) = (image.width(), image.height());
    let (color, data) = match image {
        DynamicImage::ImageLuma8(b) => (
            ColorType::Grayscale {
                transparent_shade: None,
            },
            b.as_raw().clone(),
        ),
        DynamicImage::ImageLumaA8(b) => (ColorType::GrayscaleAlpha, b.as_raw().clone()),
        DynamicImage::ImageRgb8(b) => (
            ColorType::RGB {
                transparent_color: None,
            },
            b.as_raw().clone(),
        ),
        other => (ColorType::RGBA, other.to_rgba8().into_raw()),
    };
    RawImage::new(w, h, color, BitDepth::Eight, data).map_err(fail)
}

/// A palette image within the quality range, or `None` when it cannot reach it.
#[cfg(feature = "imagequant")]
fn quantize(image: &DynamicImage, quality: u8) -> Result<Option<RawImage>, PipelineError> {
    use imagequant::RGBA;
    let (w, h) = (image.width(), image.height());
    let (min, max) = quality_range(quality);
    let q = |e: imagequant::Error| PipelineError::Encode(format!("imagequant: {e}"));
    let mut attr = imagequant::new();
    attr.set_speed(QUANT_SPEED).map_err(q)?;
    attr.set_quality(min, max).map_err(q)?;
    let rgba = image.to_rgba8();
    let pixels: Vec<RGBA> = rgba
        .pixels()
        .map(|p| RGBA::new(p.0[0], p.0[1], p.0[2], p.0[3]))
        .collect();
    drop(rgba);
    let mut img = attr
        .new_image(pixels, w as usize, h as usize, 0.0)
        .map_err(q)?;
    let mut result = match attr.quantize(&mut img) {
        Ok(r) => r,
        Err(imagequant::Error::QualityTooLow) => return Ok(None),
        Err(e) => return Err(q(e)),
    };
    result.set_dithering_level(1.0).map_err(q)?;
    let (palette, indices) = result.remapped(&mut img).map_err(q)?;
    let palette = palette
        .into_iter()
        .map(|c| oxipng::RGBA8::new(c.r, c.g, c.b, c.a))
        .collect();
    RawImage::new(
        w,
        h,
        ColorType::Indexed { palette },
        BitDepth::Eight,
        indices,
    )
    .map(Some)
    .map_err(fail)
}
