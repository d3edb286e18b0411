//! Fitting a byte budget: search the quality first (at most eight encodes),
//! then downscale in steps, until the output fits; otherwise fail with
//! `BudgetNotMet`.

use std::time::Instant;

use image::DynamicImage;

use crate::encode::{encode, EncodeSettings};
use crate::{ops, PipelineError};

/// The quality search never goes below this (or below the requested quality).
pub(crate) const QUALITY_FLOOR: u8 = 30;
/// Encodes spent on the quality search, the first one included.
const MAX_QUALITY_ENCODES: usize = 8;
/// Downscale attempts after the quality search.
const MAX_DOWNSCALES: usize = 12;
/// Neither side goes below this many pixels while downscaling.
const MIN_SIDE: u32 = 8;

/// An encoded image and its size.
pub(crate) struct Fitted {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The quality of `bytes`.
    pub quality: u8,
}

fn check_deadline(deadline: Option<Instant>) -> Result<(), PipelineError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(PipelineError::Timeout),
        _ => Ok(()),
    }
}

/// Encodes `image` so that it takes at most `max_bytes`.
pub(crate) fn fit(
    image: &DynamicImage,
    settings: &EncodeSettings,
    max_bytes: u64,
) -> Result<Fitted, PipelineError> {
    let fits = |b: &[u8]| b.len() as u64 <= max_bytes;
    let (w, h) = (image.width(), image.height());
    let at = |quality: u8| -> Result<Vec<u8>, PipelineError> {
        check_deadline(settings.deadline)?;
        encode(
            image,
            &EncodeSettings {
                quality,
                ..*settings
            },
        )
    };
    let done = |bytes, quality| Fitted {
        bytes,
        width: w,
        height: h,
        quality,
    };

    // 1. The requested quality.
    let q = settings.quality;
    let first = at(q)?;
    if fits(&first) {
        return Ok(done(first, q));
    }
    // 2. Quality search between the floor and the requested quality.
    let floor = q.min(QUALITY_FLOOR);
    let mut floor_size = first.len() as u64;
    if floor < q {
        let low = at(floor)?;
        floor_size = low.len() as u64;
        if fits(&low) {
            let (mut lo, mut hi, mut best) = (floor, q, low);
            let mut best_q = floor;
            let mut encodes = 2;
            while hi - lo > 2 && encodes < MAX_QUALITY_ENCODES {
                let mid = lo + (hi - lo) / 2;
                let bytes = at(mid)?;
                encodes += 1;
                if fits(&bytes) {
                    (lo, best, best_q) = (mid, bytes, mid);
                } else {
                    hi = mid;
                }
            }
            return Ok(done(best, best_q));
        }
    }
    // 3. Downscale at the floor quality; bytes scale roughly with the pixel
    // count, so each step aims at the budget with a margin.
    let floor_settings = EncodeSettings {
        quality: floor,
        ..*settings
    };
    let mut scale = 1.0f64;
    for _ in 0..MAX_DOWNSCALES {
        let aim = (max_bytes as f64 / floor_size as f64).sqrt() * 0.95;
        scale *= aim.min(0.9);
        let tw = (f64::from(w) * scale).round() as u32;
        let th = (f64::from(h) * scale).round() as u32;
        if tw < MIN_SIDE.min(w) || th < MIN_SIDE.min(h) {
            break;
        }
        check_deadline(settings.deadline)?;
        let smaller = ops::resize(image, tw, th, false)?;
        check_deadline(settings.deadline)?;
        let bytes = encode(&smaller, &floor_settings)?;
        if fits(&bytes) {
            return Ok(Fitted {
                bytes,
                width: tw,
                height: th,
                quality: floor,
            });
        }
        floor_size = bytes.len() as u64;
    }
    Err(PipelineError::BudgetNotMet { max_bytes })
}
