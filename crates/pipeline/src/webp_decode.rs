//! Decoding of WebP output with libwebp, so that `quality=auto` and
//! `format=auto` can score their trials: about twice as fast as the
//! pure-Rust decoder the input path uses, and the decoder browsers use
//! (fancy chroma upsampling included), so a score reflects what a page
//! shows. Still images only (what the pipeline's encoder writes); an
//! animation or a damaged file is an error.

use image::{DynamicImage, RgbImage, RgbaImage};
use libwebp_sys as wp;

use crate::PipelineError;

fn fail(what: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("decoding the webp output: {what}"))
}

/// Decodes a still WebP of at most `max_pixels` pixels: RGBA when it has
/// alpha, RGB otherwise.
pub(crate) fn decode(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, PipelineError> {
    // SAFETY: WebPGetFeatures reads at most `bytes.len()` bytes and writes
    // only the features struct, which starts zeroed.
    let features = unsafe {
        let mut f: wp::WebPBitstreamFeatures = std::mem::zeroed();
        let status = wp::WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut f);
        if status != wp::VP8StatusCode::VP8_STATUS_OK {
            return Err(fail(format!("{status:?}")));
        }
        f
    };
    if features.has_animation != 0 {
        return Err(fail("animated"));
    }
    let (w, h) = (
        u32::try_from(features.width).map_err(fail)?,
        u32::try_from(features.height).map_err(fail)?,
    );
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > max_pixels {
        return Err(fail(format!("{w}x{h} pixels")));
    }
    let channels = if features.has_alpha != 0 { 4 } else { 3 };
    let stride = w as usize * channels;
    let mut pixels = vec![0u8; stride * h as usize];
    // SAFETY: the output buffer holds `h` rows of `stride` bytes, which is
    // what libwebp writes for a `w`x`h` picture in that mode (checked
    // against the size it reports); it returns null on any failure.
    let written = unsafe {
        let decode = if channels == 4 {
            wp::WebPDecodeRGBAInto
        } else {
            wp::WebPDecodeRGBInto
        };
        decode(
            bytes.as_ptr(),
            bytes.len(),
            pixels.as_mut_ptr(),
            pixels.len(),
            i32::try_from(stride).map_err(fail)?,
        )
    };
    if written.is_null() {
        return Err(fail("libwebp could not decode it"));
    }
    Ok(if channels == 4 {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, pixels).ok_or_else(|| fail("size"))?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(|| fail("size"))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_encoder_wrote_like_the_input_decoder() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
        }));
        let bytes = crate::encode::webp::encode(&image, 90).unwrap();
        let ours = decode(&bytes, u64::MAX).unwrap();
        assert_eq!((ours.width(), ours.height()), (64, 48));
        assert!(!ours.color().has_alpha());
        let theirs = crate::decode::decode(&bytes, &crate::Limits::default())
            .unwrap()
            .image
            .to_rgb8();
        let diff = ours
            .to_rgb8()
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(diff <= 3, "largest channel difference {diff}");
    }

    #[test]
    fn keeps_alpha_and_refuses_garbage_and_oversize() {
        let image = DynamicImage::ImageRgba8(RgbaImage::from_fn(16, 16, |x, _| {
            image::Rgba([200, 10, 10, (x * 16) as u8])
        }));
        let bytes = crate::encode::webp::encode(&image, 90).unwrap();
        assert!(decode(&bytes, u64::MAX).unwrap().color().has_alpha());
        assert!(decode(&bytes, 255).is_err());
        assert!(decode(b"RIFF\0\0\0\0WEBPVP8 garbage", u64::MAX).is_err());
        assert!(decode(&bytes[..bytes.len() / 2], u64::MAX).is_err());
    }
}
