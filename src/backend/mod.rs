//! The distributed job backend: what several instances share so that they
//! form one job service (`backend.kind: redis`).
//!
//! A backend must give, across instances: single flight per variant (one
//! instance claims it, the others get the claimed one), a work queue that
//! survives a dead worker (its job is taken again), each variant's state
//! and result with the cache TTL, and a broadcast of state changes so every
//! instance's local mirror (the `JobStore`'s watch channels) reacts at once.
//!
//! This module owns the data a backend stores: the variant record and its
//! field name, and how job states and errors become records and back. It
//! does not run jobs (the `WorkerPool` does) nor speak HTTP. In memory mode
//! there is no backend at all and the `JobStore` works alone.

pub mod redis;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::jobs::{Finished, JobError, UploadOptions, VariantSpec, VariantState};
use crate::pipeline::{Format, PipelineError};

pub use self::redis::RedisBackend;

/// A backend that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    NoAnswer(std::time::Duration),
    #[error("a stored record is unreadable: {0}")]
    BadRecord(String),
}

/// The name of a variant inside its task: the download query that picks
/// exactly it (`format=webp&quality=80&width=800&fit=inside`).
pub fn field_of(spec: &VariantSpec) -> String {
    spec.query()
}

/// The variant a field names, or `None` for a field that is not one.
pub fn spec_of(field: &str) -> Option<VariantSpec> {
    let mut options = UploadOptions::default();
    for pair in field.split('&') {
        let (name, value) = pair.split_once('=')?;
        if !options.set(name, value.to_owned()) {
            return None;
        }
    }
    options.to_spec(u32::MAX).ok()
}

/// Where a stored variant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Queued,
    Processing,
    Done,
    Error,
}

/// One variant's state as the backend stores and broadcasts it. A done
/// record describes the result; the bytes are stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub state: Phase,
    /// Size of the uploaded bytes.
    #[serde(default)]
    pub original_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

/// What a done variant produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub size: usize,
    pub kept_original: bool,
    /// Microseconds since the Unix epoch; orders results across instances.
    pub finished_at: u64,
}

/// A failed variant's error, enough to rebuild the same `JobError`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub code: String,
    /// The error's own text (for errors that carry one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The error's numbers (for errors that carry some), in field order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<u64>,
}

impl VariantRecord {
    pub fn queued(original_size: usize) -> Self {
        Self {
            state: Phase::Queued,
            original_size,
            result: None,
            failure: None,
        }
    }

    pub fn processing(original_size: usize) -> Self {
        Self {
            state: Phase::Processing,
            ..Self::queued(original_size)
        }
    }

    pub fn done(original_size: usize, finished: &Finished) -> Self {
        Self {
            state: Phase::Done,
            result: Some(ResultRecord {
                format: finished.format.name().to_owned(),
                width: finished.width,
                height: finished.height,
                size: finished.bytes.len(),
                kept_original: finished.kept_original,
                finished_at: finished.finished_seq,
            }),
            ..Self::queued(original_size)
        }
    }

    pub fn failed(original_size: usize, error: &JobError) -> Self {
        Self {
            state: Phase::Error,
            failure: Some(FailureRecord::of(error)),
            ..Self::queued(original_size)
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }

    pub fn from_json(text: &str) -> Result<Self, BackendError> {
        serde_json::from_str(text).map_err(|e| BackendError::BadRecord(format!("{e}: {text}")))
    }

    /// The local state this record stands for. A done record needs its
    /// result bytes (`result`), fetched by the caller.
    pub fn to_state(&self, result: Option<Bytes>) -> Result<VariantState, BackendError> {
        Ok(match self.state {
            Phase::Queued => VariantState::Queued,
            Phase::Processing => VariantState::Processing,
            Phase::Error => VariantState::Failed(
                self.failure
                    .as_ref()
                    .map(FailureRecord::to_error)
                    .unwrap_or(JobError::Panicked),
            ),
            Phase::Done => {
                let meta = self
                    .result
                    .as_ref()
                    .ok_or_else(|| BackendError::BadRecord("done without a result".into()))?;
                let bytes = result.ok_or_else(|| {
                    BackendError::BadRecord("done, but the result is gone".into())
                })?;
                let format = meta
                    .format
                    .parse::<Format>()
                    .map_err(|e| BackendError::BadRecord(e.to_string()))?;
                VariantState::Done(Arc::new(Finished {
                    bytes,
                    format,
                    width: meta.width,
                    height: meta.height,
                    kept_original: meta.kept_original,
                    finished_seq: meta.finished_at,
                }))
            }
        })
    }
}

impl FailureRecord {
    pub fn of(error: &JobError) -> Self {
        let (text, figures) = match error {
            JobError::Pipeline(p) => match p {
                PipelineError::InputTooLarge { size, limit } => {
                    (None, vec![*size as u64, *limit as u64])
                }
                PipelineError::TooManyPixels {
                    width,
                    height,
                    max_dimension,
                    max_pixels,
                } => (
                    None,
                    vec![
                        u64::from(*width),
                        u64::from(*height),
                        u64::from(*max_dimension),
                        *max_pixels,
                    ],
                ),
                PipelineError::InvalidImage(t)
                | PipelineError::InvalidOperation(t)
                | PipelineError::Encode(t)
                | PipelineError::InvalidTarget(t) => (Some(t.clone()), Vec::new()),
                PipelineError::BudgetNotMet { max_bytes } => (None, vec![*max_bytes]),
                PipelineError::FormatUnavailable(f) => (Some((*f).to_owned()), Vec::new()),
                PipelineError::UnsupportedFormat | PipelineError::Timeout => (None, Vec::new()),
            },
            _ => (None, Vec::new()),
        };
        Self {
            code: error.code().to_owned(),
            text,
            figures,
        }
    }

    /// The error this record was made from (an unknown code reads as an
    /// internal error).
    pub fn to_error(&self) -> JobError {
        let n = |i: usize| self.figures.get(i).copied().unwrap_or(0);
        let text = || self.text.clone().unwrap_or_default();
        let pipeline = match self.code.as_str() {
            "queue_full" => return JobError::QueueFull,
            "processing_timeout" => return JobError::Timeout,
            "shutting_down" => return JobError::ShuttingDown,
            "backend_unavailable" => return JobError::BackendUnavailable,
            "unsupported_format" => PipelineError::UnsupportedFormat,
            "too_large" => PipelineError::InputTooLarge {
                size: n(0) as usize,
                limit: n(1) as usize,
            },
            "too_many_pixels" => PipelineError::TooManyPixels {
                width: n(0) as u32,
                height: n(1) as u32,
                max_dimension: n(2) as u32,
                max_pixels: n(3),
            },
            "invalid_image" => PipelineError::InvalidImage(text()),
            "invalid_operation" => PipelineError::InvalidOperation(text()),
            "encode_failed" => PipelineError::Encode(text()),
            "invalid_target" => PipelineError::InvalidTarget(text()),
            "budget_not_met" => PipelineError::BudgetNotMet { max_bytes: n(0) },
            "format_unavailable" => PipelineError::FormatUnavailable(
                Format::ALL
                    .iter()
                    .map(|f| f.name())
                    .find(|name| Some(*name) == self.text.as_deref())
                    .unwrap_or("unknown"),
            ),
            _ => return JobError::Panicked,
        };
        JobError::Pipeline(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Fit;

    #[test]
    fn a_field_names_its_variant_and_back() {
        let spec = VariantSpec {
            format: Format::Jpeg,
            quality: 70,
            width: Some(800),
            height: None,
            fit: Fit::Cover,
            max_bytes: Some(50_000),
        };
        assert_eq!(spec_of(&field_of(&spec)), Some(spec));
        assert_eq!(spec_of("original_size=12"), None);
    }

    #[test]
    fn a_failure_record_rebuilds_the_same_error() {
        let errors = [
            JobError::Pipeline(PipelineError::UnsupportedFormat),
            JobError::Pipeline(PipelineError::InvalidImage("truncated".into())),
            JobError::Pipeline(PipelineError::BudgetNotMet { max_bytes: 1500 }),
            JobError::Pipeline(PipelineError::TooManyPixels {
                width: 9000,
                height: 9000,
                max_dimension: 8000,
                max_pixels: 40_000_000,
            }),
            JobError::Pipeline(PipelineError::FormatUnavailable("avif")),
            JobError::Timeout,
        ];
        for error in errors {
            let record = VariantRecord::failed(10, &error);
            let back = VariantRecord::from_json(&record.to_json()).expect("parses");
            let VariantState::Failed(rebuilt) = back.to_state(None).expect("a state") else {
                panic!("not failed");
            };
            assert_eq!(rebuilt.code(), error.code());
            assert_eq!(rebuilt.to_string(), error.to_string());
        }
    }

    #[test]
    fn a_done_record_without_its_bytes_is_an_error() {
        let finished = Finished {
            bytes: Bytes::from_static(b"abc"),
            format: Format::Png,
            width: 2,
            height: 3,
            kept_original: false,
            finished_seq: 7,
        };
        let record = VariantRecord::done(5, &finished);
        assert!(record.to_state(None).is_err());
        let VariantState::Done(f) = record
            .to_state(Some(Bytes::from_static(b"abc")))
            .expect("a state")
        else {
            panic!("not done");
        };
        assert_eq!((f.width, f.height, f.format), (2, 3, Format::Png));
    }
}
