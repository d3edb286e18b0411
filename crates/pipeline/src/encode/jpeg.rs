//! JPEG with mozjpeg: baseline (sequential) with optimised Huffman tables,
//! 4:2:0 chroma, the quantisation tables mozjpeg itself defaults to
//! (N. Robidoux's, as in ImageMagick), no trellis quantisation and no
//! progressive scans (see the crate README: trellis saves a further ~5% of
//! bytes at equal SSIM but encodes 3-6x slower; progressive scans save about
//! 2.5% of bytes, at the same pixels, for twice the instructions of a whole
//! JPEG job).
//!
//! Alpha is flattened onto the background first. mozjpeg reports libjpeg
//! errors by panicking; the panic is contained and becomes an error.

use image::DynamicImage;
use mozjpeg::{ColorSpace, Compress};

use super::{contain_panic, flatten};
use crate::PipelineError;

/// Whether trellis quantisation is used (the figures behind this choice are
/// in the crate README).
pub(crate) const TRELLIS: bool = false;

/// Whether the fast mode writes progressive scans (figures in the crate
/// README: the same pixels, 2.5% fewer bytes, twice the work).
pub(crate) const PROGRESSIVE: bool = false;

pub(crate) fn encode(
    image: &DynamicImage,
    quality: u8,
    background: [u8; 3],
) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let q = scaled_quality(quality);
    // Gray and RGB pixels go to libjpeg as they are, without a copy.
    let (space, pixels): (ColorSpace, Vec<u8>) = match image {
        DynamicImage::ImageLuma8(b) => {
            return encode_raw(b.as_raw(), w, h, ColorSpace::JCS_GRAYSCALE, q, TRELLIS)
        }
        DynamicImage::ImageRgb8(b) => {
            return encode_raw(b.as_raw(), w, h, ColorSpace::JCS_RGB, q, TRELLIS)
        }
        DynamicImage::ImageLumaA8(_) => {
            let rgb = flatten(image, background);
            let gray = DynamicImage::ImageRgb8(rgb).to_luma8();
            (ColorSpace::JCS_GRAYSCALE, gray.into_raw())
        }
        _ if image.color().has_alpha() => {
            (ColorSpace::JCS_RGB, flatten(image, background).into_raw())
        }
        _ => (ColorSpace::JCS_RGB, image.to_rgb8().into_raw()),
    };
    encode_raw(&pixels, w, h, space, q, TRELLIS)
}

/// The libjpeg quality for a requested quality. mozjpeg with trellis (what
/// sharp runs) reaches a given SSIM with fewer bits than the fast mode used
/// here, and our quality 80 landed 0.009 SSIM above sharp's at 12% more
/// bytes. Scaling 1-80 onto 1-74 (and 80-100 onto 74-100) puts quality 80
/// at sharp's SSIM on the corpus (+0.001) with 5% fewer bytes (crate README).
pub(crate) fn scaled_quality(quality: u8) -> u8 {
    let q = u32::from(quality.clamp(1, 100));
    let scaled = if q <= 80 {
        (q * LANDING + 40) / 80
    } else {
        LANDING + ((q - 80) * (100 - LANDING) + 10) / 20
    };
    scaled.clamp(1, 100) as u8
}

/// Where the requested quality 80 lands on libjpeg's scale.
const LANDING: u32 = 74;

/// Encodes packed 8-bit pixels. `trellis` selects mozjpeg's full search
/// (trellis quantisation, progressive scans, scan optimisation); without it,
/// libjpeg-turbo's fast settings with mozjpeg's tables and optimised Huffman
/// tables, progressive only when `PROGRESSIVE` says so.
pub(crate) fn encode_raw(
    pixels: &[u8],
    width: usize,
    height: usize,
    space: ColorSpace,
    quality: u8,
    trellis: bool,
) -> Result<Vec<u8>, PipelineError> {
    contain_panic("mozjpeg", || {
        let mut c = Compress::new(space);
        if !trellis {
            c.set_fastest_defaults();
        }
        c.set_size(width, height);
        c.set_quality(f32::from(quality));
        if !trellis {
            let table = mozjpeg::qtable::NRobidoux.scaled(f32::from(quality), f32::from(quality));
            c.set_luma_qtable(&table);
            c.set_chroma_qtable(&table);
        }
        if trellis || PROGRESSIVE {
            c.set_progressive_mode();
        }
        c.set_optimize_coding(true);
        let io = |e: std::io::Error| PipelineError::Encode(format!("mozjpeg: {e}"));
        let mut started = c.start_compress(Vec::new()).map_err(io)?;
        started.write_scanlines(pixels).map_err(io)?;
        started.finish().map_err(io)
    })
}
