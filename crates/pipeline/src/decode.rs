//! Bytes to pixels: the one place that turns input bytes into an image.
//!
//! Owns the limits (checked from the header before any pixel buffer is
//! allocated), truncation checks the decoders do not make themselves, the
//! first frame of animations, EXIF orientation and the colour conversion of
//! embedded ICC profiles to sRGB. It never encodes and never applies
//! user operations.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::color;
use crate::{jpeg_decode, jpeg_markers};
use crate::{ImageInfo, InputFormat, Limits, PipelineError};

/// A decoded, upright, sRGB, 8-bit image plus what the input said about itself.
pub(crate) struct Decoded {
    pub image: DynamicImage,
    pub format: InputFormat,
    /// The EXIF orientation the input carried (already applied to `image`).
    pub orientation: Orientation,
}

fn image_format(format: InputFormat) -> ImageFormat {
    match format {
        InputFormat::Jpeg => ImageFormat::Jpeg,
        InputFormat::Png => ImageFormat::Png,
        InputFormat::Webp => ImageFormat::WebP,
        InputFormat::Gif => ImageFormat::Gif,
        InputFormat::Bmp => ImageFormat::Bmp,
        InputFormat::Tiff => ImageFormat::Tiff,
    }
}

/// Maps a decoder error to ours: limits stay limits, the rest is invalid data.
fn decode_error(err: ImageError) -> PipelineError {
    match err {
        ImageError::Unsupported(e) => {
            PipelineError::InvalidImage(format!("unsupported variant: {e}"))
        }
        ImageError::Limits(e) => PipelineError::InvalidImage(format!("decoder limit: {e}")),
        other => PipelineError::InvalidImage(other.to_string()),
    }
}

fn sniff_checked(input: &[u8], limits: &Limits) -> Result<InputFormat, PipelineError> {
    if input.len() > limits.max_input_bytes {
        return Err(PipelineError::InputTooLarge {
            size: input.len(),
            limit: limits.max_input_bytes,
        });
    }
    InputFormat::sniff(input).ok_or(PipelineError::UnsupportedFormat)
}

fn check_dimensions(width: u32, height: u32, limits: &Limits) -> Result<(), PipelineError> {
    let too_big = width > limits.max_dimension
        || height > limits.max_dimension
        || u64::from(width) * u64::from(height) > limits.max_pixels;
    if too_big {
        return Err(PipelineError::TooManyPixels {
            width,
            height,
            max_dimension: limits.max_dimension,
            max_pixels: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(PipelineError::InvalidImage(format!(
            "empty image ({width}x{height})"
        )));
    }
    Ok(())
}

/// The decoder for `input`, with image's own allocation limit as a second fence.
fn decoder_for<'a>(
    input: &'a [u8],
    format: InputFormat,
    limits: &Limits,
) -> Result<impl ImageDecoder + 'a, PipelineError> {
    let mut reader = ImageReader::with_format(Cursor::new(input), image_format(format));
    let mut image_limits = image::Limits::default();
    // Our own dimension check runs on the header; this bounds what a decoder
    // may allocate besides the pixels (16 bytes per pixel covers RGBA f32).
    image_limits.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(16)
            .saturating_add(64 << 20),
    );
    reader.limits(image_limits);
    reader.into_decoder().map_err(decode_error)
}

/// Header only: format and dimensions, checked against `limits`; a JPEG
/// must also be complete.
pub fn probe(input: &[u8], limits: &Limits) -> Result<ImageInfo, PipelineError> {
    let format = sniff_checked(input, limits)?;
    if format == InputFormat::Jpeg {
        // A marker walk is cheap, and it catches truncated files that the
        // JPEG decoder would accept.
        jpeg_markers::check_complete(input)?;
    }
    header_info(input, format, limits)
}

/// Format and dimensions from the header alone, checked against `limits`,
/// without [`probe`]'s walk over a JPEG's scans: for input probed before.
pub fn read_header(input: &[u8], limits: &Limits) -> Result<ImageInfo, PipelineError> {
    let format = sniff_checked(input, limits)?;
    header_info(input, format, limits)
}

fn header_info(
    input: &[u8],
    format: InputFormat,
    limits: &Limits,
) -> Result<ImageInfo, PipelineError> {
    let (width, height) = if format == InputFormat::Jpeg {
        // JPEG is decoded by libjpeg, not the `image` crate (which lacks
        // arithmetic coding): the frame header is all that is needed.
        jpeg_markers::frame_size(input)?
    } else {
        decoder_for(input, format, limits)?.dimensions()
    };
    check_dimensions(width, height, limits)?;
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// Decodes `input` fully: limits, first frame, orientation, ICC to sRGB.
pub(crate) fn decode(input: &[u8], limits: &Limits) -> Result<Decoded, PipelineError> {
    decode_shrunk(input, limits, |_, _| 8)
}

/// Whether an EXIF orientation swaps width and height.
fn transposes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// As `decode`, but a JPEG may be shrunk on load: `scale` gets the upright
/// width and height from the header and returns libjpeg's scale in eighths
/// (8: full size). Other formats always decode at full size.
pub(crate) fn decode_shrunk(
    input: &[u8],
    limits: &Limits,
    scale: impl FnOnce(u32, u32) -> u8,
) -> Result<Decoded, PipelineError> {
    let format = sniff_checked(input, limits)?;
    let (mut image, orientation) = if format == InputFormat::Jpeg {
        jpeg_markers::check_complete(input)?;
        let (width, height) = jpeg_markers::frame_size(input)?;
        check_dimensions(width, height, limits)?;
        let icc = jpeg_markers::icc_profile(input);
        let orientation = jpeg_markers::exif_orientation(input);
        let scale = if transposes(orientation) {
            scale(height, width)
        } else {
            scale(width, height)
        };
        let image = jpeg_decode::decode(input, width, height, scale, icc.as_deref())?;
        (image, orientation)
    } else {
        let mut decoder = decoder_for(input, format, limits)?;
        let (width, height) = decoder.dimensions();
        check_dimensions(width, height, limits)?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let icc = decoder.icc_profile().ok().flatten();
        let image = to_8bit(DynamicImage::from_decoder(decoder).map_err(decode_error)?);
        let image = match icc {
            Some(profile) => color::to_srgb(image, &profile),
            None => image,
        };
        (image, orientation)
    };
    image.apply_orientation(orientation);
    Ok(Decoded {
        image,
        format,
        orientation,
    })
}

/// The pipeline works on 8-bit gray, gray+alpha, RGB or RGBA.
fn to_8bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgb32F(_) => {
            DynamicImage::ImageRgb8(image.to_rgb8())
        }
        _ => DynamicImage::ImageRgba8(image.to_rgba8()),
    }
}
