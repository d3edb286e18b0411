//! Encoders: pixels to WebP, JPEG, PNG or AVIF bytes, metadata never written.
//!
//! Each codec lives in its own file with one `encode` function; this module
//! only dispatches and prepares pixel layouts (alpha flattening for JPEG).

#[cfg(feature = "avif")]
pub(crate) mod avif;
pub(crate) mod jpeg;
pub(crate) mod png;
mod quality_map;
pub(crate) mod webp;

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Instant;

use image::{DynamicImage, GenericImageView, RgbImage};

use crate::{Format, PipelineError};

/// How to encode one image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeSettings {
    pub format: Format,
    /// 1-100.
    pub quality: u8,
    /// Colour under transparent pixels for formats without alpha.
    pub background: [u8; 3],
    /// Bounds the lossless PNG optimiser.
    pub deadline: Option<Instant>,
}

pub(crate) fn encode(image: &DynamicImage, s: &EncodeSettings) -> Result<Vec<u8>, PipelineError> {
    let quality = s.quality.clamp(1, 100);
    match s.format {
        Format::Jpeg => jpeg::encode(image, quality, s.background),
        Format::Webp => webp::encode(image, quality),
        Format::Png => png::encode(image, quality, s.deadline),
        #[cfg(feature = "avif")]
        Format::Avif => avif::encode(image, quality),
        #[cfg(not(feature = "avif"))]
        Format::Avif => Err(PipelineError::FormatUnavailable("avif")),
    }
}

/// Whether the image has an alpha channel with a pixel that is not opaque.
pub(crate) fn has_transparency(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(b) => b.pixels().any(|p| p.0[1] < 255),
        DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p.0[3] < 255),
        other => other.color().has_alpha(),
    }
}

/// The image as packed 8-bit rows for an encoder that takes RGB or RGBA:
/// RGBA (4 channels) when some pixel is not opaque, else RGB (3). An 8-bit
/// RGB or RGBA image is lent as it is; anything else is converted once.
pub(crate) fn rgb_or_rgba(image: &DynamicImage) -> (Cow<'_, [u8]>, u32) {
    let alpha = has_transparency(image);
    match image {
        DynamicImage::ImageRgb8(b) => (Cow::Borrowed(b.as_raw()), 3),
        DynamicImage::ImageRgba8(b) if alpha => (Cow::Borrowed(b.as_raw()), 4),
        _ if alpha => (Cow::Owned(image.to_rgba8().into_raw()), 4),
        _ => (Cow::Owned(image.to_rgb8().into_raw()), 3),
    }
}

/// The number of distinct RGBA colours, or `None` as soon as there are more
/// than `limit` (a photo stops within its first rows).
pub(crate) fn distinct_colours(image: &DynamicImage, limit: usize) -> Option<usize> {
    let mut seen = HashSet::new();
    for (_, _, p) in image.pixels() {
        if seen.insert(p.0) && seen.len() > limit {
            return None;
        }
    }
    Some(seen.len())
}

/// Composites an image with alpha onto `background` (straight alpha, sRGB
/// values, as browsers show it on a plain page).
pub(crate) fn flatten(image: &DynamicImage, background: [u8; 3]) -> RgbImage {
    let rgba = image.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (d, s) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(s.0[3]);
        for ((d, &v), &bg) in d.0.iter_mut().zip(&s.0[..3]).zip(&background) {
            let mixed = u32::from(v) * a + u32::from(bg) * (255 - a);
            *d = ((mixed + 127) / 255) as u8;
        }
    }
    out
}

/// Runs `f`, turning a panic inside a codec into an error.
pub(crate) fn contain_panic<T>(
    codec: &str,
    f: impl FnOnce() -> Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            Err(PipelineError::Encode(format!("{codec}: {msg}")))
        }
    }
}
