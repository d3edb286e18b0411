//! PNG: lossy palette quantisation (imagequant, quality mapped like
//! pngquant's `--quality min-max`), written in one pass (the smallest bit
//! depth that holds the palette, filter none, one libdeflate pass). When the
//! palette cannot reach the minimum quality, or the build leaves imagequant
//! out, the PNG is lossless instead, optimised by oxipng under a time budget.

use std::time::{Duration, Instant};

use image::DynamicImage;
use oxipng::{BitDepth, ColorType, Deflaters, Options, RawImage, RowFilter, StripChunks};

use crate::PipelineError;

#[cfg(feature = "imagequant")]
/// The palette quality range for a requested quality `q`: `q-15 .. q`, so the
/// default 80 is pngquant's `--quality 65-80`.
pub(crate) fn quality_range(q: u8) -> (u8, u8) {
    let max = q.clamp(1, 100);
    (max.saturating_sub(15), max)
}

#[cfg(feature = "imagequant")]
/// imagequant speed (1 slowest - 10 fastest). pngquant's default 4 runs 20
/// feedback trials and 12 k-means iterations; 8 runs none of either and
/// about halves the PNG time, with no loss in SSIM on the corpus (figures in
/// the crate README).
const QUANT_SPEED: i32 = 8;

#[cfg(feature = "imagequant")]
/// Floyd-Steinberg strength (0-1). Full dithering costs a third more bytes
/// and 0.016 SSIM on photos (noise where gradients were smooth); a quarter
/// keeps gradients from banding at about sharp's SSIM.
const DITHERING: f32 = 0.25;

/// libdeflate level of the one pass a palette PNG gets.
#[cfg_attr(not(feature = "imagequant"), allow(dead_code))]
const PALETTE_DEFLATE_LEVEL: i32 = 6;

/// Above this many pixels oxipng runs one fast trial instead of its search.
const BIG: u64 = 1_000_000;

/// oxipng settings: up to 1 MP its preset 2 (the CLI default: four filter
/// trials, libdeflate level 11). Above, where near-optimal deflate costs
/// seconds, one trial at libdeflate level 9 with the filter that suits the
/// data (none for palette images, per-row minimum sum for true colour): about
/// twice as fast for 10-20% more bytes. The time budget is 0.5 s plus 0.1 s
/// per megapixel, capped at 3 s and never past the caller's deadline (oxipng
/// checks it between trials and keeps the best result so far).
fn oxipng_options(pixels: u64, palette: bool, deadline: Option<Instant>) -> Options {
    let mut opts = Options::from_preset(2);
    if pixels > BIG {
        opts.filter.clear();
        opts.filter.insert(if palette {
            RowFilter::None
        } else {
            RowFilter::MinSum
        });
        opts.deflate = Deflaters::Libdeflater { compression: 9 };
    }
    opts.strip = StripChunks::All;
    opts.optimize_alpha = true;
    let budget = Duration::from_millis((500 + pixels / 10_000).min(3_000));
    let budget = match deadline {
        Some(d) => budget.min(d.saturating_duration_since(Instant::now())),
        None => budget,
    };
    opts.timeout = Some(budget);
    opts
}

pub(crate) fn encode(
    image: &DynamicImage,
    quality: u8,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, PipelineError> {
    #[cfg(feature = "imagequant")]
    if let Some(palette) = quantize(image, quality)? {
        return Ok(write_indexed(&palette, PALETTE_DEFLATE_LEVEL));
    }
    #[cfg(not(feature = "imagequant"))]
    let _ = quality;
    encode_lossless(image, deadline)
}

/// Lossless only (no palette search), under the same time budget.
pub(crate) fn encode_lossless(
    image: &DynamicImage,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, PipelineError> {
    let pixels = u64::from(image.width()) * u64::from(image.height());
    optimise(&lossless(image)?, &oxipng_options(pixels, false, deadline))
}

fn fail(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("png: {e}"))
}

fn optimise(raw: &RawImage, opts: &Options) -> Result<Vec<u8>, PipelineError> {
    raw.create_optimized_png(opts).map_err(fail)
}

/// The pixels as they are; oxipng reduces colour type and bit depth itself.
pub(crate) fn lossless(image: &DynamicImage) -> Result<RawImage, PipelineError> {
    let (w, h) = (image.width(), image.height());
    let (color, data) = match image {
        DynamicImage::ImageLuma8(b) => (
            ColorType::Grayscale {
                transparent_shade: None,
            },
            b.as_raw().clone(),
        ),
        DynamicImage::ImageLumaA8(b) => (ColorType::GrayscaleAlpha, b.as_raw().clone()),
        DynamicImage::ImageRgb8(b) => (
            ColorType::RGB {
                transparent_color: None,
            },
            b.as_raw().clone(),
        ),
        other => (ColorType::RGBA, other.to_rgba8().into_raw()),
    };
    RawImage::new(w, h, color, BitDepth::Eight, data).map_err(fail)
}

/// A palette image: up to 256 RGBA colours and one index per pixel.
#[cfg_attr(not(feature = "imagequant"), allow(dead_code))]
pub(crate) struct Indexed {
    pub width: u32,
    pub height: u32,
    pub colors: Vec<[u8; 4]>,
    pub indices: Vec<u8>,
}

/// A palette image within the quality range, or `None` when it cannot reach it.
#[cfg(feature = "imagequant")]
fn quantize(image: &DynamicImage, quality: u8) -> Result<Option<Indexed>, PipelineError> {
    use imagequant::RGBA;
    let (w, h) = (image.width(), image.height());
    let (min, max) = quality_range(quality);
    let q = |e: imagequant::Error| PipelineError::Encode(format!("imagequant: {e}"));
    let mut attr = imagequant::new();
    attr.set_speed(QUANT_SPEED).map_err(q)?;
    attr.set_quality(min, max).map_err(q)?;
    let pixels: Vec<RGBA> = match image {
        DynamicImage::ImageRgb8(b) => b
            .as_raw()
            .chunks_exact(3)
            .map(|p| RGBA::new(p[0], p[1], p[2], 255))
            .collect(),
        DynamicImage::ImageRgba8(b) => b
            .as_raw()
            .chunks_exact(4)
            .map(|p| RGBA::new(p[0], p[1], p[2], p[3]))
            .collect(),
        other => other
            .to_rgba8()
            .pixels()
            .map(|p| RGBA::new(p.0[0], p.0[1], p.0[2], p.0[3]))
            .collect(),
    };
    let mut img = attr
        .new_image(pixels, w as usize, h as usize, 0.0)
        .map_err(q)?;
    let mut result = match attr.quantize(&mut img) {
        Ok(r) => r,
        Err(imagequant::Error::QualityTooLow) => return Ok(None),
        Err(e) => return Err(q(e)),
    };
    result.set_dithering_level(DITHERING).map_err(q)?;
    let (palette, indices) = result.remapped(&mut img).map_err(q)?;
    Ok(Some(Indexed {
        width: w,
        height: h,
        colors: palette.into_iter().map(|c| [c.r, c.g, c.b, c.a]).collect(),
        indices,
    }))
}

/// PNG chunk: length, type, data, CRC of type and data.
#[cfg_attr(not(feature = "imagequant"), allow(dead_code))]
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = libdeflater::crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Writes a palette PNG in one pass: bit depth 1, 2, 4 or 8 (the smallest
/// that holds the palette), tRNS only up to the last translucent entry,
/// filter none on every row (what suits dithered palette data) and one
/// libdeflate pass at `level`.
#[cfg_attr(not(feature = "imagequant"), allow(dead_code))]
pub(crate) fn write_indexed(image: &Indexed, level: i32) -> Vec<u8> {
    let (w, h) = (image.width as usize, image.height as usize);
    let depth: usize = match image.colors.len() {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    };
    let per_byte = 8 / depth;
    let row_bytes = w.div_ceil(per_byte);
    let mut raw = Vec::with_capacity((row_bytes + 1) * h);
    for row in image.indices.chunks_exact(w) {
        raw.push(0); // filter none
        if depth == 8 {
            raw.extend_from_slice(row);
        } else {
            for group in row.chunks(per_byte) {
                let mut byte = 0u8;
                for (i, &v) in group.iter().enumerate() {
                    byte |= v << (8 - depth * (i + 1));
                }
                raw.push(byte);
            }
        }
    }
    let level = libdeflater::CompressionLvl::new(level.clamp(1, 12))
        .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
    let mut compressor = libdeflater::Compressor::new(level);
    let mut idat = vec![0u8; compressor.zlib_compress_bound(raw.len())];
    let n = compressor
        .zlib_compress(&raw, &mut idat)
        .expect("buffer sized by zlib_compress_bound");
    idat.truncate(n);
    drop(raw);

    let mut out = Vec::with_capacity(n + 1024);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&image.width.to_be_bytes());
    ihdr.extend_from_slice(&image.height.to_be_bytes());
    ihdr.extend_from_slice(&[depth as u8, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let plte: Vec<u8> = image
        .colors
        .iter()
        .flat_map(|c| [c[0], c[1], c[2]])
        .collect();
    chunk(&mut out, b"PLTE", &plte);
    if let Some(last) = image.colors.iter().rposition(|c| c[3] < 255) {
        let trns: Vec<u8> = image.colors[..=last].iter().map(|c| c[3]).collect();
        chunk(&mut out, b"tRNS", &trns);
    }
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}
