//! Task keys and variants: a task is the MD5 of the uploaded bytes, a
//! variant is one set of options applied to it.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::pipeline::{AutoFormat, AutoQuality, Fit, Format, Limits, Options, Step};

/// Hex MD5 of an upload's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskKey(String);

impl TaskKey {
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Md5::digest(bytes);
        let mut hex = String::with_capacity(32);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        Self(hex)
    }

    /// Accepts a client-given key: 32 hex digits (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TaskKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a variant's output format is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    Fixed(Format),
    /// `format=auto`: the smallest of webp, avif, jpg and png at the
    /// variant's score target (always with `QualityChoice::Auto`).
    Auto,
}

impl FormatChoice {
    /// The format's name, or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fixed(f) => f.name(),
            Self::Auto => "auto",
        }
    }

    /// The format when it is fixed.
    pub fn fixed(self) -> Option<Format> {
        match self {
            Self::Fixed(f) => Some(f),
            Self::Auto => None,
        }
    }
}

/// How a variant's quality is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityChoice {
    /// 1-100.
    Fixed(u8),
    /// `quality=auto`: the lowest quality whose output scores at least
    /// `target` (SSIMULACRA2, 30-100).
    Auto { target: u8 },
}

impl QualityChoice {
    /// The quality when it is fixed.
    pub fn fixed(self) -> Option<u8> {
        match self {
            Self::Fixed(q) => Some(q),
            Self::Auto { .. } => None,
        }
    }

    /// The score target of an auto quality.
    pub fn target(self) -> Option<u8> {
        match self {
            Self::Fixed(_) => None,
            Self::Auto { target } => Some(target),
        }
    }
}

/// The options of one variant, as clients give them. `quality` is always
/// resolved (the format's default when not given, the configured target
/// for `auto` without one), so that "no quality" and "the default quality"
/// are the same variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantSpec {
    pub format: FormatChoice,
    pub quality: QualityChoice,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub max_bytes: Option<u64>,
}

impl VariantSpec {
    /// Whether the format or the quality is chosen by score.
    pub fn is_auto(&self) -> bool {
        matches!(self.quality, QualityChoice::Auto { .. }) || self.format == FormatChoice::Auto
    }

    /// The pipeline options for this variant (`format=auto` with the
    /// pipeline's default candidates; the job store sets the server's
    /// AVIF bound).
    pub fn options(&self, limits: Limits) -> Options {
        let mut steps = Vec::new();
        if self.width.is_some() || self.height.is_some() {
            steps.push(Step::Resize {
                width: self.width,
                height: self.height,
                fit: self.fit,
            });
        }
        let (quality, auto_quality) = match self.quality {
            QualityChoice::Fixed(q) => (Some(q), None),
            QualityChoice::Auto { target } => (
                None,
                Some(AutoQuality {
                    target: f32::from(target),
                }),
            ),
        };
        Options {
            format: self.format.fixed().unwrap_or_default(),
            quality,
            auto_quality,
            auto_format: (self.format == FormatChoice::Auto).then(AutoFormat::default),
            steps,
            max_bytes: self.max_bytes,
            limits,
            ..Options::default()
        }
    }

    /// The download query that picks exactly this variant (and its name in
    /// the shared backend): `format=webp&quality=80`,
    /// `format=auto&quality=auto&target=80`.
    pub fn query(&self) -> String {
        let mut q = format!("format={}", self.format.name());
        match self.quality {
            QualityChoice::Fixed(quality) => q.push_str(&format!("&quality={quality}")),
            QualityChoice::Auto { target } => q.push_str(&format!("&quality=auto&target={target}")),
        }
        if let Some(w) = self.width {
            q.push_str(&format!("&width={w}"));
        }
        if let Some(h) = self.height {
            q.push_str(&format!("&height={h}"));
        }
        if self.width.is_some() || self.height.is_some() {
            q.push_str(&format!("&fit={}", self.fit.name()));
        }
        if let Some(b) = self.max_bytes {
            q.push_str(&format!("&max_bytes={b}"));
        }
        q
    }

    /// A short name safe in file names: `q80-w800-inside` (then the
    /// extension), `qauto-t80` for `quality=auto` in a fixed format,
    /// `auto-t80` for `format=auto`.
    pub fn file_stem(&self) -> String {
        let mut s = match (self.format, self.quality) {
            (_, QualityChoice::Fixed(quality)) => format!("q{quality}"),
            (FormatChoice::Auto, QualityChoice::Auto { target }) => format!("auto-t{target}"),
            (FormatChoice::Fixed(_), QualityChoice::Auto { target }) => format!("qauto-t{target}"),
        };
        if let Some(w) = self.width {
            s.push_str(&format!("-w{w}"));
        }
        if let Some(h) = self.height {
            s.push_str(&format!("-h{h}"));
        }
        if self.width.is_some() || self.height.is_some() {
            s.push('-');
            s.push_str(self.fit.name());
        }
        if let Some(b) = self.max_bytes {
            s.push_str(&format!("-max{b}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_key_is_the_md5_hex_of_the_bytes() {
        assert_eq!(
            TaskKey::of(b"").as_str(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(TaskKey::parse("D41D8CD98F00B204E9800998ECF8427E").is_some());
        assert!(TaskKey::parse("../etc/passwd").is_none());
        assert!(TaskKey::parse("abc").is_none());
    }

    #[test]
    fn a_resize_box_becomes_a_resize_step() {
        let spec = VariantSpec {
            format: FormatChoice::Fixed(Format::Jpeg),
            quality: QualityChoice::Fixed(70),
            width: Some(800),
            height: None,
            fit: Fit::Inside,
            max_bytes: None,
        };
        let opts = spec.options(Limits::default());
        assert_eq!(opts.steps.len(), 1);
        assert_eq!(spec.file_stem(), "q70-w800-inside");
        assert_eq!(spec.query(), "format=jpg&quality=70&width=800&fit=inside");
    }

    #[test]
    fn an_auto_variant_is_keyed_by_auto_and_its_target() {
        let base = VariantSpec {
            format: FormatChoice::Auto,
            quality: QualityChoice::Auto { target: 80 },
            width: None,
            height: None,
            fit: Fit::Inside,
            max_bytes: Some(20_000),
        };
        assert_eq!(
            base.query(),
            "format=auto&quality=auto&target=80&max_bytes=20000"
        );
        assert_eq!(base.file_stem(), "auto-t80-max20000");
        let webp_auto = VariantSpec {
            format: FormatChoice::Fixed(Format::Webp),
            ..base
        };
        assert_eq!(
            webp_auto.query(),
            "format=webp&quality=auto&target=80&max_bytes=20000"
        );
        // Distinct names, so their result copies and ETags never collide.
        assert_eq!(webp_auto.file_stem(), "qauto-t80-max20000");
        let fixed = VariantSpec {
            format: FormatChoice::Fixed(Format::Webp),
            quality: QualityChoice::Fixed(80),
            ..base
        };
        assert_ne!(fixed, webp_auto);
        assert_ne!(fixed.query(), webp_auto.query());

        let opts = base.options(Limits::default());
        assert_eq!(opts.auto_quality.map(|a| a.target), Some(80.0));
        assert!(opts.auto_format.is_some());
        assert_eq!(opts.quality, None);
        let opts = webp_auto.options(Limits::default());
        assert!(opts.auto_format.is_none());
        assert_eq!(opts.format, Format::Webp);
        let opts = fixed.options(Limits::default());
        assert!(!opts.is_auto());
        assert_eq!(opts.quality, Some(80));
    }
}
