//! The job store as one instance's mirror of the shared backend
//! (`backend.kind: redis`): the backend holds the truth (single flight,
//! queue, states, results), and the store's watch channels follow its
//! state changes. Submissions claim the variant in the backend and enqueue
//! the job there; the worker loop (`worker`) runs it on some instance.

use std::sync::Arc;

use bytes::Bytes;

use super::record::{field_of, spec_of, state_of};
use super::task::{Submitted, Task, VariantState};
use super::{JobError, JobStore, TaskKey, VariantSpec};
use crate::backend::redis::{Claim, StateEvent};
use crate::backend::{BackendError, Phase, RedisBackend, VariantRecord};

impl JobStore {
    /// A task this instance never saw, loaded from the backend.
    pub(super) async fn load_shared(&self, key: &TaskKey) -> Option<Arc<Task>> {
        let backend = self.backend.as_ref()?;
        let records = match backend.records(key.as_str()).await {
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
                if let Ok(Some(record)) = backend.record(key, &variant.spec).await {
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
        let Some(backend) = &self.backend else { return };
        let result = if record.state == Phase::Done {
            match backend.result(task.key.as_str(), &field_of(&spec)).await {
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

    pub(super) async fn submit_shared(
        &self,
        backend: &RedisBackend,
        bytes: Bytes,
        spec: VariantSpec,
    ) -> Result<Submitted, JobError> {
        let key = TaskKey::of(&bytes);
        let task = self.mirror(&key, bytes.len());
        let known = task
            .variants()
            .into_iter()
            .find(|v| v.spec == spec && v.reusable());
        if let Some(variant) = known {
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
        match backend
            .claim(&key, &spec, bytes.len())
            .await
            .map_err(unavailable)?
        {
            Claim::QueueFull => Err(JobError::QueueFull),
            Claim::Won => {
                // The mirror exists before the job does, so no change is missed.
                let variant = task.variant_or_insert(spec, VariantState::Queued);
                if let Err(e) = backend.enqueue(&key, &spec, &bytes).await {
                    let failed = VariantRecord::failed(bytes.len(), &JobError::BackendUnavailable);
                    let _ = backend.publish(&key, &spec, &failed, None).await;
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
                let variant = task.variant_or_insert(spec, VariantState::Queued);
                // Read again now that the mirror receives changes.
                let fresh = backend.record(&key, &spec).await.ok().flatten();
                self.apply(&task, spec, fresh.unwrap_or(record)).await;
                Ok(Submitted {
                    task,
                    variant,
                    deduplicated: true,
                })
            }
        }
    }
}
