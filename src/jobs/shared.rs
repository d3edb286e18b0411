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
        self.tasks.get_with(key.clone(), || {
            Arc::new(Task::new(key.clone(), original_size))
        })
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
        let settled = state.is_settled();
        let variant = task.variant_or_insert(spec, state.clone());
        variant.advance(state);
        if settled {
            // Insert again so the cache weighs the result and restarts the TTL.
            self.tasks.insert(task.key.clone(), task.clone());
        }
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
        let claim = self
            .repo
            .claim(key.as_str(), &field, bytes.len())
            .await
            .map_err(unavailable)?;
        match claim {
            Claim::QueueFull => Err(JobError::QueueFull),
            Claim::Won => {
                // The mirror exists before the job does, so no change is missed.
                let task = self.mirror(&key, bytes.len());
                let variant = task.variant_or_insert(spec, VariantState::Queued);
                if let Err(e) = self.queue.enqueue(key.as_str(), &field, &bytes).await {
                    let failed = VariantRecord::failed(bytes.len(), &JobError::BackendUnavailable);
                    let _ = self.repo.publish(key.as_str(), &field, &failed, None).await;
                    variant.advance(VariantState::Failed(JobError::BackendUnavailable));
                    return Err(unavailable(e));
                }
                Ok(Submitted {
                    task,
                    variant,
                    deduplicated: false,
                })
            }
            Claim::Existing(record) => {
                let task = self.mirror(&key, bytes.len());
                let variant = task.variant_or_insert(spec, VariantState::Queued);
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
        // Insert again so the cache weighs the result.
        self.tasks.insert(key.clone(), task);
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
