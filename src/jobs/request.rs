//! Upload options as clients send them (multipart fields over HTTP, JSON
//! fields over `/ws`), checked and turned into a `VariantSpec`. One parser
//! for every protocol.

use serde::{Deserialize, Deserializer};

use super::variant::{FormatChoice, QualityChoice};
use super::VariantSpec;
use crate::pipeline::{Fit, Format};

/// The lowest and highest score targets (`target`), and the default
/// without settings (the pipeline's).
pub const MIN_TARGET: u8 = crate::pipeline::MIN_TARGET as u8;
pub const MAX_TARGET: u8 = crate::pipeline::MAX_TARGET as u8;
pub const DEFAULT_TARGET: u8 = crate::pipeline::DEFAULT_TARGET as u8;

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
    #[serde(default, deserialize_with = "text_or_number")]
    pub target: Option<String>,
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
            "target" => &mut self.target,
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
            && self.target.is_none()
    }

    /// Checks every field and builds the variant.
    ///
    /// `quality` is 1-100 or `auto`; `target` (30-100, whole) is checked
    /// whenever it is given but used only by an auto variant (the default is
    /// `rules.auto_target`). `format=auto` chooses the quality too: it is
    /// always an auto-quality variant, and a number given as `quality` with
    /// it is not used.
    pub fn to_spec(&self, rules: &OptionRules) -> Result<VariantSpec, OptionError> {
        let format = self
            .format_choice()?
            .unwrap_or(FormatChoice::Fixed(Format::Webp));
        let target = self.target()?.unwrap_or(rules.auto_target);
        let quality = match (format, self.quality_request()?) {
            (FormatChoice::Auto, _) | (_, Some(QualityRequest::Auto)) => {
                QualityChoice::Auto { target }
            }
            (FormatChoice::Fixed(_), Some(QualityRequest::Number(q))) => QualityChoice::Fixed(q),
            (FormatChoice::Fixed(f), None) => QualityChoice::Fixed(f.default_quality()),
        };
        Ok(VariantSpec {
            format,
            quality,
            width: self.dimension("width", &self.width, rules.max_dimension)?,
            height: self.dimension("height", &self.height, rules.max_dimension)?,
            fit: self.fit()?.unwrap_or_default(),
            max_bytes: self.max_bytes()?,
        })
    }

    /// For downloads: whether `spec` agrees with every option given here
    /// (`format=auto` and `quality=auto` pick auto variants, `target` an
    /// auto variant with that target).
    pub fn matches(&self, spec: &VariantSpec, rules: &OptionRules) -> Result<bool, OptionError> {
        let format = self.format_choice()?.is_none_or(|f| f == spec.format);
        let quality = match self.quality_request()? {
            None => true,
            Some(QualityRequest::Number(q)) => spec.quality == QualityChoice::Fixed(q),
            Some(QualityRequest::Auto) => spec.quality.target().is_some(),
        };
        let target = self
            .target()?
            .is_none_or(|t| spec.quality.target() == Some(t));
        let width = non_empty(&self.width).is_none()
            || self.dimension("width", &self.width, rules.max_dimension)? == spec.width;
        let height = non_empty(&self.height).is_none()
            || self.dimension("height", &self.height, rules.max_dimension)? == spec.height;
        let fit = self.fit()?.is_none_or(|f| f == spec.fit);
        let max_bytes = non_empty(&self.max_bytes).is_none() || self.max_bytes()? == spec.max_bytes;
        Ok(format && quality && target && width && height && fit && max_bytes)
    }

    fn format_choice(&self) -> Result<Option<FormatChoice>, OptionError> {
        let Some(f) = non_empty(&self.format) else {
            return Ok(None);
        };
        if f.eq_ignore_ascii_case(AUTO) {
            return Ok(Some(FormatChoice::Auto));
        }
        let format = f
            .parse::<Format>()
            .map_err(|e| OptionError(format!("format: {e}, or auto")))?;
        if !format.available() {
            return Err(OptionError(format!(
                "format: {format} is not available in this build"
            )));
        }
        Ok(Some(FormatChoice::Fixed(format)))
    }

    fn quality_request(&self) -> Result<Option<QualityRequest>, OptionError> {
        let Some(q) = non_empty(&self.quality) else {
            return Ok(None);
        };
        if q.eq_ignore_ascii_case(AUTO) {
            return Ok(Some(QualityRequest::Auto));
        }
        match q.parse::<u8>() {
            Ok(n) if (1..=100).contains(&n) => Ok(Some(QualityRequest::Number(n))),
            _ => Err(OptionError(format!(
                "quality: {q:?} is not a whole number from 1 to 100, or auto"
            ))),
        }
    }

    fn target(&self) -> Result<Option<u8>, OptionError> {
        let Some(t) = non_empty(&self.target) else {
            return Ok(None);
        };
        match t.parse::<u8>() {
            Ok(n) if (MIN_TARGET..=MAX_TARGET).contains(&n) => Ok(Some(n)),
            _ => Err(OptionError(format!(
                "target: {t:?} is not a whole number from {MIN_TARGET} to {MAX_TARGET}"
            ))),
        }
    }

    fn dimension(
        &self,
        name: &str,
        value: &Option<String>,
        max_dimension: u32,
    ) -> Result<Option<u32>, OptionError> {
        match non_empty(value) {
            None => Ok(None),
            Some(t) => match t.parse::<u32>() {
                Ok(n) if n >= 1 && n <= max_dimension => Ok(Some(n)),
                _ => Err(OptionError(format!(
                    "{name}: {t:?} is not a whole number from 1 to {max_dimension}"
                ))),
            },
        }
    }

    fn fit(&self) -> Result<Option<Fit>, OptionError> {
        non_empty(&self.fit)
            .map(|f| {
                f.parse::<Fit>()
                    .map_err(|e| OptionError(format!("fit: {e}")))
            })
            .transpose()
    }

    fn max_bytes(&self) -> Result<Option<u64>, OptionError> {
        let Some(t) = non_empty(&self.max_bytes) else {
            return Ok(None);
        };
        match crate::config::parse_size(t) {
            Ok(n) if (MIN_BUDGET..=MAX_BUDGET).contains(&n) => Ok(Some(n)),
            _ => Err(OptionError(format!(
                "max_bytes: {t:?} is not a size from 64 bytes to 1TB (e.g. 500KB or 200000)"
            ))),
        }
    }
}

/// What the options of a request are checked against: the server's bounds
/// and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionRules {
    /// Largest `width` and `height`.
    pub max_dimension: u32,
    /// The score target of `quality=auto` without `target`.
    pub auto_target: u8,
}

impl OptionRules {
    /// Rules bounding the resize box by `max_dimension`, with the built-in
    /// default target.
    pub fn within(max_dimension: u32) -> Self {
        Self {
            max_dimension,
            auto_target: DEFAULT_TARGET,
        }
    }
}

impl From<&crate::config::Settings> for OptionRules {
    fn from(settings: &crate::config::Settings) -> Self {
        Self {
            max_dimension: settings.limits.max_dimension,
            auto_target: settings.quality.auto_target,
        }
    }
}

/// The word that asks for an automatic choice.
const AUTO: &str = "auto";

/// A `quality` as given: a number or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QualityRequest {
    Number(u8),
    Auto,
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

    const RULES: OptionRules = OptionRules {
        max_dimension: 16384,
        auto_target: 80,
    };

    fn opts(pairs: &[(&str, &str)]) -> UploadOptions {
        let mut o = UploadOptions::default();
        for (k, v) in pairs {
            o.set(k, v.to_string());
        }
        o
    }

    fn spec(pairs: &[(&str, &str)]) -> VariantSpec {
        opts(pairs).to_spec(&RULES).unwrap()
    }

    #[test]
    fn defaults_are_webp_at_80() {
        let spec = UploadOptions::default().to_spec(&RULES).unwrap();
        assert_eq!(spec.format, FormatChoice::Fixed(Format::Webp));
        assert_eq!(spec.quality, QualityChoice::Fixed(80));
        assert_eq!(
            opts(&[("format", "avif")])
                .to_spec(&RULES)
                .map(|s| s.quality)
                .ok(),
            Format::Avif.available().then_some(QualityChoice::Fixed(60))
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
            ("target", "20"),
            ("target", "101"),
            ("target", "abc"),
            ("target", "80.5"),
        ] {
            let err = opts(&[(field, value)]).to_spec(&RULES).unwrap_err();
            assert!(err.0.starts_with(field), "{field}={value}: {err}");
        }
    }

    #[test]
    fn json_numbers_are_accepted() {
        let o: UploadOptions =
            serde_json::from_str(r#"{"format":"jpeg","quality":70,"width":800}"#).unwrap();
        let spec = o.to_spec(&RULES).unwrap();
        assert_eq!(
            (spec.format, spec.quality, spec.width),
            (
                FormatChoice::Fixed(Format::Jpeg),
                QualityChoice::Fixed(70),
                Some(800)
            )
        );
        let o: UploadOptions = serde_json::from_str(r#"{"quality":"auto","target":90}"#).unwrap();
        assert_eq!(
            o.to_spec(&RULES).unwrap().quality,
            QualityChoice::Auto { target: 90 }
        );
    }

    #[test]
    fn quality_auto_takes_the_configured_target_unless_one_is_given() {
        let rules = OptionRules {
            auto_target: 75,
            ..RULES
        };
        let auto = opts(&[("quality", "auto")]).to_spec(&rules).unwrap();
        assert_eq!(auto.format, FormatChoice::Fixed(Format::Webp));
        assert_eq!(auto.quality, QualityChoice::Auto { target: 75 });
        // The default target given explicitly is the same variant.
        assert_eq!(
            opts(&[("quality", "AUTO"), ("target", "75")]).to_spec(&rules),
            Ok(auto)
        );
        assert_eq!(
            spec(&[("quality", "auto"), ("target", "30")]).quality,
            QualityChoice::Auto { target: 30 }
        );
        assert_eq!(
            spec(&[("quality", "auto"), ("target", "100")]).quality,
            QualityChoice::Auto { target: 100 }
        );
    }

    #[test]
    fn format_auto_chooses_the_quality_too() {
        let auto = spec(&[("format", "auto")]);
        assert_eq!(auto.format, FormatChoice::Auto);
        assert_eq!(auto.quality, QualityChoice::Auto { target: 80 });
        // A number given with format=auto is not used: the same variant.
        assert_eq!(spec(&[("format", "auto"), ("quality", "40")]), auto);
        assert_eq!(spec(&[("format", "auto"), ("quality", "auto")]), auto);
        assert_ne!(spec(&[("format", "auto"), ("target", "90")]), auto);
    }

    #[test]
    fn a_target_does_not_change_a_fixed_variant() {
        assert_eq!(
            spec(&[("quality", "70"), ("target", "90")]),
            spec(&[("quality", "70")])
        );
    }

    #[test]
    fn download_selectors_match_partially() {
        let spec = spec(&[("format", "png"), ("quality", "60")]);
        let matches = |pairs: &[(&str, &str)]| opts(pairs).matches(&spec, &RULES).unwrap();
        assert!(matches(&[("format", "png")]));
        assert!(matches(&[("quality", "60")]));
        assert!(!matches(&[("format", "webp")]));
        assert!(!matches(&[("quality", "61")]));
        assert!(!matches(&[("format", "auto")]));
        assert!(!matches(&[("quality", "auto")]));
    }

    #[test]
    fn download_selectors_tell_auto_variants_apart() {
        let format_auto = spec(&[("format", "auto"), ("target", "85")]);
        let quality_auto = spec(&[("format", "jpg"), ("quality", "auto")]);
        let fixed = spec(&[("format", "jpg"), ("quality", "80")]);
        let picks = |pairs: &[(&str, &str)]| -> Vec<bool> {
            [format_auto, quality_auto, fixed]
                .iter()
                .map(|s| opts(pairs).matches(s, &RULES).unwrap())
                .collect()
        };
        assert_eq!(picks(&[("format", "auto")]), [true, false, false]);
        assert_eq!(picks(&[("quality", "auto")]), [true, true, false]);
        assert_eq!(picks(&[("format", "jpg")]), [false, true, true]);
        assert_eq!(picks(&[("quality", "80")]), [false, false, true]);
        assert_eq!(picks(&[("target", "85")]), [true, false, false]);
        assert_eq!(picks(&[("target", "80")]), [false, true, false]);
        assert!(opts(&[("target", "abc")]).matches(&fixed, &RULES).is_err());
    }
}
