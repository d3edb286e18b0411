//! pixpress-pipeline: the one image pipeline every pixpress protocol uses.
//!
//! `process(bytes, &Options)` sniffs the format from the bytes, decodes under
//! limits, applies EXIF orientation and colour management, runs operations,
//! encodes (WebP / JPEG / PNG / AVIF) with metadata stripped and, when asked,
//! fits a byte budget. It owns no threads, no I/O and no globals: callers
//! (the server's worker pool) decide where and when it runs.

mod auto;
#[cfg(feature = "avif")]
mod avif_decode;
mod budget;
mod color;
mod decode;
mod encode;
mod error;
mod format;
mod jpeg_decode;
mod jpeg_markers;
pub mod metric;
mod ops;
mod options;
mod output;
mod presets;
pub mod recipe;
mod strip;
mod webp_decode;

use std::time::Instant;

use image::metadata::Orientation;

pub use auto::{
    AutoFormat, AutoQuality, AutoScoring, AVIF_SCORED, DEFAULT_AVIF_MAX_PIXELS,
    DEFAULT_SAMPLE_TILES, DEFAULT_TARGET, MAX_TARGET, MIN_TARGET,
};
/// Decodes an AVIF still (the pipeline's own AVIF output and stills like
/// it) for scoring; AVIF is not an input format of `process`.
#[cfg(feature = "avif")]
pub use avif_decode::decode as decode_avif;
#[cfg(feature = "avif")]
#[doc(hidden)]
pub use encode::avif::encode_with as avif_encode_with;
pub use error::PipelineError;
pub use format::{Format, InputFormat};
pub use options::{Fit, FlipAxis, Limits, Options, Step};
pub use output::{ImageInfo, Output};
pub use presets::{Preset, RecipeDefaults};
pub use recipe::Recipe;

use encode::EncodeSettings;

/// Background for flattening alpha when `Options::background` is not set.
pub const DEFAULT_BACKGROUND: [u8; 3] = [255, 255, 255];

fn check_deadline(deadline: Option<Instant>) -> Result<(), PipelineError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(PipelineError::Timeout),
        _ => Ok(()),
    }
}

/// Runs the whole pipeline on `input`.
pub fn process(input: &[u8], options: &Options) -> Result<Output, PipelineError> {
    if let Some(auto) = &options.auto_quality {
        auto.validate()?;
    }
    if options.auto_format.is_none() && !options.format.available() {
        return Err(PipelineError::FormatUnavailable(options.format.name()));
    }
    check_deadline(options.deadline)?;
    // A JPEG that the first step downscales is shrunk while it is decoded.
    let mut exact_resize = None;
    let decoded = decode::decode_shrunk(input, &options.limits, |w, h| {
        let (eighths, step) = ops::shrink_on_load(&options.steps, w, h).unzip();
        exact_resize = step;
        eighths.unwrap_or(8)
    })?;
    check_deadline(options.deadline)?;
    let steps = match exact_resize {
        Some(step) => std::iter::once(step)
            .chain(options.steps[1..].iter().cloned())
            .collect(),
        None => options.steps.clone(),
    };
    let (image, changed) = ops::apply(decoded.image, &steps, &options.limits)?;
    check_deadline(options.deadline)?;
    if options.is_auto() {
        let upright = decoded.orientation == Orientation::NoTransforms;
        return auto::finish(input, decoded.format, upright, image, changed, options);
    }

    let settings = EncodeSettings {
        format: options.format,
        quality: options.effective_quality(),
        background: options.background.unwrap_or(DEFAULT_BACKGROUND),
        deadline: options.deadline,
    };
    let output = |bytes: Vec<u8>, width, height, quality: Option<u8>| Output {
        size: bytes.len(),
        bytes,
        format: options.format,
        mime: options.format.mime(),
        width,
        height,
        original_size: input.len(),
        kept_original: quality.is_none(),
        quality,
        score: None,
        target: None,
        target_met: None,
        trials: 0,
        budget_limited: false,
        score_sampled: false,
    };
    let q = Some(settings.quality);

    // Never larger: the input itself (metadata stripped losslessly) is an
    // answer when it has the requested format, upright pixels and no edits.
    let original = if !changed
        && decoded.orientation == Orientation::NoTransforms
        && decoded.format.as_output() == Some(options.format)
    {
        strip::strip(input, decoded.format).ok().flatten()
    } else {
        None
    };
    let (w, h) = (image.width(), image.height());
    let fits = |len: usize| options.max_bytes.is_none_or(|m| len as u64 <= m);

    if let Some(original) = original.filter(|o| fits(o.len())) {
        // One encode at the requested quality; the original wins unless that
        // encode is smaller (no quality search to beat it).
        let encoded = encode::encode(&image, &settings)?;
        return Ok(if encoded.len() < original.len() && fits(encoded.len()) {
            output(encoded, w, h, q)
        } else {
            output(original, w, h, None)
        });
    }

    match options.max_bytes {
        None => {
            let bytes = encode::encode(&image, &settings)?;
            Ok(output(bytes, w, h, q))
        }
        Some(max_bytes) => {
            let fitted = budget::fit(&image, &settings, max_bytes)?;
            Ok(output(
                fitted.bytes,
                fitted.width,
                fitted.height,
                Some(fitted.quality),
            ))
        }
    }
}

/// The pipeline's stages one by one, for benchmarks and tools that measure
/// them separately. Not part of the stable API: signatures follow the
/// `image` crate's types and may change with it.
#[doc(hidden)]
pub mod stages {
    use image::DynamicImage;

    use crate::{Format, Limits, PipelineError};

    /// Sniff, check limits, decode, orient, convert to sRGB.
    pub fn decode(input: &[u8], limits: &Limits) -> Result<DynamicImage, PipelineError> {
        crate::decode::decode(input, limits).map(|d| d.image)
    }

    /// As `decode`, a JPEG shrunk on load to `eighths`/8 of its size.
    pub fn decode_scaled(
        input: &[u8],
        limits: &Limits,
        eighths: u8,
    ) -> Result<DynamicImage, PipelineError> {
        crate::decode::decode_shrunk(input, limits, |_, _| eighths).map(|d| d.image)
    }

    /// Lanczos3 resize to exactly `width`x`height`.
    pub fn resize(
        image: &DynamicImage,
        width: u32,
        height: u32,
    ) -> Result<DynamicImage, PipelineError> {
        crate::ops::resize(image, width, height, false)
    }

    /// One encode at `quality`, as `process` does it.
    pub fn encode(
        image: &DynamicImage,
        format: Format,
        quality: u8,
    ) -> Result<Vec<u8>, PipelineError> {
        let settings = crate::encode::EncodeSettings {
            format,
            quality,
            background: crate::DEFAULT_BACKGROUND,
            deadline: None,
        };
        crate::encode::encode(image, &settings)
    }

    /// JPEG with or without trellis quantisation (the measurement behind
    /// the encoder's default).
    pub fn encode_jpeg(
        image: &DynamicImage,
        quality: u8,
        trellis: bool,
    ) -> Result<Vec<u8>, PipelineError> {
        let rgb = image.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        crate::encode::jpeg::encode_raw(
            rgb.as_raw(),
            w,
            h,
            mozjpeg::ColorSpace::JCS_RGB,
            quality,
            trellis,
        )
    }

    /// The image a quality search encodes and scores.
    pub enum SearchImage<'a> {
        /// Small enough to search whole.
        Whole(&'a DynamicImage),
        /// The mosaic of full-resolution tiles a large image is searched on.
        Sample(DynamicImage),
    }

    impl std::ops::Deref for SearchImage<'_> {
        type Target = DynamicImage;
        fn deref(&self) -> &DynamicImage {
            match self {
                Self::Whole(image) => image,
                Self::Sample(sample) => sample,
            }
        }
    }

    /// What `quality=auto` searches on for `image` (with the default
    /// number of sample tiles).
    pub fn search_image(image: &DynamicImage) -> SearchImage<'_> {
        match crate::auto::sample(image, crate::DEFAULT_SAMPLE_TILES) {
            Some(s) => SearchImage::Sample(s),
            None => SearchImage::Whole(image),
        }
    }

    /// Decodes an output of `format` the way the auto search does to score
    /// it (libwebp for WebP, dav1d for AVIF, the input decoders otherwise).
    pub fn decode_output(format: Format, bytes: &[u8]) -> Result<DynamicImage, PipelineError> {
        crate::auto::decode_output(format, bytes)
    }

    /// `tiles` full-resolution tiles of `tile` pixels spread evenly over
    /// `image`, at positions that depend only on its size, so the mosaics of
    /// an image and of an encode of it line up (`None` when the image is too
    /// small). The search's own sample (`search_image`) picks its tiles by
    /// detail instead.
    pub fn mosaic(image: &DynamicImage, tile: u32, tiles: u32) -> Option<DynamicImage> {
        crate::auto::mosaic(image, tile, tiles)
    }

    /// Lossless PNG (the fallback when the palette cannot reach the quality).
    pub fn encode_png_lossless(image: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
        crate::encode::png::encode_lossless(image, None)
    }
}

/// Reads only the header: format and dimensions, checked against `limits`.
/// For JPEG it also walks the marker segments, so a truncated file fails here.
pub fn probe(input: &[u8], limits: &Limits) -> Result<ImageInfo, PipelineError> {
    decode::probe(input, limits)
}

/// Format and dimensions from the header alone, checked against `limits`:
/// [`probe`] without its walk over a JPEG's scans (which reads the whole
/// file), for input that was probed before.
pub fn read_header(input: &[u8], limits: &Limits) -> Result<ImageInfo, PipelineError> {
    decode::read_header(input, limits)
}
