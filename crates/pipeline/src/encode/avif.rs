//! AVIF with libavif and libaom (AV1 all-intra): 8-bit, alpha kept.
//!
//! libavif converts the RGB(A) pixels to YUV and writes the container;
//! libaom encodes the planes. Both are built from source by `libavif-sys`
//! and `libaom-sys` (BSD-2-Clause). One thread per encode: the worker pool
//! already runs one job per core.

use std::ptr;

use image::DynamicImage;
use libavif_sys as sys;

use super::contain_panic;
use crate::PipelineError;

/// libaom's `cpu-used` for still images (0 slowest - 9 fastest); figures in
/// the crate README ("AVIF: encoder, speed and quality map").
pub(crate) const SPEED: i32 = 7;

/// libaom options on top of libavif's still-image defaults (all-intra,
/// tuned for SSIM). Intra block copy, a screen-content tool, is off: on a
/// 16.8 MP tiled pattern of the corpus it took 16.8 of 17 s at speed 7
/// (2.5 s without, for 5% more bytes and a higher score); over the corpus
/// it costs 0.2% of the bytes and saves 44% of the time (crate README).
const AOM_OPTIONS: [(&std::ffi::CStr, &std::ffi::CStr); 1] = [(c"enable-intrabc", c"0")];

/// Images with at most this many colours (graphics, pixel art, palettes)
/// keep full-resolution chroma (4:4:4); others are subsampled (4:2:0),
/// which spends fewer bytes on photos for the same score but smears
/// saturated edges: a 1024-pixel palette image scored 33 in 4:2:0 where
/// 4:4:4 scored 80 (crate README).
const FULL_CHROMA_MAX_COLOURS: usize = 4096;

/// The chroma layout for `image` (see [`FULL_CHROMA_MAX_COLOURS`]).
pub(crate) fn yuv_format(image: &DynamicImage) -> sys::avifPixelFormat {
    if super::distinct_colours(image, FULL_CHROMA_MAX_COLOURS).is_some() {
        sys::AVIF_PIXEL_FORMAT_YUV444
    } else {
        sys::AVIF_PIXEL_FORMAT_YUV420
    }
}

/// (requested quality, libavif quality) at the points measured: there
/// libaom at [`SPEED`] spends on the corpus the bytes rav1e (ravif 0.11,
/// speed 9, 10-bit 4:4:4, the encoder before this one) spent at the
/// requested quality, and scores 1.5-2.2 SSIMULACRA2 points higher on
/// average (the median image 0.5-0.8): a quality keeps its size and gains
/// a little (crate README, "AVIF: encoder, speed and quality map"). Below
/// 50 the map is linear down to 0 (not measured); 100 is quantizer 0, as
/// rav1e's 100 was.
const QUALITY_MAP: [(f32, f32); 7] = [
    (0.0, 0.0),
    (50.0, 46.3),
    (60.0, 51.9),
    (70.0, 57.9),
    (80.0, 65.7),
    (90.0, 85.9),
    (100.0, 100.0),
];

/// libavif's quality (0-100, linear in AV1's quantizer) for a request.
pub(crate) fn libavif_quality(quality: u8) -> i32 {
    super::quality_map::interpolate(&QUALITY_MAP, f32::from(quality.clamp(1, 100))).round() as i32
}

pub(crate) fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    encode_with(image, libavif_quality(quality), SPEED, None)
}

/// Frees what libavif allocated, on every path out.
struct Owned<T, F: FnMut(&mut T)>(T, F);

impl<T, F: FnMut(&mut T)> Drop for Owned<T, F> {
    fn drop(&mut self) {
        (self.1)(&mut self.0);
    }
}

fn check(what: &str, result: sys::avifResult) -> Result<(), PipelineError> {
    if result == sys::AVIF_RESULT_OK {
        return Ok(());
    }
    // SAFETY: avifResultToString returns a static NUL-terminated string.
    let msg = unsafe { std::ffi::CStr::from_ptr(sys::avifResultToString(result)) };
    Err(PipelineError::Encode(format!(
        "avif: {what}: {}",
        msg.to_string_lossy()
    )))
}

/// Encodes at libavif's own quality (0-100, not mapped), libaom `speed`
/// and chroma layout (`None`: the encoder's choice, [`yuv_format`]); public
/// (hidden) for the measuring example.
#[doc(hidden)]
pub fn encode_with(
    image: &DynamicImage,
    libavif_quality: i32,
    speed: i32,
    chroma: Option<sys::avifPixelFormat>,
) -> Result<Vec<u8>, PipelineError> {
    let yuv_format = chroma.unwrap_or_else(|| self::yuv_format(image));
    let (w, h) = (image.width(), image.height());
    let (pixels, channels) = super::rgb_or_rgba(image);
    let rgb_format = if channels == 4 {
        sys::AVIF_RGB_FORMAT_RGBA
    } else {
        sys::AVIF_RGB_FORMAT_RGB
    };
    contain_panic("libavif", || {
        // SAFETY: every pointer handed to libavif comes from libavif itself
        // (image, encoder, output buffer; each freed once by its guard) or
        // is `pixels`, which outlives the calls and holds exactly
        // `h` rows of `w * channels` bytes.
        unsafe {
            let yuv = Owned(sys::avifImageCreate(w, h, 8, yuv_format), |p| {
                sys::avifImageDestroy(*p)
            });
            if yuv.0.is_null() {
                return Err(PipelineError::Encode("avif: out of memory".into()));
            }
            let mut rgb: sys::avifRGBImage = std::mem::zeroed();
            sys::avifRGBImageSetDefaults(&mut rgb, yuv.0);
            rgb.format = rgb_format;
            rgb.depth = 8;
            rgb.pixels = pixels.as_ptr().cast_mut();
            rgb.rowBytes = w * channels;
            check("convert", sys::avifImageRGBToYUV(yuv.0, &rgb))?;

            let encoder = Owned(sys::avifEncoderCreate(), |p| sys::avifEncoderDestroy(*p));
            if encoder.0.is_null() {
                return Err(PipelineError::Encode("avif: out of memory".into()));
            }
            let q = libavif_quality.clamp(0, 100);
            (*encoder.0).quality = q;
            (*encoder.0).qualityAlpha = q;
            (*encoder.0).speed = speed;
            (*encoder.0).maxThreads = 1;
            for (key, value) in AOM_OPTIONS {
                check(
                    "option",
                    sys::avifEncoderSetCodecSpecificOption(encoder.0, key.as_ptr(), value.as_ptr()),
                )?;
            }

            let mut out = Owned(
                sys::avifRWData {
                    data: ptr::null_mut(),
                    size: 0,
                },
                |d| sys::avifRWDataFree(d),
            );
            check(
                "encode",
                sys::avifEncoderWrite(encoder.0, yuv.0, &mut out.0),
            )?;
            Ok(std::slice::from_raw_parts(out.0.data, out.0.size).to_vec())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::libavif_quality;

    #[test]
    fn the_quality_map_is_monotonic_and_hits_its_points() {
        let mapped: Vec<i32> = (1..=100).map(libavif_quality).collect();
        assert!(mapped.windows(2).all(|w| w[1] >= w[0]), "{mapped:?}");
        assert_eq!(libavif_quality(80), 66);
        assert_eq!(libavif_quality(60), 52);
        assert_eq!(libavif_quality(100), 100);
        assert_eq!(libavif_quality(0), libavif_quality(1), "0 is read as 1");
    }
}
