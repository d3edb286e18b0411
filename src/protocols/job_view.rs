//! The job views every protocol answers with: one variant's status as
//! `GET /status` and `/ws` report it, and a quality as answered. They
//! describe the job service's state for clients and belong to no single
//! protocol, so HTTP and WebSocket handlers share them from here.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Code;
use crate::jobs::{QualityChoice, Task, Variant, VariantState};
use crate::links::DownloadLinks;

/// A quality as answered: a number, or `auto` for an auto variant that is
/// not done yet. Fixed variants always answer their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityValue {
    Number(u8),
    Auto,
}

impl QualityValue {
    /// The quality a variant asked for.
    pub fn requested(quality: QualityChoice) -> Self {
        match quality {
            QualityChoice::Fixed(q) => Self::Number(q),
            QualityChoice::Auto { .. } => Self::Auto,
        }
    }
}

impl Serialize for QualityValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(q) => s.serialize_u8(*q),
            Self::Auto => s.serialize_str("auto"),
        }
    }
}

fn quality_alternatives() -> utoipa::openapi::schema::OneOfBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["auto"])),
        )
}

/// `quality` in the API document: 1-100 or `auto`.
pub fn quality_schema() -> utoipa::openapi::schema::Schema {
    quality_alternatives().build().into()
}

/// A reported quality, which is null when an auto variant kept the original.
fn reported_quality_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    quality_alternatives()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// One variant's status, as `/status` and `/ws` report it. An auto
/// variant reports `format` and `quality` as requested (`auto`) until it is
/// done, then the ones chosen, with the auto fields below; fixed variants
/// never carry those.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct VariantView {
    pub md5: String,
    pub status: &'static str,
    /// The format; for `format=auto`, `auto` until done, then the one chosen.
    pub format: &'static str,
    /// The quality; for an auto variant `auto` until done, then the one
    /// chosen (null when the original, stripped of metadata, was kept).
    #[schema(schema_with = reported_quality_schema)]
    pub quality: Option<QualityValue>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: Option<usize>,
    pub original_size: usize,
    pub error: Option<String>,
    /// The error's machine code, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub code: Option<Code>,
    /// Auto variants: the score target (SSIMULACRA2, 30-100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 30, maximum = 100)]
    pub target: Option<u8>,
    /// Auto variants, done: the output's SSIMULACRA2 score against the
    /// image before encoding (100 = identical); absent after a budget
    /// downscale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Auto variants, done: whether `score` reached `target`. `false` when
    /// even the highest quality falls short (that quality is kept) or
    /// `max_bytes` forced less; absent without a score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
    /// Auto variants, done: `max_bytes` won over the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_limited: Option<bool>,
    /// Auto variants, done: the score was measured on a sample of tiles
    /// (images over 1 MP, unless `quality.auto_exact_max_pixels` covers
    /// them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_sampled: Option<bool>,
    /// Where this variant is downloaded: `/download/{md5}?{its options}`,
    /// signed and with an `expires` when `download.signed_urls` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl VariantView {
    pub fn of(task: &Task, variant: &Variant) -> Self {
        let state = variant.state();
        let spec = &variant.spec;
        let mut view = Self {
            md5: task.key.to_string(),
            status: state.name(),
            format: spec.format.name(),
            quality: Some(QualityValue::requested(spec.quality)),
            width: None,
            height: None,
            size: None,
            original_size: task.original_size,
            error: None,
            code: None,
            target: spec.quality.target(),
            score: None,
            target_met: None,
            budget_limited: None,
            score_sampled: None,
            url: None,
        };
        match &state {
            VariantState::Done(f) => {
                view.width = Some(f.width);
                view.height = Some(f.height);
                view.size = Some(f.bytes.len());
                view.format = f.format.name();
                if spec.quality.fixed().is_none() {
                    view.quality = f.quality.map(QualityValue::Number);
                }
                if let Some(auto) = &f.auto {
                    view.score = auto.score.map(round_score);
                    view.target_met = auto.target_met;
                    view.budget_limited = Some(auto.budget_limited);
                    view.score_sampled = Some(auto.score_sampled);
                }
            }
            VariantState::Failed(e) => {
                view.error = Some(e.to_string());
                view.code = Some(e.code());
            }
            _ => {}
        }
        view
    }

    /// The view with the variant's download link.
    pub fn linked(task: &Task, variant: &Variant, links: &DownloadLinks) -> Self {
        Self {
            url: Some(links.url(task.key.as_str(), &variant.spec)),
            ..Self::of(task, variant)
        }
    }

    /// The fields that describe the result of an auto variant (for the
    /// `/ws` done frame), as `(name, value)` pairs of those present.
    pub fn auto_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        [
            ("target", self.target.map(|t| json!(t))),
            ("score", self.score.map(|s| json!(s))),
            ("target_met", self.target_met.map(|m| json!(m))),
            ("budget_limited", self.budget_limited.map(|b| json!(b))),
            ("score_sampled", self.score_sampled.map(|b| json!(b))),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

/// Scores are reported to two decimals, rounded down (so a score that
/// reaches an integer target still reads as reaching it, and one that
/// misses never reads as reaching it).
fn round_score(score: f64) -> f64 {
    (score * 100.0).floor() / 100.0
}
