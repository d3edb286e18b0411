//! The pipeline's errors, each with a stable machine code.

/// Everything that can go wrong while processing one image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The bytes are not an image format we decode.
    #[error("unsupported format: not a JPEG, PNG, WebP, GIF, BMP or TIFF image")]
    UnsupportedFormat,
    /// The input is larger than `Limits::max_input_bytes`.
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// Width, height or pixel count over the limits (checked from the header).
    #[error("image of {width}x{height} exceeds the limits ({max_dimension} px per side, {max_pixels} pixels)")]
    TooManyPixels {
        width: u32,
        height: u32,
        max_dimension: u32,
        max_pixels: u64,
    },
    /// Corrupt, truncated or otherwise undecodable data.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// An operation's parameters do not fit the image (e.g. a crop outside it).
    #[error("invalid operation: {0}")]
    InvalidOperation(String),
    /// The byte budget could not be met. The text is shown to users as is.
    #[error("Image could not be compressed below {}.", human_bytes(*max_bytes))]
    BudgetNotMet { max_bytes: u64 },
    /// The encoder failed (its panic is contained and reported here).
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The format was compiled out of this build.
    #[error("output format {0} is not available in this build")]
    FormatUnavailable(&'static str),
    /// `AutoQuality::target` outside 30..=100 (or not a number).
    #[error("invalid target {0}: the score target must be between 30 and 100")]
    InvalidTarget(String),
    /// The deadline in `Options::deadline` passed.
    #[error("processing timed out")]
    Timeout,
}

impl PipelineError {
    /// Stable machine-readable code (used in JSON errors).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat => "unsupported_format",
            Self::InputTooLarge { .. } => "too_large",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::InvalidImage(_) => "invalid_image",
            Self::InvalidOperation(_) => "invalid_operation",
            Self::BudgetNotMet { .. } => "budget_not_met",
            Self::Encode(_) => "encode_failed",
            Self::FormatUnavailable(_) => "format_unavailable",
            Self::InvalidTarget(_) => "invalid_target",
            Self::Timeout => "processing_timeout",
        }
    }
}

/// `500kB`, `1.5MB`, `900B`: decimal units, as people read budgets.
pub fn human_bytes(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(100_000) {
        let mb = n as f64 / 1_000_000.0;
        format!("{}MB", trim(mb))
    } else if n >= 1_000 && n.is_multiple_of(100) {
        format!("{}kB", trim(n as f64 / 1_000.0))
    } else {
        format!("{n}B")
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_message_names_the_budget_like_the_spec() {
        let e = PipelineError::BudgetNotMet { max_bytes: 500_000 };
        assert_eq!(e.to_string(), "Image could not be compressed below 500kB.");
        assert_eq!(human_bytes(1_500_000), "1.5MB");
        assert_eq!(human_bytes(123), "123B");
    }
}
