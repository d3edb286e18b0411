//! The job store: tasks (by MD5) and their variants, their statuses, and
//! their results, in an expiring, byte-bounded cache (`mirror`) that never
//! drops a task whose job is under way.
//!
//! It owns single flight (the same bytes with the same options are encoded
//! once while cached, whichever protocol asks), status pushes (each variant
//! has a `watch` channel, so waiters react at once) and the optional disk
//! copy of results. It does not speak HTTP or WebSocket.
//!
//! The job backend (`backend::JobRepo` + `backend::JobQueue`) holds the
//! truth and this store is the instance's mirror of it (`shared`): memory
//! mode is `backend::MemoryJobs`, bounded by the worker pool; `with_backend`
//! puts another (Redis) in its place.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::mirror::Mirror;
use super::task::{Finished, Task, VariantState};
use super::{JobError, TaskKey, VariantSpec, WorkerPool};
use crate::backend::{JobQueue, JobRepo, MemoryJobs};
use crate::pipeline::{AutoScoring, Limits, Options, Output};

/// Outcome counts and sizes, reported to metrics by the store.
pub trait JobObserver: Send + Sync {
    /// `format` is the output's format name, or the requested one (`auto`
    /// included) for a failed job.
    fn finished(
        &self,
        format: &'static str,
        outcome: &'static str,
        elapsed: Duration,
        bytes_in: usize,
        bytes_out: usize,
    );
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub ttl: Duration,
    pub max_bytes: u64,
    pub limits: Limits,
    pub output_dir: Option<PathBuf>,
    /// `format=auto` tries AVIF only up to this many pixels.
    pub auto_avif_max_pixels: u64,
    /// How the auto search scores images over a megapixel.
    pub auto_scoring: AutoScoring,
    /// A job handed out more often than this is set aside
    /// (`backend.max_attempts`).
    pub max_attempts: u32,
}

impl StoreSettings {
    /// The store's share of the server's settings.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Self {
            ttl: settings.cache.ttl,
            max_bytes: settings.cache.max_bytes,
            limits: settings.pipeline_limits(),
            output_dir: settings.server.output_dir.clone(),
            auto_avif_max_pixels: settings.quality.auto_avif_max_pixels,
            auto_scoring: AutoScoring {
                sample_tiles: settings.quality.auto_sample_tiles,
                exact_max_pixels: settings.quality.auto_exact_max_pixels,
            },
            max_attempts: settings.backend.max_attempts,
        }
    }
}

/// Tasks, variants and results; cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    pub(super) tasks: Mirror,
    pool: WorkerPool,
    limits: Limits,
    auto_avif_max_pixels: u64,
    auto_scoring: AutoScoring,
    max_attempts: u32,
    output_dir: Option<PathBuf>,
    observer: Option<Arc<dyn JobObserver>>,
    pub(super) repo: Arc<dyn JobRepo>,
    pub(super) queue: Arc<dyn JobQueue>,
}

impl JobStore {
    /// A store in memory mode: its backend is a `MemoryJobs` whose queue
    /// is bounded by `pool`. Its jobs run once `worker::start` runs.
    pub fn new(settings: StoreSettings, pool: WorkerPool) -> Self {
        let memory = Arc::new(MemoryJobs::new(
            settings.ttl,
            settings.max_bytes,
            Some(Arc::new(pool.clone())),
        ));
        let tasks = Mirror::new(settings.ttl, settings.max_bytes);
        Self {
            tasks,
            pool,
            limits: settings.limits,
            auto_avif_max_pixels: settings.auto_avif_max_pixels,
            auto_scoring: settings.auto_scoring,
            max_attempts: settings.max_attempts,
            output_dir: settings.output_dir,
            observer: None,
            repo: memory.clone(),
            queue: memory,
        }
    }

    /// Keeps jobs in `backend` instead (Redis: shared with other instances).
    pub fn with_backend<B: JobRepo + JobQueue + 'static>(mut self, backend: Arc<B>) -> Self {
        self.repo = backend.clone();
        self.queue = backend;
        self
    }

    /// The job backend's records (for readiness checks).
    pub fn repo(&self) -> &Arc<dyn JobRepo> {
        &self.repo
    }

    /// The job backend's queue (for the worker loop).
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// The pipeline options of a variant's job, with this server's limits
    /// and `quality=auto` / `format=auto` settings.
    pub(crate) fn job_options(&self, spec: &VariantSpec) -> Options {
        let mut options = spec.options(self.limits);
        options.auto_scoring = self.auto_scoring;
        if let Some(auto) = &mut options.auto_format {
            auto.avif_max_pixels = self.auto_avif_max_pixels;
        }
        options
    }

    pub fn with_observer(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Deliveries after which a job is set aside.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// The task as this instance knows it (its local mirror).
    pub fn task(&self, key: &TaskKey) -> Option<Arc<Task>> {
        self.tasks.get(key)
    }

    /// The task, loaded from the backend when this instance never saw it.
    pub async fn lookup(&self, key: &TaskKey) -> Option<Arc<Task>> {
        if let Some(task) = self.tasks.get(key) {
            return Some(task);
        }
        self.load_shared(key).await
    }

    /// Records that `caller` uploaded `task` (in the backend too, so every
    /// instance knows).
    pub async fn add_owner(&self, task: &Task, caller: &crate::auth::Caller) {
        let Some(owner) = caller.owner.as_deref() else {
            return;
        };
        if task.add_owner(owner) {
            if let Err(e) = self.repo.add_owner(task.key.as_str(), owner).await {
                tracing::warn!(error = %e, "cannot record a task's owner");
            }
        }
    }

    /// Whether `caller` may see `task`: an open or admin caller always, a
    /// key only when it uploaded the task.
    pub async fn visible_to(&self, task: &Task, caller: &crate::auth::Caller) -> bool {
        if caller.admin {
            return true;
        }
        let Some(owner) = caller.owner.as_deref() else {
            return false;
        };
        if task.owned_by(owner) {
            return true;
        }
        let owned = matches!(self.repo.is_owner(task.key.as_str(), owner).await, Ok(true));
        if owned {
            task.add_owner(owner);
        }
        owned
    }

    /// Submits `bytes` with `spec`. An identical variant already done or in
    /// flight is returned as is; a new one is admitted at once or refused
    /// with `QueueFull` (and then leaves no trace). In memory mode the pool
    /// bounds the queue; with Redis, single flight and the queue bound span
    /// every instance.
    pub async fn submit(
        &self,
        bytes: Bytes,
        spec: VariantSpec,
    ) -> Result<super::Submitted, JobError> {
        super::check_header(&bytes, &self.limits)?;
        self.submit_shared(bytes, spec).await
    }

    /// What every finished job goes through, wherever it ran: the result
    /// becomes its stored form (with completion order `seq`), its copy is
    /// written to `output_dir`, and metrics are told.
    pub(crate) async fn settle(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
        original_size: usize,
        result: Result<Output, JobError>,
        started: Instant,
        seq: u64,
    ) -> VariantState {
        let (state, format, outcome, out_len) = match result {
            Ok(output) => {
                let finished = Finished::from_output(output, seq);
                self.write_copy(key, spec, &finished).await;
                let len = finished.bytes.len();
                let format = finished.format.name();
                (VariantState::Done(Arc::new(finished)), format, "done", len)
            }
            Err(e) => {
                let outcome = e.code().as_str();
                (VariantState::Failed(e), spec.format.name(), outcome, 0)
            }
        };
        self.observe(format, outcome, started.elapsed(), original_size, out_len);
        state
    }

    /// Reports a finished job to the observer (metrics).
    fn observe(
        &self,
        format: &'static str,
        outcome: &'static str,
        elapsed: Duration,
        bytes_in: usize,
        bytes_out: usize,
    ) {
        if let Some(observer) = &self.observer {
            observer.finished(format, outcome, elapsed, bytes_in, bytes_out);
        }
    }

    /// Writes a result to `output_dir` atomically (temp file, then rename).
    async fn write_copy(&self, key: &TaskKey, spec: &VariantSpec, finished: &Finished) {
        let Some(dir) = &self.output_dir else { return };
        let name = format!("{key}-{}.{}", spec.file_stem(), finished.format.extension());
        let final_path = dir.join(&name);
        let tmp_path = dir.join(format!(".{name}.tmp"));
        let bytes = finished.bytes.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp_path)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp_path, &final_path)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::warn!(error = %e, file = %name, "could not write the result copy");
        }
    }

    /// Waits until no variant of the task is queued or processing, or the
    /// timeout passes. Returns at once when nothing is pending.
    pub async fn wait_settled(&self, task: &Task, timeout: Duration) {
        let receivers: Vec<_> = task.variants().iter().map(|v| v.subscribe()).collect();
        let all = async move {
            for mut rx in receivers {
                let _ = rx.wait_for(VariantState::is_settled).await;
            }
        };
        let _ = tokio::time::timeout(timeout, all).await;
    }

    /// Entries and weighted size (for metrics and tests).
    pub fn cache_usage(&self) -> (u64, u64) {
        self.tasks.cache_usage()
    }

    /// Removes result copies older than `max_age` from `output_dir`.
    pub fn clean_output_dir(&self, max_age: Duration) -> std::io::Result<usize> {
        let Some(dir) = &self.output_dir else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
