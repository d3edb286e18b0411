//! What to do with an image: output format, quality, resize box, steps, limits.

use std::time::Instant;

use crate::{AutoFormat, AutoQuality, AutoScoring, Format};

/// How a resize box is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fit {
    /// Scale down (never up) to fit inside the box, aspect kept.
    #[default]
    Inside,
    /// Scale to cover the box, aspect kept, then centre-crop to it.
    Cover,
    /// Stretch to exactly the box.
    Fill,
}

impl std::str::FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inside" | "contain" => Ok(Self::Inside),
            "cover" => Ok(Self::Cover),
            "fill" => Ok(Self::Fill),
            other => Err(format!("unknown fit {other:?}: use inside, cover or fill")),
        }
    }
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Inside => "inside",
            Self::Cover => "cover",
            Self::Fill => "fill",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlipAxis {
    Horizontal,
    Vertical,
}

/// One operation on the pixels, in order. Floats are stored as they were
/// given; `Step` is hashable so that option sets can key a cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Resize {
        width: Option<u32>,
        height: Option<u32>,
        fit: Fit,
    },
    Crop {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    /// Clockwise degrees: 90, 180 or 270.
    Rotate(u16),
    Flip(FlipAxis),
    Grayscale,
    Blur(f32),
    Sharpen,
    /// -100..=100
    Brightness(i32),
    /// -100..=100
    Contrast(f32),
    Invert,
}

/// Decode limits, checked against the header before pixels are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_input_bytes: usize,
    pub max_pixels: u64,
    pub max_dimension: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_dimension: 16_384,
        }
    }
}

/// Everything `process` needs besides the bytes.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// 1-100; `None` means the format's default.
    pub quality: Option<u8>,
    /// Operations applied after EXIF orientation, in order.
    pub steps: Vec<Step>,
    /// Byte budget: search quality, then downscale, to fit.
    pub max_bytes: Option<u64>,
    /// Background for flattening alpha into JPEG (white by default).
    pub background: Option<[u8; 3]>,
    pub limits: Limits,
    /// Give up (with `PipelineError::Timeout`) once this instant has passed.
    pub deadline: Option<Instant>,
    /// `quality=auto`: search the quality to a score target; `quality` is
    /// then ignored.
    pub auto_quality: Option<AutoQuality>,
    /// `format=auto`: choose among candidate formats; `format` is then
    /// ignored. The target is `auto_quality`'s, or 80 without it.
    pub auto_format: Option<AutoFormat>,
    /// How the auto search scores images over a megapixel.
    pub auto_scoring: AutoScoring,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            format: Format::Webp,
            quality: None,
            steps: Vec::new(),
            max_bytes: None,
            background: None,
            limits: Limits::default(),
            deadline: None,
            auto_quality: None,
            auto_format: None,
            auto_scoring: AutoScoring::default(),
        }
    }
}

impl Options {
    /// Options for an output format with its default quality.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    /// Whether the quality or the format is chosen by score.
    pub fn is_auto(&self) -> bool {
        self.auto_quality.is_some() || self.auto_format.is_some()
    }

    /// The quality actually used: the given one clamped to 1-100, or the default.
    pub fn effective_quality(&self) -> u8 {
        self.quality
            .map(|q| q.clamp(1, 100))
            .unwrap_or(self.format.default_quality())
    }
}
