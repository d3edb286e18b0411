//! Task keys and variants: a task is the MD5 of the uploaded bytes, a
//! variant is one set of options applied to it.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::pipeline::{Fit, Format, Limits, Options, Step};

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

/// The options of one variant, as clients give them. `quality` is always
/// resolved (the format's default when not given), so that "no quality"
/// and "the default quality" are the same variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantSpec {
    pub format: Format,
    pub quality: u8,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub max_bytes: Option<u64>,
}

impl VariantSpec {
    /// The pipeline options for this variant.
    pub fn options(&self, limits: Limits) -> Options {
        let mut steps = Vec::new();
        if self.width.is_some() || self.height.is_some() {
            steps.push(Step::Resize {
                width: self.width,
                height: self.height,
                fit: self.fit,
            });
        }
        Options {
            format: self.format,
            quality: Some(self.quality),
            steps,
            max_bytes: self.max_bytes,
            limits,
            ..Options::default()
        }
    }

    /// The download query that picks exactly this variant.
    pub fn query(&self) -> String {
        let mut q = format!("format={}&quality={}", self.format.name(), self.quality);
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

    /// A short name safe in file names: `q80-w800-inside.webp`.
    pub fn file_stem(&self) -> String {
        let mut s = format!("q{}", self.quality);
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
            format: Format::Jpeg,
            quality: 70,
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
}
