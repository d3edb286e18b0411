//! The tasks this instance knows: an expiring, byte-bounded cache of
//! tasks, plus every task with a variant still queued or processing, held
//! outside the cache's reach. A full or expired cache may drop a settled
//! task (its result is gone, as documented), but never one whose job is
//! still under way: its waiters (a status poll, a `/ws` request, a room
//! upload) would otherwise never hear how it ended. Once every variant has
//! settled the task is under the cache's rules again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moka::sync::Cache;

use super::task::Task;
use super::TaskKey;

/// Known tasks; cheap to clone (clones share the tasks).
#[derive(Clone)]
pub(super) struct Mirror {
    cache: Cache<TaskKey, Arc<Task>>,
    /// Tasks with a variant not settled yet. Bounded by the job queue:
    /// each one has a job queued or running somewhere in the service.
    under_way: Arc<Mutex<HashMap<TaskKey, Arc<Task>>>>,
}

impl Mirror {
    /// Settled tasks kept `ttl` after their last change, `max_bytes` of
    /// results at most.
    pub(super) fn new(ttl: Duration, max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .time_to_live(ttl)
            .max_capacity(max_bytes)
            .weigher(|_k: &TaskKey, t: &Arc<Task>| t.weight())
            .build();
        Self {
            cache,
            under_way: Arc::default(),
        }
    }

    fn under_way(&self) -> MutexGuard<'_, HashMap<TaskKey, Arc<Task>>> {
        // Nothing panics while holding this lock; recover the map if it did.
        self.under_way
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The task, if known.
    pub(super) fn get(&self, key: &TaskKey) -> Option<Arc<Task>> {
        let held = self.under_way().get(key).cloned();
        held.or_else(|| self.cache.get(key))
    }

    /// The task, made by `make` when unknown.
    pub(super) fn get_or_insert(&self, key: &TaskKey, make: impl FnOnce() -> Task) -> Arc<Task> {
        if let Some(task) = self.under_way().get(key) {
            return task.clone();
        }
        self.cache.get_with(key.clone(), || Arc::new(make()))
    }

    /// Follows a change of `task`'s variants: held while any is unsettled;
    /// once none is, put in the cache again (so it weighs the task's
    /// results now and its time to live starts again) and left to it.
    pub(super) fn track(&self, task: &Arc<Task>) {
        let mut under_way = self.under_way();
        if task.unsettled().is_empty() {
            // Cached before it is let go, so a lookup always finds it.
            self.cache.insert(task.key.clone(), task.clone());
            under_way.remove(&task.key);
        } else {
            under_way.insert(task.key.clone(), task.clone());
        }
    }

    /// Forgets a task that has no variant left.
    pub(super) fn forget(&self, task: &Arc<Task>) {
        self.under_way().remove(&task.key);
        self.cache.invalidate(&task.key);
    }

    /// The tasks with a variant not settled yet.
    pub(super) fn unsettled(&self) -> Vec<Arc<Task>> {
        self.under_way().values().cloned().collect()
    }

    /// Entries and weighted size of the cache (for metrics and tests).
    pub(super) fn cache_usage(&self) -> (u64, u64) {
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// Applies the cache's pending evictions now (for tests).
    #[cfg(test)]
    pub(super) fn run_pending(&self) {
        self.cache.run_pending_tasks();
    }
}
