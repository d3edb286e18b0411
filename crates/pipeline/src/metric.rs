//! The perceptual score: SSIMULACRA2 (the `fast-ssim2` crate) of an encoded
//! image against the pixels it was encoded from.
//!
//! Both sides are 8-bit sRGB; alpha is flattened onto the background first
//! (the same colour under both), so a score compares what a page shows.
//! Scores run from 100 (identical) down; below 0 is possible for severe
//! damage. The comparison runs in strips of rows, which bounds the metric's
//! own buffers to a few tens of megabytes whatever the image size.

use fast_ssim2::{compute_ssimulacra2_with_config, PixelDescriptor, PixelSlice, Ssimulacra2Config};
use image::{DynamicImage, RgbImage};

use crate::{Limits, PipelineError};

/// The score of two identical images.
pub const MAX_SCORE: f64 = 100.0;

/// Rows per strip (the crate's default interior height).
const STRIP_ROWS: usize = 256;

fn fail(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("ssimulacra2: {e}"))
}

/// Pixels as the metric sees them: RGB, alpha flattened onto `background`.
pub(crate) fn prepare(image: &DynamicImage, background: [u8; 3]) -> RgbImage {
    if image.color().has_alpha() {
        crate::encode::flatten(image, background)
    } else {
        image.to_rgb8()
    }
}

/// SSIMULACRA2 of two prepared images of the same size.
pub(crate) fn score_rgb(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, PipelineError> {
    let (w, h) = reference.dimensions();
    if distorted.dimensions() != (w, h) {
        return Err(PipelineError::Encode(format!(
            "ssimulacra2: sizes differ: {w}x{h} against {}x{}",
            distorted.width(),
            distorted.height()
        )));
    }
    let stride = w as usize * 3;
    fn slice(img: &RgbImage, stride: usize) -> Result<PixelSlice<'_>, PipelineError> {
        let (w, h) = img.dimensions();
        PixelSlice::new(img.as_raw(), w, h, stride, PixelDescriptor::RGB8_SRGB).map_err(fail)
    }
    let (a, b) = (slice(reference, stride)?, slice(distorted, stride)?);
    // Strips need a minimum height; small images go whole.
    let config = if h as usize > 2 * STRIP_ROWS {
        Ssimulacra2Config::strips(STRIP_ROWS)
    } else {
        Ssimulacra2Config::default()
    };
    compute_ssimulacra2_with_config(&a, &b, &config).map_err(fail)
}

/// SSIMULACRA2 of `distorted` against `reference` (same size; alpha
/// flattened onto white). 100 means identical.
pub fn ssimulacra2(
    reference: &DynamicImage,
    distorted: &DynamicImage,
) -> Result<f64, PipelineError> {
    let bg = crate::DEFAULT_BACKGROUND;
    score_rgb(&prepare(reference, bg), &prepare(distorted, bg))
}

/// Decodes both images (with `limits`, EXIF orientation applied) and scores
/// `encoded` against `original`.
pub fn score_bytes(original: &[u8], encoded: &[u8], limits: &Limits) -> Result<f64, PipelineError> {
    let a = crate::decode::decode(original, limits)?.image;
    let b = crate::decode::decode(encoded, limits)?.image;
    ssimulacra2(&a, &b)
}
