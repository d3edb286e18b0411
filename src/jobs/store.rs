//! The job store: tasks (by MD5) and their variants, their statuses, and
//! their results, in an expiring, byte-bounded cache.
//!
//! It owns single flight (the same bytes with the same options are encoded
//! once while cached, whichever protocol asks), status pushes (each variant
//! has a `watch` channel, so waiters react at once) and the optional disk
//! copy of results. It does not speak HTTP or WebSocket.
//!
//! With a distributed backend (`with_backend`), the backend holds the truth
//! (single flight, queue, states, results) and this store is the instance's
//! mirror of it: its watch channels follow the backend's state changes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::sync::Cache;
use tokio::sync::watch;

use super::record::{field_of, spec_of, state_of};
use super::{JobError, TaskKey, VariantSpec, WorkerPool};
use crate::backend::redis::{Claim, StateEvent};
use crate::backend::{Phase, RedisBackend, VariantRecord};
use crate::pipeline::{Format, Limits, Output};

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
    state: watch::Sender<VariantState>,
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
    fn advance(&self, next: VariantState) {
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
    fn reusable(&self) -> bool {
        match &*self.state.borrow() {
            VariantState::Failed(e) => !e.is_transient(),
            _ => true,
        }
    }

    fn new(spec: VariantSpec, state: VariantState) -> Arc<Self> {
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
    variants: Mutex<Vec<Arc<Variant>>>,
}

impl Task {
    fn lock_variants(&self) -> MutexGuard<'_, Vec<Arc<Variant>>> {
        // Every change under this lock is one push or one replacement, so
        // the list is whole even if a holder panicked.
        self.variants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn variants(&self) -> Vec<Arc<Variant>> {
        self.lock_variants().clone()
    }

    /// The reusable variant with `spec`, or else a new one in `state`
    /// (replacing a transiently failed one).
    fn variant_or_insert(&self, spec: VariantSpec, state: VariantState) -> Arc<Variant> {
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

    fn weight(&self) -> u32 {
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

/// Outcome counts and sizes, reported to metrics by the store.
pub trait JobObserver: Send + Sync {
    fn finished(
        &self,
        format: Format,
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
}

/// Tasks, variants and results; cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    tasks: Cache<TaskKey, Arc<Task>>,
    pool: WorkerPool,
    limits: Limits,
    output_dir: Option<PathBuf>,
    seq: Arc<AtomicU64>,
    observer: Option<Arc<dyn JobObserver>>,
    backend: Option<Arc<RedisBackend>>,
}

impl JobStore {
    pub fn new(settings: StoreSettings, pool: WorkerPool) -> Self {
        let tasks = Cache::builder()
            .time_to_live(settings.ttl)
            .max_capacity(settings.max_bytes)
            .weigher(|_k: &TaskKey, t: &Arc<Task>| t.weight())
            .build();
        Self {
            tasks,
            pool,
            limits: settings.limits,
            output_dir: settings.output_dir,
            seq: Arc::new(AtomicU64::new(0)),
            observer: None,
            backend: None,
        }
    }

    /// Shares jobs with other instances through `backend`.
    pub fn with_backend(mut self, backend: Arc<RedisBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The distributed backend, when there is one.
    pub fn backend(&self) -> Option<&Arc<RedisBackend>> {
        self.backend.as_ref()
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    pub fn with_observer(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
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

    fn mirror(&self, key: &TaskKey, original_size: usize) -> Arc<Task> {
        self.tasks.get_with(key.clone(), || {
            Arc::new(Task {
                key: key.clone(),
                original_size,
                variants: Mutex::new(Vec::new()),
            })
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

    /// Submits `bytes` with `spec`. An identical variant already done or in
    /// flight is returned as is; a new one is admitted to the pool at once
    /// or refused with `QueueFull` (and then leaves no trace). With a
    /// backend, single flight and the queue bound span every instance.
    pub async fn submit(&self, bytes: Bytes, spec: VariantSpec) -> Result<Submitted, JobError> {
        super::check_header(&bytes, &self.limits)?;
        match self.backend.clone() {
            None => self.submit_local(bytes, spec),
            Some(backend) => self.submit_shared(&backend, bytes, spec).await,
        }
    }

    async fn submit_shared(
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
        let unavailable = |e: crate::backend::BackendError| {
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

    fn submit_local(&self, bytes: Bytes, spec: VariantSpec) -> Result<Submitted, JobError> {
        let key = TaskKey::of(&bytes);
        let original_size = bytes.len();
        let task = self.tasks.get_with(key.clone(), || {
            Arc::new(Task {
                key: key.clone(),
                original_size,
                variants: Mutex::new(Vec::new()),
            })
        });

        let (variant, admission) = {
            let mut variants = task.lock_variants();
            let existing = variants.iter().position(|v| v.spec == spec);
            if let Some(i) = existing {
                let reusable = match &*variants[i].state.borrow() {
                    VariantState::Failed(e) => !e.is_transient(),
                    _ => true,
                };
                if reusable {
                    return Ok(Submitted {
                        task: task.clone(),
                        variant: variants[i].clone(),
                        deduplicated: true,
                    });
                }
            }
            let admission = self.pool.try_admit()?;
            let variant = Arc::new(Variant {
                spec,
                state: watch::Sender::new(VariantState::Queued),
            });
            match existing {
                Some(i) => variants[i] = variant.clone(),
                None => variants.push(variant.clone()),
            }
            (variant, admission)
        };

        let store = self.clone();
        let job_task = task.clone();
        let job_variant = variant.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let options = spec.options(store.limits);
            let on_start = {
                let v = job_variant.clone();
                move || {
                    v.state.send_replace(VariantState::Processing);
                }
            };
            let result = admission.run(bytes, options, on_start).await;
            store.finish(&job_task, &job_variant, result, started).await;
        });
        Ok(Submitted {
            task,
            variant,
            deduplicated: false,
        })
    }

    async fn finish(
        &self,
        task: &Arc<Task>,
        variant: &Arc<Variant>,
        result: Result<Output, JobError>,
        started: Instant,
    ) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let state = self
            .settle(
                &task.key,
                &variant.spec,
                task.original_size,
                result,
                started,
                seq,
            )
            .await;
        variant.state.send_replace(state);
        // Insert again so the cache weighs the result and restarts the TTL.
        self.tasks.insert(task.key.clone(), task.clone());
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
        let (state, outcome, out_len) = match result {
            Ok(output) => {
                let finished = Finished::from_output(output, seq);
                self.write_copy(key, spec, &finished.bytes).await;
                let len = finished.bytes.len();
                (VariantState::Done(Arc::new(finished)), "done", len)
            }
            Err(e) => {
                let outcome = e.code().as_str();
                (VariantState::Failed(e), outcome, 0)
            }
        };
        self.observe(
            spec.format,
            outcome,
            started.elapsed(),
            original_size,
            out_len,
        );
        state
    }

    /// Reports a finished job to the observer (metrics).
    fn observe(
        &self,
        format: Format,
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
    async fn write_copy(&self, key: &TaskKey, spec: &VariantSpec, bytes: &Bytes) {
        let Some(dir) = &self.output_dir else { return };
        let name = format!("{key}-{}.{}", spec.file_stem(), spec.format.extension());
        let final_path = dir.join(&name);
        let tmp_path = dir.join(format!(".{name}.tmp"));
        let bytes = bytes.clone();
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
        (self.tasks.entry_count(), self.tasks.weighted_size())
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
