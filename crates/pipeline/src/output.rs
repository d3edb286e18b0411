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
}

/// What a header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: InputFormat,
    pub width: u32,
    pub height: u32,
}
