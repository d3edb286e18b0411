//! WebP with libwebp (1.6, through libwebp-sys, SSE4.1 code paths on): lossy
//! at the given quality, alpha kept (an alpha channel that is opaque
//! everywhere is dropped). RGB and RGBA pixels are imported straight from
//! the image buffer; the encoded bytes are copied once, out of libwebp's
//! memory writer.

use image::DynamicImage;
use libwebp_sys as wp;

use crate::PipelineError;

/// libwebp's effort (0-6); 4 is cwebp's default.
const METHOD: i32 = 4;

fn fail(msg: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("webp: {msg}"))
}

pub(crate) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (image.width(), image.height());
    if w > 16383 || h > 16383 {
        return Err(fail(format!("{w}x{h} exceeds 16383 pixels per side")));
    }
    let (rgba, rgb);
    let (pixels, channels): (&[u8], usize) = match image {
        DynamicImage::ImageRgb8(b) => (b.as_raw(), 3),
        DynamicImage::ImageRgba8(b) if super::has_transparency(image) => (b.as_raw(), 4),
        _ if super::has_transparency(image) => {
            rgba = image.to_rgba8();
            (rgba.as_raw(), 4)
        }
        _ => {
            rgb = image.to_rgb8();
            (rgb.as_raw(), 3)
        }
    };
    encode_pixels(pixels, w, h, channels, quality)
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
        if wp::WebPConfigInitInternal(
            &mut config,
            wp::WebPPreset::WEBP_PRESET_DEFAULT,
            f32::from(quality),
            wp::WEBP_ENCODER_ABI_VERSION as _,
        ) == 0
        {
            return Err(fail("libwebp ABI mismatch"));
        }
        config.lossless = 0;
        config.quality = f32::from(quality);
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
