//! The distributed job backend: what several instances share so that they
//! form one job service (`backend.kind: redis`).
//!
//! A backend gives, across instances: single flight per variant (one
//! instance claims it, the others get the claimed one), a work queue that
//! survives a dead worker (its job is taken again), each variant's state
//! and result with the cache TTL, and a broadcast of state changes so every
//! instance's local mirror (the job store's watch channels) reacts at once.
//!
//! This module owns the data a backend stores, as plain records: a task is
//! named by its md5 text, a variant by a field name ([`FieldName`]), a
//! failure by its registry code and message. It imports no domain module:
//! the job service (`jobs::record`) turns its states and errors into these
//! records and back, and runs the jobs (`jobs::worker`). In memory mode the
//! job store's own cache and the worker pool are the whole service.

pub mod redis;

use serde::{Deserialize, Serialize};

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

/// A variant's name inside its task, as the backend stores it.
pub trait FieldName {
    fn field(&self) -> String;
}

impl FieldName for str {
    fn field(&self) -> String {
        self.to_owned()
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What a done variant produced. Fields added later default when absent,
/// so records written by older instances still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub size: usize,
    pub kept_original: bool,
    /// Microseconds since the Unix epoch; orders results across instances.
    pub finished_at: u64,
    /// The quality of the encode (absent when the original was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// The outcome of `quality=auto` / `format=auto` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoRecord>,
}

/// An auto variant's search outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoRecord {
    pub target: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
    #[serde(default)]
    pub budget_limited: bool,
    #[serde(default)]
    pub score_sampled: bool,
    #[serde(default)]
    pub trials: u32,
}

/// A failed variant's error: its registry code and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// A retry could succeed: the failure is told but not kept, so the
    /// next submission claims the variant again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
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

    pub fn done(original_size: usize, result: impl Into<ResultRecord>) -> Self {
        Self {
            state: Phase::Done,
            result: Some(result.into()),
            ..Self::queued(original_size)
        }
    }

    pub fn failed(original_size: usize, failure: impl Into<FailureRecord>) -> Self {
        Self {
            state: Phase::Error,
            failure: Some(failure.into()),
            ..Self::queued(original_size)
        }
    }

    /// A failure that is told to every instance but not kept.
    pub fn is_transient(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.transient)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, BackendError> {
        serde_json::from_str(text).map_err(|e| BackendError::BadRecord(format!("{e}: {text}")))
    }
}
