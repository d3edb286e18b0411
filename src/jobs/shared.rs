//! The job store as this instance's mirror of the job backend: the backend
//! holds the truth (single flight, queue, states, results), and the store's
//! watch channels follow its state changes. Submissions claim the variant
//! in the backend and enqueue the job there; the worker loop (`worker`)
//! runs it on some instance (this one, in memory mode).

use std::sync::Arc;

use bytes::Bytes;

use super::record::{field_of, spec_of, state_of};
use super::task::{Finished, Submitted, Task, VariantState};
use super::{JobError, JobStore, TaskKey, VariantSpec};
use crate::backend::{now_micros, BackendError, Claim, Phase, StateEvent, VariantRecord};
use crate::pipeline::Output;

/// Passes of [`JobStore::resync`] before it gives up, and the pause
/// between them.
const RESYNC_TRIES: u32 = 20;
const RESYNC_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Jobs queued and processing, for `GET /` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFigures {
    pub queued: usize,
    /// Taken by a worker and not finished (with Redis: including jobs held
    /// by a worker that died, until they are taken over).
    pub processing: usize,
    /// `service` (every instance's jobs), or `instance` (this one's only,
    /// while the shared queue cannot be read).
    pub scope: &'static str,
}

impl JobStore {
    /// A task this instance never saw (or forgot), loaded from the backend.
    pub(super) async fn load_shared(&self, key: &TaskKey) -> Option<Arc<Task>> {
        let records = match self.repo.records(key.as_str()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, md5 = %key, "cannot load a task");
                return None;
            }
        };
        let original_size = records.first()?.1.original_size;
        let task = self.mirror(key, original_size);
        for (field, record) in records {
            if let Some(spec) = spec_of(&field) {
                self.apply(&task, spec, record).await;
            }
        }
        // A change published before the mirror existed was missed: read
        // what is still pending once more, now that changes reach it.
        for variant in task.variants() {
            if !variant.state().is_settled() {
                let field = field_of(&variant.spec);
                if let Ok(Some(record)) = self.repo.record(key.as_str(), &field).await {
                    self.apply(&task, variant.spec, record).await;
                }
            }
        }
        Some(task)
    }

    pub(super) fn mirror(&self, key: &TaskKey, original_size: usize) -> Arc<Task> {
        self.tasks
            .get_or_insert(key, || Task::new(key.clone(), original_size))
    }

    /// Applies a state change published by any instance to the mirror of
    /// a task this instance knows (others are loaded when asked for).
    pub(crate) async fn apply_event(&self, event: StateEvent) {
        let (Some(key), Some(spec)) = (TaskKey::parse(&event.md5), spec_of(&event.variant)) else {
            return;
        };
        if let Some(task) = self.tasks.get(&key) {
            self.apply(&task, spec, event.record).await;
        }
    }

    /// Reads again every mirrored variant still queued or processing, after
    /// the state-change subscription was lost (the changes in between were
    /// missed). A variant whose record is gone (Redis came back empty) fails
    /// as `backend_unavailable`, so waiters hear it and the next upload
    /// claims it again. Tries again while the backend does not answer.
    pub(crate) async fn resync(self) {
        for _ in 0..RESYNC_TRIES {
            if self.resync_once().await {
                return;
            }
            tokio::time::sleep(RESYNC_PAUSE).await;
        }
        tracing::warn!("could not read the pending variants again; they follow later changes");
    }

    /// One pass of [`JobStore::resync`]; false when the backend failed.
    async fn resync_once(&self) -> bool {
        for task in self.tasks.unsettled() {
            for variant in task.unsettled() {
                let field = field_of(&variant.spec);
                match self.repo.record(task.key.as_str(), &field).await {
                    Ok(Some(record)) => self.apply(&task, variant.spec, record).await,
                    Ok(None) => {
                        variant.advance(VariantState::Failed(JobError::BackendUnavailable));
                        self.tasks.track(&task);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a pending variant again");
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Brings the mirror's variant to `record`'s state (fetching a done
    /// result's bytes).
    async fn apply(&self, task: &Arc<Task>, spec: VariantSpec, record: VariantRecord) {
        let result = if record.state == Phase::Done {
            match self.repo.result(task.key.as_str(), &field_of(&spec)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, md5 = %task.key, "cannot fetch a result");
                    return;
                }
            }
        } else {
            None
        };
        let state = match state_of(&record, result) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, md5 = %task.key, "cannot mirror a variant");
                return;
            }
        };
        let variant = task.variant_or_insert(spec, state.clone());
        variant.advance(state);
        self.tasks.track(task);
    }

    /// Claims the variant in the backend and enqueues its job, unless the
    /// mirror or the backend knows it already.
    pub(super) async fn submit_shared(
        &self,
        bytes: Bytes,
        spec: VariantSpec,
    ) -> Result<Submitted, JobError> {
        let key = TaskKey::of(&bytes);
        let known = self.tasks.get(&key).and_then(|task| {
            let variant = task
                .variants()
                .into_iter()
                .find(|v| v.spec == spec && v.reusable())?;
            Some((task, variant))
        });
        if let Some((task, variant)) = known {
            return Ok(Submitted {
                task,
                variant,
                deduplicated: true,
            });
        }
        let unavailable = |e: BackendError| {
            tracing::warn!(error = %e, "the job backend failed");
            JobError::BackendUnavailable
        };
        let field = field_of(&spec);
        // The mirror exists before the job does, so no change is missed; a
        // refused or failed submission takes its new variant out again.
        let task = self.mirror(&key, bytes.len());
        let mirrored = task.variants().into_iter().find(|v| v.spec == spec);
        let variant = task.variant_or_insert(spec, VariantState::Queued);
        self.tasks.track(&task);
        let fresh = !mirrored.is_some_and(|m| Arc::ptr_eq(&m, &variant));
        let refused = |why: JobError| {
            if fresh {
                task.forget(&variant, why.clone());
                if task.variants().is_empty() {
                    self.tasks.forget(&task);
                } else {
                    self.tasks.track(&task);
                }
            }
            why
        };
        let claim = match self.queue.submit(key.as_str(), &field, &bytes).await {
            Ok(claim) => claim,
            Err(e) => return Err(refused(unavailable(e))),
        };
        match claim {
            Claim::QueueFull => Err(refused(JobError::QueueFull)),
            Claim::Won => Ok(Submitted {
                task,
                variant,
                deduplicated: false,
            }),
            Claim::Existing(record) => {
                // Read again now that the mirror receives changes.
                let fresh = self.repo.record(key.as_str(), &field).await.ok().flatten();
                self.apply(&task, spec, fresh.unwrap_or(record)).await;
                Ok(Submitted {
                    task,
                    variant,
                    deduplicated: true,
                })
            }
        }
    }

    /// Jobs queued and processing in the whole service: from Redis when
    /// the queue is shared, else this instance's worker pool (memory mode:
    /// the instance is the service). While Redis does not answer, this
    /// instance's figures, marked so.
    pub async fn queue_figures(&self) -> QueueFigures {
        let depth = self.queue.depth().await;
        if let Ok(Some(depth)) = depth {
            return QueueFigures {
                queued: depth.waiting,
                processing: depth.taken,
                scope: "service",
            };
        }
        if let Err(e) = &depth {
            tracing::warn!(error = %e, "cannot read the service's queue");
        }
        let stats = self.pool().stats();
        QueueFigures {
            queued: stats.queued,
            processing: stats.processing,
            scope: if depth.is_ok() { "service" } else { "instance" },
        }
    }

    /// Keeps an image made outside the job queue (a chat image) as the done
    /// variant `spec` of the task named by the md5 of its bytes: the one
    /// image store keyed by md5, shared like every result.
    pub async fn keep(
        &self,
        spec: VariantSpec,
        output: Output,
    ) -> Result<(TaskKey, Arc<Finished>), JobError> {
        let key = TaskKey::of(&output.bytes);
        let finished = Arc::new(Finished::from_output(output, now_micros()));
        let size = finished.bytes.len();
        let record = VariantRecord::done(size, &*finished);
        self.repo
            .publish(
                key.as_str(),
                &field_of(&spec),
                &record,
                Some(&finished.bytes),
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the job backend failed");
                JobError::BackendUnavailable
            })?;
        let task = self.mirror(&key, size);
        let state = VariantState::Done(finished.clone());
        task.variant_or_insert(spec, state.clone()).advance(state);
        self.tasks.track(&task);
        Ok((key, finished))
    }

    /// An image kept with [`JobStore::keep`] as variant `spec`, while kept.
    pub async fn kept(&self, md5: &str, spec: &VariantSpec) -> Option<Arc<Finished>> {
        let task = self.lookup(&TaskKey::parse(md5)?).await?;
        let variant = task.variants().into_iter().find(|v| v.spec == *spec)?;
        match variant.state() {
            VariantState::Done(finished) => Some(finished),
            _ => None,
        }
    }
}
