//! What the pipeline returns.

use crate::{Format, InputFormat};

/// A processed image.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    /// `bytes.len()`.
    pub size: usize,
    pub original_size: usize,
    /// True when the (losslessly stripped) input was smaller than any encode.
    pub kept_original: bool,
    /// The quality of the encode returned (after any byte-budget search);
    /// `None` when the original was kept.
    pub quality: Option<u8>,
    /// SSIMULACRA2 of `bytes` against the pixels just before encoding, with
    /// `quality=auto` / `format=auto`; `None` otherwise, for AVIF (not
    /// scored in this build) and after a budget downscale. 100 = identical.
    pub score: Option<f64>,
    /// The score target of an auto job; `None` otherwise.
    pub target: Option<f32>,
    /// Whether `score` reached `target`: `Some(false)` is `target_not_met`
    /// (even the highest quality falls short, or `max_bytes` forced less);
    /// `None` without a target or without a score.
    pub target_met: Option<bool>,
    /// Trial encodes the auto search made (0 for fixed-quality jobs).
    pub trials: u32,
    /// `max_bytes` won over the target: the output has a lower quality (or
    /// size) than the target asked for.
    pub budget_limited: bool,
    /// The search and `score` ran on a sample of full-resolution tiles
    /// (images above 1 MP), not on the whole image.
    pub score_sampled: bool,
}

/// What a header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: InputFormat,
    pub width: u32,
    pub height: u32,
}
