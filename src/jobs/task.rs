//! The job service's data: a task (the MD5 of an upload) and its variants
//! (one option set each), each variant's state behind a `watch` channel so
//! waiters react at once, and a finished variant's shared result.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

use super::{JobError, TaskKey, VariantSpec};
use crate::pipeline::{Format, Output};

/// A finished variant's result. `bytes` is shared, never copied per reader.
#[derive(Debug, Clone)]
pub struct Finished {
    pub bytes: Bytes,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub kept_original: bool,
    /// Order of completion across the store (larger is later).
    pub finished_seq: u64,
}

impl Finished {
    /// The stored form of a pipeline output; `finished_seq` orders completions.
    pub fn from_output(output: Output, finished_seq: u64) -> Self {
        Self {
            bytes: Bytes::from(output.bytes),
            format: output.format,
            width: output.width,
            height: output.height,
            kept_original: output.kept_original,
            finished_seq,
        }
    }
}

/// Where a variant is in its life.
#[derive(Debug, Clone)]
pub enum VariantState {
    Queued,
    Processing,
    Done(Arc<Finished>),
    Failed(JobError),
}

impl VariantState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done(_) => "done",
            Self::Failed(_) => "error",
        }
    }

    /// Done or failed: nothing more will happen.
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Done(_) | Self::Failed(_))
    }
}

/// One option set applied to a task.
#[derive(Debug)]
pub struct Variant {
    pub spec: VariantSpec,
    pub(super) state: watch::Sender<VariantState>,
}

impl Variant {
    pub fn state(&self) -> VariantState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every later state change.
    pub fn subscribe(&self) -> watch::Receiver<VariantState> {
        self.state.subscribe()
    }

    /// Moves the state forward only (queued, processing, settled): a late,
    /// older report never undoes a newer one.
    pub(super) fn advance(&self, next: VariantState) {
        fn rank(s: &VariantState) -> u8 {
            match s {
                VariantState::Queued => 0,
                VariantState::Processing => 1,
                VariantState::Done(_) | VariantState::Failed(_) => 2,
            }
        }
        self.state.send_if_modified(|current| {
            let forward = rank(&next) > rank(current);
            if forward {
                *current = next;
            }
            forward
        });
    }

    /// Done, or failed for good: a new submission reuses it.
    pub(super) fn reusable(&self) -> bool {
        match &*self.state.borrow() {
            VariantState::Failed(e) => !e.is_transient(),
            _ => true,
        }
    }

    pub(super) fn new(spec: VariantSpec, state: VariantState) -> Arc<Self> {
        Arc::new(Self {
            spec,
            state: watch::Sender::new(state),
        })
    }
}

/// All variants of one upload.
#[derive(Debug)]
pub struct Task {
    pub key: TaskKey,
    pub original_size: usize,
    pub(super) variants: Mutex<Vec<Arc<Variant>>>,
}

impl Task {
    pub(super) fn lock_variants(&self) -> MutexGuard<'_, Vec<Arc<Variant>>> {
        // Every change under this lock is one push or one replacement, so
        // the list is whole even if a holder panicked.
        self.variants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn variants(&self) -> Vec<Arc<Variant>> {
        self.lock_variants().clone()
    }

    /// The reusable variant with `spec`, or else a new one in `state`
    /// (replacing a transiently failed one).
    pub(super) fn variant_or_insert(&self, spec: VariantSpec, state: VariantState) -> Arc<Variant> {
        let mut variants = self.lock_variants();
        let existing = variants.iter().position(|v| v.spec == spec);
        if let Some(i) = existing {
            if variants[i].reusable() {
                return variants[i].clone();
            }
        }
        let variant = Variant::new(spec, state);
        match existing {
            Some(i) => variants[i] = variant.clone(),
            None => variants.push(variant.clone()),
        }
        variant
    }

    pub(super) fn weight(&self) -> u32 {
        let results: usize = self
            .variants()
            .iter()
            .filter_map(|v| match v.state() {
                VariantState::Done(f) => Some(f.bytes.len()),
                _ => None,
            })
            .sum();
        u32::try_from(results + 512).unwrap_or(u32::MAX)
    }

    /// The variant that finished last among those `matches` accepts, or
    /// else the one of them submitted last.
    pub fn pick(&self, matches: impl Fn(&VariantSpec) -> bool) -> Option<Arc<Variant>> {
        let variants: Vec<_> = self
            .variants()
            .into_iter()
            .filter(|v| matches(&v.spec))
            .collect();
        let latest_done = variants
            .iter()
            .filter_map(|v| match v.state() {
                VariantState::Done(f) => Some((f.finished_seq, v.clone())),
                _ => None,
            })
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, v)| v);
        latest_done.or_else(|| variants.last().cloned())
    }
}

/// What a submission led to.
pub struct Submitted {
    pub task: Arc<Task>,
    pub variant: Arc<Variant>,
    /// The same variant existed already (done or in flight): no new encode.
    pub deduplicated: bool,
}
