//! The perceptual score: SSIMULACRA2 (the `fast-ssim2` crate) of an encoded
//! image against the pixels it was encoded from.
//!
//! Both sides are 8-bit sRGB; alpha is flattened onto the background first
//! (the same colour under both), so a score compares what a page shows.
//! Scores run from 100 (identical) down; below 0 is possible for severe
//! damage. Images over a megapixel are compared in strips of rows, which
//! bounds the metric's own buffers to a few tens of megabytes whatever the
//! image size; smaller ones whole, which is about twice as fast.
//!
//! A search scores several encodes against one image: `Reference` converts
//! that image (XYB and the six-scale pyramid) once, and each trial then pays
//! only for its own side.

use fast_ssim2::{
    compute_ssimulacra2_with_config, PixelDescriptor, PixelSlice, Ssimulacra2Config,
    Ssimulacra2Reference,
};
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

fn slice(img: &RgbImage) -> Result<PixelSlice<'_>, PipelineError> {
    let (w, h) = img.dimensions();
    PixelSlice::new(
        img.as_raw(),
        w,
        h,
        w as usize * 3,
        PixelDescriptor::RGB8_SRGB,
    )
    .map_err(fail)
}

fn same_size(reference: (u32, u32), distorted: &RgbImage) -> Result<(), PipelineError> {
    let (w, h) = reference;
    if distorted.dimensions() != (w, h) {
        return Err(PipelineError::Encode(format!(
            "ssimulacra2: sizes differ: {w}x{h} against {}x{}",
            distorted.width(),
            distorted.height()
        )));
    }
    Ok(())
}

/// Images up to this many pixels are compared whole: about twice as fast
/// as in strips (0.08-0.10 s/MP against 0.15-0.17 on a 2 and a 4 MP photo),
/// for working buffers of about 80 bytes a pixel. The search's image (the
/// whole image up to 1 MP, else its sample) is always compared whole.
const WHOLE_MAX_PIXELS: u64 = 1 << 20;

/// Larger images go in strips, which bound the buffers whatever the size.
fn config_for(width: u32, height: u32) -> Ssimulacra2Config<'static> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > WHOLE_MAX_PIXELS && height as usize > 2 * STRIP_ROWS {
        Ssimulacra2Config::strips(STRIP_ROWS)
    } else {
        Ssimulacra2Config::default()
    }
}

/// SSIMULACRA2 of two prepared images of the same size.
pub(crate) fn score_rgb(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, PipelineError> {
    same_size(reference.dimensions(), distorted)?;
    let (a, b) = (slice(reference)?, slice(distorted)?);
    compute_ssimulacra2_with_config(&a, &b, &config_for(reference.width(), reference.height()))
        .map_err(fail)
}

/// An image prepared once for scoring several encodes of it: its colour
/// conversion and pyramid are computed here, not per comparison. It holds
/// the whole image's planes (about 70 bytes a pixel), so it is meant for
/// the search's working image (at most about a megapixel), not for whole
/// large images.
pub struct Reference {
    inner: Ssimulacra2Reference,
    size: (u32, u32),
}

impl Reference {
    /// Prepares `image` (alpha flattened onto `background`).
    pub fn new(image: &DynamicImage, background: [u8; 3]) -> Result<Self, PipelineError> {
        Self::from_rgb(&prepare(image, background))
    }

    pub(crate) fn from_rgb(image: &RgbImage) -> Result<Self, PipelineError> {
        Ok(Self {
            inner: Ssimulacra2Reference::new(&slice(image)?).map_err(fail)?,
            size: image.dimensions(),
        })
    }

    /// The score of `distorted` (same size, alpha flattened onto
    /// `background`) against the reference; equal to `ssimulacra2` on the
    /// same pair.
    pub fn score(
        &self,
        distorted: &DynamicImage,
        background: [u8; 3],
    ) -> Result<f64, PipelineError> {
        self.score_rgb(&prepare(distorted, background))
    }

    pub(crate) fn score_rgb(&self, distorted: &RgbImage) -> Result<f64, PipelineError> {
        same_size(self.size, distorted)?;
        self.inner
            .compare_with_config(&slice(distorted)?, &config_for(self.size.0, self.size.1))
            .map_err(fail)
    }
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

/// Decodes both images (with `limits`, EXIF orientation applied; `encoded`
/// may also be AVIF where AVIF is built) and scores `encoded` against
/// `original`.
pub fn score_bytes(original: &[u8], encoded: &[u8], limits: &Limits) -> Result<f64, PipelineError> {
    let a = crate::decode::decode(original, limits)?.image;
    #[cfg(feature = "avif")]
    if encoded.get(4..12) == Some(b"ftypavif") {
        let b = crate::avif_decode::decode(encoded, limits.max_pixels)?;
        return ssimulacra2(&a, &b);
    }
    let b = crate::decode::decode(encoded, limits)?.image;
    ssimulacra2(&a, &b)
}
