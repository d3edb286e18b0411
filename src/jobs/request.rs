//! Upload options as clients send them (multipart fields over HTTP, JSON
//! fields over `/ws`), checked and turned into a `VariantSpec`. One parser
//! for every protocol.

use serde::{Deserialize, Deserializer};

use super::VariantSpec;
use crate::pipeline::{Fit, Format};

/// Raw upload options: text as received (numbers are accepted too in JSON).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UploadOptions {
    #[serde(default, deserialize_with = "text_or_number")]
    pub format: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub quality: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub width: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub height: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub fit: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub max_bytes: Option<String>,
}

/// The smallest and largest byte budgets (`max_bytes`).
pub const MIN_BUDGET: u64 = 64;
pub const MAX_BUDGET: u64 = 1_000_000_000_000;

/// An option that cannot be used; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

impl UploadOptions {
    /// Whether `name` is an option field (others are ignored).
    pub fn accepts(name: &str) -> bool {
        Self::default().slot(name).is_some()
    }

    /// Sets a field by its form name; unknown names are ignored.
    pub fn set(&mut self, name: &str, value: String) -> bool {
        match self.slot(name) {
            Some(slot) => {
                *slot = Some(value);
                true
            }
            None => false,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "format" => &mut self.format,
            "quality" => &mut self.quality,
            "width" => &mut self.width,
            "height" => &mut self.height,
            "fit" => &mut self.fit,
            "max_bytes" => &mut self.max_bytes,
            _ => return None,
        })
    }

    /// Whether any option is given (a download without any picks the latest).
    pub fn is_empty(&self) -> bool {
        self.format.is_none()
            && self.quality.is_none()
            && self.width.is_none()
            && self.height.is_none()
            && self.fit.is_none()
            && self.max_bytes.is_none()
    }

    /// Checks every field and builds the variant. `max_dimension` bounds
    /// `width` and `height`.
    pub fn to_spec(&self, max_dimension: u32) -> Result<VariantSpec, OptionError> {
        let format = match non_empty(&self.format) {
            None => Format::Webp,
            Some(f) => f
                .parse::<Format>()
                .map_err(|e| OptionError(format!("format: {e}")))?,
        };
        if !format.available() {
            return Err(OptionError(format!(
                "format: {format} is not available in this build"
            )));
        }
        let quality = match non_empty(&self.quality) {
            None => format.default_quality(),
            Some(q) => match q.parse::<u8>() {
                Ok(q) if (1..=100).contains(&q) => q,
                _ => {
                    return Err(OptionError(format!(
                        "quality: {q:?} is not a whole number from 1 to 100"
                    )))
                }
            },
        };
        let dim = |name: &str, v: &Option<String>| -> Result<Option<u32>, OptionError> {
            match non_empty(v) {
                None => Ok(None),
                Some(t) => match t.parse::<u32>() {
                    Ok(n) if n >= 1 && n <= max_dimension => Ok(Some(n)),
                    _ => Err(OptionError(format!(
                        "{name}: {t:?} is not a whole number from 1 to {max_dimension}"
                    ))),
                },
            }
        };
        let width = dim("width", &self.width)?;
        let height = dim("height", &self.height)?;
        let fit = match non_empty(&self.fit) {
            None => Fit::Inside,
            Some(f) => f
                .parse::<Fit>()
                .map_err(|e| OptionError(format!("fit: {e}")))?,
        };
        let max_bytes = match non_empty(&self.max_bytes) {
            None => None,
            Some(t) => match crate::config::parse_size(t) {
                Ok(n) if (MIN_BUDGET..=MAX_BUDGET).contains(&n) => Some(n),
                _ => {
                    return Err(OptionError(format!(
                        "max_bytes: {t:?} is not a size from 64 bytes to 1TB (e.g. 500KB or 200000)"
                    )))
                }
            },
        };
        Ok(VariantSpec {
            format,
            quality,
            width,
            height,
            fit,
            max_bytes,
        })
    }

    /// For downloads: whether `spec` agrees with every option given here.
    pub fn matches(&self, spec: &VariantSpec, max_dimension: u32) -> Result<bool, OptionError> {
        let mut full = self.clone();
        // Fill what was not given from the candidate itself, then compare.
        full.format.get_or_insert_with(|| spec.format.name().into());
        let wanted = full.to_spec(max_dimension)?;
        Ok(wanted.format == spec.format
            && (non_empty(&self.quality).is_none() || wanted.quality == spec.quality)
            && (non_empty(&self.width).is_none() || wanted.width == spec.width)
            && (non_empty(&self.height).is_none() || wanted.height == spec.height)
            && (non_empty(&self.fit).is_none() || wanted.fit == spec.fit)
            && (non_empty(&self.max_bytes).is_none() || wanted.max_bytes == spec.max_bytes))
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> UploadOptions {
        let mut o = UploadOptions::default();
        for (k, v) in pairs {
            o.set(k, v.to_string());
        }
        o
    }

    #[test]
    fn defaults_are_webp_at_80() {
        let spec = UploadOptions::default().to_spec(16384).unwrap();
        assert_eq!(spec.format, Format::Webp);
        assert_eq!(spec.quality, 80);
        assert_eq!(
            opts(&[("format", "avif")])
                .to_spec(16384)
                .map(|s| s.quality)
                .ok(),
            Format::Avif.available().then_some(60)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        for (field, value) in [
            ("format", "gif"),
            ("quality", "0"),
            ("quality", "101"),
            ("quality", "high"),
            ("width", "-3"),
            ("height", "99999"),
            ("fit", "stretch"),
            ("max_bytes", "tiny"),
        ] {
            let err = opts(&[(field, value)]).to_spec(16384).unwrap_err();
            assert!(err.0.starts_with(field), "{field}={value}: {err}");
        }
    }

    #[test]
    fn json_numbers_are_accepted() {
        let o: UploadOptions =
            serde_json::from_str(r#"{"format":"jpeg","quality":70,"width":800}"#).unwrap();
        let spec = o.to_spec(16384).unwrap();
        assert_eq!(
            (spec.format, spec.quality, spec.width),
            (Format::Jpeg, 70, Some(800))
        );
    }

    #[test]
    fn download_selectors_match_partially() {
        let spec = opts(&[("format", "png"), ("quality", "60")])
            .to_spec(16384)
            .unwrap();
        assert!(opts(&[("format", "png")]).matches(&spec, 16384).unwrap());
        assert!(opts(&[("quality", "60")]).matches(&spec, 16384).unwrap());
        assert!(!opts(&[("format", "webp")]).matches(&spec, 16384).unwrap());
        assert!(!opts(&[("quality", "61")]).matches(&spec, 16384).unwrap());
    }
}
