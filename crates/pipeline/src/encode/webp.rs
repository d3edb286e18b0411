//! WebP with libwebp: lossy at the given quality, alpha kept (an alpha
//! channel that is opaque everywhere is dropped).

use image::DynamicImage;
use webp::{Encoder, WebPConfig};

use crate::PipelineError;

/// libwebp's effort (0-6); 4 is cwebp's default.
const METHOD: i32 = 4;

pub(crate) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (image.width(), image.height());
    if w > 16383 || h > 16383 {
        return Err(PipelineError::Encode(format!(
            "webp: {w}x{h} exceeds 16383 pixels per side"
        )));
    }
    let mut config =
        WebPConfig::new().map_err(|()| PipelineError::Encode("webp: config".into()))?;
    config.lossless = 0;
    config.quality = f32::from(quality);
    config.method = METHOD;
    config.alpha_compression = 1;
    config.alpha_quality = 100;
    // RGB and RGBA pixels go to libwebp as they are, without a copy.
    let (rgba, rgb);
    let encoder = match image {
        DynamicImage::ImageRgb8(b) => Encoder::from_rgb(b.as_raw(), w, h),
        DynamicImage::ImageRgba8(b) if super::has_transparency(image) => {
            Encoder::from_rgba(b.as_raw(), w, h)
        }
        _ if super::has_transparency(image) => {
            rgba = image.to_rgba8();
            Encoder::from_rgba(rgba.as_raw(), w, h)
        }
        _ => {
            rgb = image.to_rgb8();
            Encoder::from_rgb(rgb.as_raw(), w, h)
        }
    };
    let memory = encoder
        .encode_advanced(&config)
        .map_err(|e| PipelineError::Encode(format!("webp: {e:?}")))?;
    Ok(memory.to_vec())
}
