//! JPEG pixels through libjpeg (mozjpeg's decoder, libjpeg-turbo SIMD code),
//! with corrupt-data warnings treated as errors: libjpeg, like the `image`
//! crate's decoder, would otherwise hand back a picture with grey or smeared
//! blocks for a damaged scan. Harmless warnings (extra bytes before a marker,
//! an unknown JFIF version) are accepted.
//!
//! CMYK: Photoshop and most tools write CMYK inverted (0 = full ink) and mark
//! such files with an Adobe APP14 segment; files without it store ink
//! directly. Ink goes through the embedded CMYK profile when there is one,
//! or the naive conversion otherwise. YCCK is turned into CMYK by libjpeg.

use std::mem;
use std::os::raw::c_int;

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};
use qcms::DataType;

use crate::encode::contain_panic;
use crate::{color, jpeg_markers, PipelineError};

/// Warnings that mean the entropy-coded data is damaged.
const CORRUPT_DATA: [c_int; 4] = [
    mozjpeg_sys::JWRN_HIT_MARKER,
    mozjpeg_sys::JWRN_HUFF_BAD_CODE,
    mozjpeg_sys::JWRN_JPEG_EOF,
    mozjpeg_sys::JWRN_MUST_RESYNC,
];

fn message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: `err` points at the error manager libjpeg was created with;
    // `format_message` writes at most 80 bytes (JMSG_LENGTH_MAX) into the buffer.
    unsafe {
        let err = &*cinfo.err;
        let code = err.msg_code;
        let Some(fmt) = err.format_message else {
            return format!("libjpeg message {code}");
        };
        let mut buffer = [0u8; 80];
        let fmt = mem::transmute::<
            unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &[u8; 80]),
            unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]),
        >(fmt);
        fmt(cinfo, &mut buffer);
        let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    }
}

extern "C-unwind" fn fail_exit(cinfo: &mut jpeg_common_struct) {
    let msg = message(cinfo);
    std::panic::resume_unwind(Box::new(msg));
}

extern "C-unwind" fn strict_emit(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as above, `err` is the live error manager.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && CORRUPT_DATA.contains(&code) {
        let msg = message(cinfo);
        std::panic::resume_unwind(Box::new(msg));
    }
}

fn strict_error_mgr() -> jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of the zeroed struct.
    unsafe {
        let mut err: jpeg_error_mgr = mem::zeroed();
        mozjpeg_sys::jpeg_std_error(&mut err);
        err.error_exit = Some(fail_exit);
        err.emit_message = Some(strict_emit);
        err
    }
}

enum Samples {
    Gray(Vec<u8>),
    Rgb(Vec<u8>),
    Cmyk(Vec<u8>),
}

/// Reads the samples at `scale`/8 of the frame size (libjpeg's DCT scaling:
/// 8 is full size); returns them with the scaled width and height.
fn read(
    input: &[u8],
    width: u32,
    height: u32,
    scale: u8,
) -> Result<(Samples, u32, u32), PipelineError> {
    let invalid = |e: String| PipelineError::InvalidImage(format!("JPEG: {e}"));
    let io = |e: std::io::Error| PipelineError::InvalidImage(format!("JPEG: {e}"));
    let samples = contain_panic("libjpeg", || {
        let mut d = Decompress::builder()
            .with_err(strict_error_mgr())
            .from_mem(input)
            .map_err(io)?;
        if (d.width() as u32, d.height() as u32) != (width, height) {
            return Err(invalid("size differs from the frame header".into()));
        }
        let scale = scale.clamp(1, 8);
        if scale < 8 {
            d.scale(scale);
        }
        let (in_space, n) = (d.color_space(), d.components().len());
        let (out_space, channels) = match (in_space, n) {
            (ColorSpace::JCS_GRAYSCALE, _) => (ColorSpace::JCS_GRAYSCALE, 1),
            (ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK, _) | (_, 4) => (ColorSpace::JCS_CMYK, 4),
            _ => (ColorSpace::JCS_RGB, 3),
        };
        let mut started = d.to_colorspace(out_space).map_err(io)?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started.read_scanlines().map_err(io)?;
        if pixels.len() != w as usize * h as usize * channels {
            return Err(invalid("premature end of data".into()));
        }
        started.finish().map_err(io)?;
        let samples = match channels {
            1 => Samples::Gray(pixels),
            4 => Samples::Cmyk(pixels),
            _ => Samples::Rgb(pixels),
        };
        Ok((samples, w, h))
    });
    // A libjpeg failure is bad data, not an encoder failure.
    samples.map_err(|e| match e {
        PipelineError::Encode(msg) => PipelineError::InvalidImage(msg),
        other => other,
    })
}

/// Decodes to 8-bit gray or RGB, converted to sRGB when a profile is embedded.
/// `scale` (1-8) shrinks on load to `scale`/8 of the frame size (rounded up),
/// which costs a fraction of a full decode; 8 decodes at full size.
pub(crate) fn decode(
    input: &[u8],
    width: u32,
    height: u32,
    scale: u8,
    icc: Option<&[u8]>,
) -> Result<DynamicImage, PipelineError> {
    let (samples, width, height) = read(input, width, height, scale)?;
    let image = match samples {
        Samples::Gray(px) => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, px).expect("sized"))
        }
        Samples::Rgb(px) => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, px).expect("sized"))
        }
        Samples::Cmyk(ink) => {
            let inverted = jpeg_markers::adobe_transform(input).is_some();
            return Ok(DynamicImage::ImageRgb8(cmyk_to_rgb(
                ink, inverted, width, height, icc,
            )));
        }
    };
    Ok(match icc {
        Some(profile) => color::to_srgb(image, profile),
        None => image,
    })
}

fn cmyk_to_rgb(mut ink: Vec<u8>, inverted: bool, w: u32, h: u32, icc: Option<&[u8]>) -> RgbImage {
    if inverted {
        for v in &mut ink {
            *v = 255 - *v;
        }
    }
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    match icc.and_then(|p| color::transform(p, DataType::CMYK, DataType::RGB8)) {
        Some(t) => t.convert(&ink, &mut rgb),
        None => {
            for (d, s) in rgb.chunks_exact_mut(3).zip(ink.chunks_exact(4)) {
                let k = 255 - u32::from(s[3]);
                for (d, &c) in d.iter_mut().zip(&s[..3]) {
                    *d = ((255 - u32::from(c)) * k / 255) as u8;
                }
            }
        }
    }
    RgbImage::from_raw(w, h, rgb).expect("3 bytes per pixel")
}
