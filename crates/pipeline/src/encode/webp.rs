//! WebP with libwebp (1.6, through libwebp-sys, SSE4.1 code paths on): lossy
//! at effort 2, with the quality mapped so that it spends the bytes cwebp's
//! default effort spends at the requested quality; alpha kept (an alpha
//! channel that is opaque everywhere is dropped). RGB and RGBA pixels are
//! imported straight from the image buffer; the encoded bytes are copied
//! once, out of libwebp's memory writer.

use image::DynamicImage;
use libwebp_sys as wp;

use crate::PipelineError;

/// libwebp's effort (0-6). 2 leaves out the rate-distortion optimisation
/// that 3 and up run: on the corpus it encodes in 0.35-0.54x the time of
/// cwebp's default 4 at the same quality number (0.40x at 80), for 1-7%
/// more bytes, which [`libwebp_quality`] takes back (crate README).
const METHOD: i32 = 2;

/// (requested quality, how much lower libwebp's quality is set) at the
/// points measured: there method 2 gives the corpus's 68 still images the
/// bytes method 4 gives them at the requested quality (within 0.3%; at 80,
/// 0.4% fewer, so that the whole corpus stays at or under sharp's bytes; at
/// 100, 3% fewer: libwebp's top qualities step unevenly). libwebp's own
/// scale steepens between 75 and 80, hence the jump.
const QUALITY_OFFSETS: [(f32, f32); 12] = [
    (0.0, 3.0),
    (30.0, 3.0),
    (40.0, 3.5),
    (50.0, 4.0),
    (60.0, 4.0),
    (70.0, 3.5),
    (75.0, 3.5),
    (80.0, 0.8),
    (85.0, 0.5),
    (90.0, 0.1),
    (95.0, 0.0),
    (100.0, 2.0),
];

/// The libwebp quality for a requested quality: the offset interpolated
/// linearly between the measured points (monotonic: a higher request never
/// maps lower).
pub(crate) fn libwebp_quality(quality: u8) -> f32 {
    let q = f32::from(quality.min(100));
    (q - super::quality_map::interpolate(&QUALITY_OFFSETS, q)).clamp(0.0, 100.0)
}

fn fail(msg: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("webp: {msg}"))
}

pub(crate) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (image.width(), image.height());
    if w > 16383 || h > 16383 {
        return Err(fail(format!("{w}x{h} exceeds 16383 pixels per side")));
    }
    let (pixels, channels) = super::rgb_or_rgba(image);
    encode_pixels(&pixels, w, h, channels as usize, quality)
}

/// Encodes packed RGB (3 channels) or RGBA (4) rows of `w` pixels.
fn encode_pixels(
    pixels: &[u8],
    w: u32,
    h: u32,
    channels: usize,
    quality: u8,
) -> Result<Vec<u8>, PipelineError> {
    let stride = w as usize * channels;
    if pixels.len() != stride * h as usize {
        return Err(fail("pixel buffer size mismatch"));
    }
    // SAFETY: config, picture and writer start in the states libwebp's Init
    // functions define (their ABI versions checked); the import reads exactly
    // `h` rows of `stride` bytes, which `pixels` holds (checked above); the
    // writer outlives WebPEncode through `custom_ptr`, its `mem[..size]` is
    // copied out before WebPMemoryWriterClear, and picture and writer are
    // each freed exactly once on every path.
    unsafe {
        let mut config: wp::WebPConfig = std::mem::zeroed();
        let quality = libwebp_quality(quality);
        if wp::WebPConfigInitInternal(
            &mut config,
            wp::WebPPreset::WEBP_PRESET_DEFAULT,
            quality,
            wp::WEBP_ENCODER_ABI_VERSION as _,
        ) == 0
        {
            return Err(fail("libwebp ABI mismatch"));
        }
        config.lossless = 0;
        config.quality = quality;
        config.method = METHOD;
        config.alpha_compression = 1;
        config.alpha_quality = 100;
        if wp::WebPValidateConfig(&config) == 0 {
            return Err(fail("invalid config"));
        }

        let mut picture: wp::WebPPicture = std::mem::zeroed();
        if wp::WebPPictureInitInternal(&mut picture, wp::WEBP_ENCODER_ABI_VERSION as _) == 0 {
            return Err(fail("libwebp ABI mismatch"));
        }
        picture.width = w as i32;
        picture.height = h as i32;
        let imported = if channels == 4 {
            wp::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride as i32)
        } else {
            wp::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride as i32)
        };
        if imported == 0 {
            wp::WebPPictureFree(&mut picture);
            return Err(fail("out of memory importing pixels"));
        }

        let mut writer: wp::WebPMemoryWriter = std::mem::zeroed();
        wp::WebPMemoryWriterInit(&mut writer);
        picture.writer = Some(wp::WebPMemoryWrite);
        picture.custom_ptr = (&mut writer as *mut wp::WebPMemoryWriter).cast();
        let ok = wp::WebPEncode(&config, &mut picture);
        let error = picture.error_code;
        wp::WebPPictureFree(&mut picture);
        if ok == 0 {
            wp::WebPMemoryWriterClear(&mut writer);
            return Err(fail(format!("{error:?}")));
        }
        let out = std::slice::from_raw_parts(writer.mem, writer.size).to_vec();
        wp::WebPMemoryWriterClear(&mut writer);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::libwebp_quality;

    #[test]
    fn the_quality_map_is_monotonic_and_hits_its_points() {
        let mapped: Vec<f32> = (4..=100).map(libwebp_quality).collect();
        assert!(mapped.windows(2).all(|w| w[1] > w[0]), "{mapped:?}");
        assert_eq!(libwebp_quality(3), 0.0, "the lowest requests clamp to 0");
        assert!((libwebp_quality(80) - 79.2).abs() < 1e-4);
        assert!((libwebp_quality(50) - 46.0).abs() < 1e-4);
        assert_eq!(libwebp_quality(100), 98.0);
        assert_eq!(libwebp_quality(1), 0.0);
    }
}
