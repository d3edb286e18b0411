//! pixpress-pipeline: the one image pipeline every pixpress protocol uses.
//!
//! `process(bytes, &Options)` sniffs the format from the bytes, decodes under
//! limits, applies EXIF orientation and colour management, runs operations,
//! encodes (WebP / JPEG / PNG / AVIF) with metadata stripped and, when asked,
//! fits a byte budget. It owns no threads, no I/O and no globals: callers
//! (the server's worker pool) decide where and when it runs.

mod error;
mod format;
mod options;
mod output;

pub use error::PipelineError;
pub use format::{Format, InputFormat};
pub use options::{Fit, FlipAxis, Limits, Options, Step};
pub use output::{ImageInfo, Output};

/// Runs the whole pipeline on `input`.
pub fn process(input: &[u8], options: &Options) -> Result<Output, PipelineError> {
    let _ = (input, options);
    Err(PipelineError::Encode("not implemented".into()))
}

/// Reads only the header: format and dimensions, checked against `limits`.
pub fn probe(input: &[u8], limits: &Limits) -> Result<ImageInfo, PipelineError> {
    let _ = (input, limits);
    Err(PipelineError::UnsupportedFormat)
}
