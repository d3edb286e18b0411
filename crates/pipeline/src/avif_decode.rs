//! Decoding of AVIF output, so that `quality=auto` and `format=auto` can
//! score it: the container with `avif-parse`, the AV1 frame with dav1d
//! (`libdav1d-sys`, built from the crate's own copy of dav1d 1.4 and linked
//! statically), and YCbCr to RGB here.
//!
//! It decodes what the pipeline's AVIF encoder writes and AVIF stills like
//! it: one image, 8, 10 or 12 bits, 4:2:0, 4:2:2, 4:4:4 or monochrome, full
//! or limited range, the usual matrices (BT.601, BT.709, BT.2020, identity),
//! with or without an alpha item (premultiplied or not). Anything else is an
//! error, not a guess. AVIF is not an input format: uploads of AVIF are
//! still refused at sniffing; this is for the pipeline's own output.
//!
//! Chroma is upsampled bilinearly with centred samples (the 9-3-3-1 filter),
//! as libavif's automatic upsampling does, so a score reflects what a
//! browser shows rather than a blockier nearest-sample picture.

use std::mem::MaybeUninit;
use std::ptr;

use image::{DynamicImage, GrayAlphaImage, RgbImage, RgbaImage};
use libdav1d_sys as ffi;

use crate::PipelineError;

fn fail(what: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("decoding the avif output: {what}"))
}

/// Decodes an AVIF still of at most `max_pixels` pixels.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, PipelineError> {
    // The parser debug-asserts on some malformed boxes (then returns an
    // error in release builds): either way it is an error here.
    let avif = crate::encode::contain_panic("avif container", || {
        avif_parse::read_avif(&mut &bytes[..]).map_err(fail)
    })?;
    let colour = decode_frame(&avif.primary_item, max_pixels)?;
    let Some(alpha_item) = avif.alpha_item.as_deref() else {
        return Ok(DynamicImage::ImageRgb8(colour.to_rgb()?));
    };
    let alpha = decode_frame(alpha_item, max_pixels)?;
    if (alpha.width, alpha.height) != (colour.width, colour.height) {
        return Err(fail("the alpha item's size differs from the image's"));
    }
    let alpha = alpha.luma_8bit();
    if colour.layout == Layout::Mono {
        let luma = colour.luma_8bit();
        let pixels = luma
            .iter()
            .zip(&alpha)
            .flat_map(|(&l, &a)| [l, a])
            .collect();
        let img = GrayAlphaImage::from_raw(colour.width, colour.height, pixels)
            .ok_or_else(|| fail("bad buffer size"))?;
        return Ok(DynamicImage::ImageLumaA8(img));
    }
    let rgb = colour.to_rgb()?;
    let mut pixels = Vec::with_capacity(alpha.len() * 4);
    for (px, &a) in rgb.pixels().zip(&alpha) {
        let [r, g, b] = px.0;
        if avif.premultiplied_alpha {
            let un = |c: u8| match a {
                0 => 0,
                _ => ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8,
            };
            pixels.extend_from_slice(&[un(r), un(g), un(b), a]);
        } else {
            pixels.extend_from_slice(&[r, g, b, a]);
        }
    }
    let img = RgbaImage::from_raw(colour.width, colour.height, pixels)
        .ok_or_else(|| fail("bad buffer size"))?;
    Ok(DynamicImage::ImageRgba8(img))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Mono,
    I420,
    I422,
    I444,
}

/// One decoded AV1 frame, copied out of dav1d's buffers.
struct Frame {
    width: u32,
    height: u32,
    layout: Layout,
    /// Bits per sample: 8, 10 or 12.
    depth: u32,
    full_range: bool,
    matrix: ffi::Dav1dMatrixCoefficients,
    y: Vec<u16>,
    u: Vec<u16>,
    v: Vec<u16>,
    /// Chroma planes' width and height.
    chroma: (usize, usize),
}

/// A dav1d decoder, closed when dropped.
struct Decoder(*mut ffi::Dav1dContext);

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from dav1d_open and is closed once.
        unsafe { ffi::dav1d_close(&mut self.0) }
    }
}

/// A picture returned by dav1d, released when dropped.
struct Picture(ffi::Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was filled by dav1d_get_picture and is
        // released once.
        unsafe { ffi::dav1d_picture_unref(&mut self.0) }
    }
}

/// Input handed to dav1d, released when dropped if dav1d did not take it.
struct Data(ffi::Dav1dData);

impl Drop for Data {
    fn drop(&mut self) {
        if self.0.sz > 0 {
            // SAFETY: the data came from dav1d_data_create and still holds
            // its reference (dav1d takes it only when it consumes it all).
            unsafe { ffi::dav1d_data_unref(&mut self.0) }
        }
    }
}

fn decode_frame(obus: &[u8], max_pixels: u64) -> Result<Frame, PipelineError> {
    if obus.is_empty() {
        return Err(fail("empty AV1 item"));
    }
    // SAFETY: dav1d_default_settings fills the whole struct.
    let mut settings = unsafe {
        let mut s = MaybeUninit::<ffi::Dav1dSettings>::uninit();
        ffi::dav1d_default_settings(s.as_mut_ptr());
        s.assume_init()
    };
    // One thread and no frame delay: a still comes out as soon as it is
    // sent, and the worker pool already spreads jobs over the cores.
    settings.n_threads = 1;
    settings.max_frame_delay = 1;
    settings.frame_size_limit = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    let mut decoder = Decoder(ptr::null_mut());
    // SAFETY: settings is initialised; decoder.0 receives the context.
    if unsafe { ffi::dav1d_open(&mut decoder.0, &settings) } < 0 || decoder.0.is_null() {
        return Err(fail("the AV1 decoder could not start"));
    }

    let mut data = Data(
        // SAFETY: a zeroed Dav1dData is the documented empty value.
        unsafe { MaybeUninit::zeroed().assume_init() },
    );
    // SAFETY: dav1d_data_create allocates `obus.len()` bytes for data.0,
    // which are written in full before use.
    unsafe {
        let buf = ffi::dav1d_data_create(&mut data.0, obus.len());
        if buf.is_null() {
            return Err(fail("out of memory"));
        }
        ptr::copy_nonoverlapping(obus.as_ptr(), buf, obus.len());
    }

    let mut picture = Picture(
        // SAFETY: a zeroed Dav1dPicture is the documented empty value.
        unsafe { MaybeUninit::zeroed().assume_init() },
    );
    loop {
        if data.0.sz > 0 {
            // SAFETY: both pointers are valid; on success dav1d takes the
            // data's reference and sets its size to 0.
            let r = unsafe { ffi::dav1d_send_data(decoder.0, &mut data.0) };
            if r < 0 && r != ffi::DAV1D_ERR_AGAIN {
                return Err(fail(format!("the AV1 data is invalid ({r})")));
            }
        }
        // SAFETY: both pointers are valid; on success the picture holds a
        // reference that Picture's drop releases.
        let r = unsafe { ffi::dav1d_get_picture(decoder.0, &mut picture.0) };
        if r == 0 {
            break;
        }
        if r != ffi::DAV1D_ERR_AGAIN {
            return Err(fail(format!("the AV1 frame could not be decoded ({r})")));
        }
        if data.0.sz == 0 {
            return Err(fail("the AV1 data holds no picture"));
        }
    }
    copy_frame(&picture.0)
}

fn copy_frame(pic: &ffi::Dav1dPicture) -> Result<Frame, PipelineError> {
    let (w, h) = (pic.p.w, pic.p.h);
    if w <= 0 || h <= 0 || pic.seq_hdr.is_null() {
        return Err(fail("a picture without size"));
    }
    let (width, height) = (w as usize, h as usize);
    let layout = match pic.p.layout {
        ffi::Dav1dPixelLayout::DAV1D_PIXEL_LAYOUT_I400 => Layout::Mono,
        ffi::Dav1dPixelLayout::DAV1D_PIXEL_LAYOUT_I420 => Layout::I420,
        ffi::Dav1dPixelLayout::DAV1D_PIXEL_LAYOUT_I422 => Layout::I422,
        ffi::Dav1dPixelLayout::DAV1D_PIXEL_LAYOUT_I444 => Layout::I444,
        #[allow(unreachable_patterns)]
        _ => return Err(fail("an unknown pixel layout")),
    };
    let depth = match pic.p.bpc {
        8 => 8,
        10 => 10,
        12 => 12,
        other => return Err(fail(format!("{other}-bit samples"))),
    };
    // SAFETY: seq_hdr is non-null and lives as long as the picture.
    let seq = unsafe { &*pic.seq_hdr };
    let chroma = match layout {
        Layout::Mono => (0, 0),
        Layout::I420 => (width.div_ceil(2), height.div_ceil(2)),
        Layout::I422 => (width.div_ceil(2), height),
        Layout::I444 => (width, height),
    };
    // SAFETY: dav1d's planes hold `height` rows of `width` samples (chroma:
    // the subsampled size) at the given strides, bytes for 8 bits and u16
    // for more, for as long as the picture lives.
    let plane = |index: usize, (pw, ph): (usize, usize)| -> Vec<u16> {
        let stride = pic.stride[index.min(1)];
        let base = pic.data[index] as *const u8;
        let mut out = Vec::with_capacity(pw * ph);
        for row in 0..ph {
            unsafe {
                let start = base.offset(stride * row as isize);
                if depth == 8 {
                    out.extend(
                        std::slice::from_raw_parts(start, pw)
                            .iter()
                            .map(|&s| u16::from(s)),
                    );
                } else {
                    out.extend_from_slice(std::slice::from_raw_parts(start as *const u16, pw));
                }
            }
        }
        out
    };
    let y = plane(0, (width, height));
    let (u, v) = if layout == Layout::Mono {
        (Vec::new(), Vec::new())
    } else {
        (plane(1, chroma), plane(2, chroma))
    };
    Ok(Frame {
        width: w as u32,
        height: h as u32,
        layout,
        depth,
        full_range: seq.color_range != 0,
        matrix: seq.mtrx,
        y,
        u,
        v,
        chroma,
    })
}

impl Frame {
    /// Luma (or alpha) as 8-bit full-range samples.
    fn luma_8bit(&self) -> Vec<u8> {
        let scale = Range::new(self.depth, self.full_range);
        self.y.iter().map(|&s| to_u8(scale.luma(s))).collect()
    }

    fn to_rgb(&self) -> Result<RgbImage, PipelineError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let range = Range::new(self.depth, self.full_range);
        if self.layout == Layout::Mono {
            let pixels = self
                .luma_8bit()
                .into_iter()
                .flat_map(|l| [l, l, l])
                .collect();
            return RgbImage::from_raw(self.width, self.height, pixels)
                .ok_or_else(|| fail("bad buffer size"));
        }
        let convert = Matrix::from(self.matrix)?;
        let (sx, sy) = match self.layout {
            Layout::I420 => (true, true),
            Layout::I422 => (true, false),
            _ => (false, false),
        };
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let luma = range.luma(self.y[row * w + col]);
                let cb = range.chroma(self.chroma_at(&self.u, col, row, sx, sy));
                let cr = range.chroma(self.chroma_at(&self.v, col, row, sx, sy));
                let [r, g, b] = convert.rgb(luma, cb, cr);
                pixels.extend_from_slice(&[to_u8(r), to_u8(g), to_u8(b)]);
            }
        }
        RgbImage::from_raw(self.width, self.height, pixels).ok_or_else(|| fail("bad buffer size"))
    }

    /// A chroma sample at a luma position: bilinear between the centred
    /// chroma samples along each subsampled axis (weights 3/4 and 1/4).
    fn chroma_at(&self, plane: &[u16], x: usize, y: usize, sx: bool, sy: bool) -> f32 {
        let (cw, ch) = self.chroma;
        let taps = |pos: usize, sub: bool, len: usize| -> [(usize, f32); 2] {
            if !sub {
                return [(pos, 1.0), (pos, 0.0)];
            }
            let near = pos / 2;
            let far = if pos.is_multiple_of(2) {
                near.saturating_sub(1)
            } else {
                (near + 1).min(len - 1)
            };
            [(near, 0.75), (far, 0.25)]
        };
        let mut sum = 0.0;
        for (cy, wy) in taps(y, sy, ch) {
            for (cx, wx) in taps(x, sx, cw) {
                sum += f32::from(plane[cy * cw + cx]) * wx * wy;
            }
        }
        sum
    }
}

/// Sample values to 0..1 (luma) and -0.5..0.5 (chroma).
struct Range {
    luma_offset: f32,
    luma_scale: f32,
    chroma_offset: f32,
    chroma_scale: f32,
}

impl Range {
    fn new(depth: u32, full: bool) -> Self {
        let max = ((1u32 << depth) - 1) as f32;
        let unit = (1u32 << (depth - 8)) as f32;
        let mid = (1u32 << (depth - 1)) as f32;
        if full {
            Self {
                luma_offset: 0.0,
                luma_scale: max,
                chroma_offset: mid,
                chroma_scale: max,
            }
        } else {
            Self {
                luma_offset: 16.0 * unit,
                luma_scale: 219.0 * unit,
                chroma_offset: mid,
                chroma_scale: 224.0 * unit,
            }
        }
    }

    fn luma(&self, sample: u16) -> f32 {
        (f32::from(sample) - self.luma_offset) / self.luma_scale
    }

    fn chroma(&self, sample: f32) -> f32 {
        (sample - self.chroma_offset) / self.chroma_scale
    }
}

/// YCbCr to R'G'B' by the matrix the stream names.
enum Matrix {
    /// Kr and Kb of a luma-weighted matrix.
    Weights(f32, f32),
    /// Y is G, Cb is B and Cr is R (identity, "GBR").
    Identity,
}

impl Matrix {
    fn from(mc: ffi::Dav1dMatrixCoefficients) -> Result<Self, PipelineError> {
        use ffi::Dav1dMatrixCoefficients as M;
        Ok(match mc {
            M::DAV1D_MC_IDENTITY => Self::Identity,
            M::DAV1D_MC_BT709 => Self::Weights(0.2126, 0.0722),
            // Unspecified: AVIF readers assume BT.601, as libavif does.
            M::DAV1D_MC_BT601 | M::DAV1D_MC_BT470BG | M::DAV1D_MC_UNKNOWN => {
                Self::Weights(0.299, 0.114)
            }
            M::DAV1D_MC_FCC => Self::Weights(0.30, 0.11),
            M::DAV1D_MC_SMPTE240 => Self::Weights(0.212, 0.087),
            M::DAV1D_MC_BT2020_NCL => Self::Weights(0.2627, 0.0593),
            other => return Err(fail(format!("matrix coefficients {other:?}"))),
        })
    }

    fn rgb(&self, y: f32, cb: f32, cr: f32) -> [f32; 3] {
        match *self {
            Self::Identity => [cr + 0.5, y, cb + 0.5],
            Self::Weights(kr, kb) => {
                let kg = 1.0 - kr - kb;
                let r = y + 2.0 * (1.0 - kr) * cr;
                let b = y + 2.0 * (1.0 - kb) * cb;
                let g = (y - kr * r - kb * b) / kg;
                [r, g, b]
            }
        }
    }
}

fn to_u8(unit: f32) -> u8 {
    (unit * 255.0).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, Rgba};

    fn encode(image: &DynamicImage, quality: u8) -> Vec<u8> {
        crate::encode::avif::encode(image, quality).expect("avif encodes")
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        let total: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        total as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn a_flat_colour_comes_back_within_a_step() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, Rgb([200, 60, 20])));
        let out = decode(&encode(&img, 90), 1 << 20).expect("decodes");
        assert_eq!((out.width(), out.height()), (40, 30));
        let px = out.to_rgb8().get_pixel(20, 15).0;
        for (got, want) in px.iter().zip([200u8, 60, 20]) {
            assert!(got.abs_diff(want) <= 3, "{px:?}");
        }
    }

    #[test]
    fn a_gradient_at_high_quality_is_close_and_odd_sizes_decode() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(65, 33, |x, y| {
            Rgb([(x * 3) as u8, (y * 7) as u8, ((x + y) * 2) as u8])
        }));
        let out = decode(&encode(&img, 95), 1 << 20)
            .expect("decodes")
            .to_rgb8();
        assert_eq!(out.dimensions(), (65, 33));
        let diff = mean_abs_diff(&img.to_rgb8(), &out);
        assert!(diff < 2.0, "mean difference {diff}");
    }

    #[test]
    fn alpha_is_decoded() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(32, 32, |x, _| {
            Rgba([10, 120, 240, if x < 16 { 255 } else { 0 }])
        }));
        let out = decode(&encode(&img, 90), 1 << 20).expect("decodes");
        assert!(out.color().has_alpha());
        let out = out.to_rgba8();
        assert!(out.get_pixel(4, 4).0[3] >= 250);
        assert!(out.get_pixel(28, 4).0[3] <= 5);
    }

    #[test]
    fn damaged_and_oversized_input_is_an_error() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([1, 2, 3])));
        let bytes = encode(&img, 80);
        assert!(decode(&bytes[..bytes.len() / 2], 1 << 20).is_err());
        assert!(decode(b"not an avif at all", 1 << 20).is_err());
        assert!(
            decode(&bytes, 100).is_err(),
            "4096 pixels over a 100-pixel limit"
        );
        let mut flipped = bytes.clone();
        let n = flipped.len();
        for b in &mut flipped[n - 40..] {
            *b ^= 0x5a;
        }
        // A damaged frame is an error or a picture, never a crash.
        let _ = decode(&flipped, 1 << 20);
    }
}
