//! The one bounded worker pool every protocol's image work goes through.
//!
//! At most `max_concurrent` pipeline runs at once, each on a blocking thread;
//! at most `max_queue` more wait for a slot. Admission is decided at once
//! (`try_admit`), so a full queue is answered immediately and never grows
//! memory. Running jobs together decode at most `max_running_pixels`
//! (`with_max_running_pixels`): a large image waits for earlier ones to
//! finish instead of running beside them. A job that panics or passes its
//! deadline fails alone. The pool knows nothing of HTTP, rooms or caching.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::JobError;
use crate::pipeline::{self, Options, Output};

/// Queue depth and jobs running, for `GET /` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    pub queued: usize,
    pub processing: usize,
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    max_queue: usize,
    queued: AtomicUsize,
    /// Input bytes held by queued jobs, and their bound
    /// (`upload.max_queued_bytes`): memory is bounded by bytes, not count.
    queued_bytes: AtomicU64,
    max_queued_bytes: AtomicU64,
    processing: AtomicUsize,
    /// The pixels running jobs may decode together, when bounded.
    pixel_budget: OnceLock<PixelBudget>,
    timeout: Duration,
    /// True while nothing is queued or processing (for graceful shutdown).
    idle: watch::Sender<bool>,
}

/// Pixels counted in units of [`PIXELS_PER_UNIT`] (a semaphore takes at
/// most `u32::MAX` permits at once).
struct PixelBudget {
    units: Arc<Semaphore>,
    max_units: u32,
}

const PIXELS_PER_UNIT: u64 = 1000;

impl PixelBudget {
    fn new(max_pixels: u64) -> Self {
        let max_units = (max_pixels.div_ceil(PIXELS_PER_UNIT))
            .clamp(1, u64::from(u32::MAX).min(Semaphore::MAX_PERMITS as u64))
            as u32;
        Self {
            units: Arc::new(Semaphore::new(max_units as usize)),
            max_units,
        }
    }

    /// Waits until `pixels` fit beside the running jobs' pixels. An image
    /// larger than the whole budget waits for all of it and runs alone.
    async fn acquire(&self, pixels: u64) -> Result<OwnedSemaphorePermit, JobError> {
        let units = pixels
            .div_ceil(PIXELS_PER_UNIT)
            .clamp(1, u64::from(self.max_units)) as u32;
        self.units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| JobError::ShuttingDown)
    }
}

impl Inner {
    /// Waits for a worker slot; fails once the pool is closed.
    async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, JobError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::ShuttingDown)
    }

    fn refresh_idle(&self) {
        let idle = self.queued.load(Ordering::Acquire) == 0
            && self.processing.load(Ordering::Acquire) == 0;
        self.idle
            .send_if_modified(|v| std::mem::replace(v, idle) != idle);
    }
}

/// Bytes of an upload being received, counted against `max_queued_bytes`
/// until dropped ([`WorkerPool::hold_intake`]).
#[must_use = "the bytes are given back when the hold is dropped"]
pub struct IntakeHold {
    inner: Arc<Inner>,
    bytes: u64,
}

impl Drop for IntakeHold {
    fn drop(&mut self) {
        self.inner
            .queued_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A place in the pool, taken by `try_admit`: the job is counted as queued
/// until it runs. Dropping it unused gives the place back.
pub struct Admission {
    inner: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    counted_queued: bool,
    /// Input bytes counted against `max_queued_bytes` while queued.
    held_bytes: u64,
    /// A deadline shorter than the pool's, when the protocol asks for one.
    timeout: Option<Duration>,
    /// Counted as processing since `ready`.
    running: Option<Running>,
}

impl WorkerPool {
    pub fn new(max_concurrent: usize, max_queue: usize, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
                max_queue,
                queued: AtomicUsize::new(0),
                queued_bytes: AtomicU64::new(0),
                max_queued_bytes: AtomicU64::new(u64::MAX),
                processing: AtomicUsize::new(0),
                pixel_budget: OnceLock::new(),
                timeout,
                idle: watch::Sender::new(true),
            }),
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            queued: self.inner.queued.load(Ordering::Relaxed),
            processing: self.inner.processing.load(Ordering::Relaxed),
        }
    }

    /// A receiver that is `true` whenever nothing is queued or running.
    pub fn subscribe_idle(&self) -> watch::Receiver<bool> {
        self.inner.idle.subscribe()
    }

    /// Bounds the input bytes that queued jobs may hold together.
    pub fn with_max_queued_bytes(self, max: u64) -> Self {
        self.inner.max_queued_bytes.store(max, Ordering::Relaxed);
        self
    }

    /// Bounds the pixels (width x height of the input) that running jobs
    /// decode together; 0 leaves them unbounded. Set once, before use.
    pub fn with_max_running_pixels(self, max: u64) -> Self {
        if max > 0 {
            let _ = self.inner.pixel_budget.set(PixelBudget::new(max));
        }
        self
    }

    /// Input bytes held by queued jobs now.
    pub fn queued_bytes(&self) -> u64 {
        self.inner.queued_bytes.load(Ordering::Relaxed)
    }

    /// Counts `bytes` of an upload still being received against
    /// `max_queued_bytes`, beside the inputs of queued jobs, so that the
    /// bodies being read and the jobs waiting hold that much memory at most
    /// together. `None` when it does not fit; the bytes are given back when
    /// the hold is dropped (before the upload is submitted as a job, which
    /// then counts them itself while it waits).
    pub fn hold_intake(&self, bytes: u64) -> Option<IntakeHold> {
        let max_bytes = self.inner.max_queued_bytes.load(Ordering::Relaxed);
        // A body larger than the whole bound may still come, alone.
        let bytes = bytes.min(max_bytes);
        self.inner
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= max_bytes)
            })
            .ok()?;
        Some(IntakeHold {
            inner: self.inner.clone(),
            bytes,
        })
    }

    /// Takes a place at once: a free worker slot, or a place in the queue.
    pub fn try_admit(&self) -> Result<Admission, JobError> {
        self.try_admit_holding(0)
    }

    /// Takes a place at once for a job whose input is `bytes` long: a free
    /// worker slot, or a place in the queue while both the queue's length
    /// and the bytes queued jobs hold stay within their bounds.
    pub fn try_admit_holding(&self, bytes: usize) -> Result<Admission, JobError> {
        if let Ok(permit) = self.inner.slots.clone().try_acquire_owned() {
            return Ok(Admission {
                inner: self.inner.clone(),
                permit: Some(permit),
                counted_queued: false,
                held_bytes: 0,
                timeout: None,
                running: None,
            });
        }
        let bytes = bytes as u64;
        let max_bytes = self.inner.max_queued_bytes.load(Ordering::Relaxed);
        let held =
            self.inner
                .queued_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    held.checked_add(bytes).filter(|&total| total <= max_bytes)
                });
        if held.is_err() {
            return Err(JobError::QueueFull);
        }
        let reserved = self
            .inner
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.inner.max_queue).then_some(q + 1)
            });
        match reserved {
            Ok(_) => {
                self.inner.refresh_idle();
                Ok(Admission {
                    inner: self.inner.clone(),
                    permit: None,
                    counted_queued: true,
                    held_bytes: bytes,
                    timeout: None,
                    running: None,
                })
            }
            Err(_) => {
                self.inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                Err(JobError::QueueFull)
            }
        }
    }

    /// Waits for a free worker slot (never a queue place): for the loop
    /// that takes shared jobs from a backend only as fast as it can run them.
    pub async fn wait_slot(&self) -> Result<Admission, JobError> {
        let permit = self.inner.acquire_slot().await?;
        Ok(Admission {
            inner: self.inner.clone(),
            permit: Some(permit),
            counted_queued: false,
            held_bytes: 0,
            timeout: None,
            running: None,
        })
    }

    /// Waits until a worker slot is free and says how many are free then,
    /// holding none: how many jobs a consumer may take to run at once.
    pub async fn wait_free(&self) -> Result<usize, JobError> {
        let one = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| JobError::ShuttingDown)?;
        let free = 1 + self.inner.slots.available_permits();
        drop(one);
        Ok(free)
    }
}

/// The pool bounds the memory job queue: a claimed job takes its place at
/// once (a free slot or a queue place) and holds it until it runs.
impl crate::backend::Gate for WorkerPool {
    fn enter(&self, input_len: usize) -> Option<crate::backend::Place> {
        self.try_admit_holding(input_len)
            .ok()
            .map(|a| Box::new(a) as crate::backend::Place)
    }
}

impl Admission {
    /// The admission a job's place holds, if it is one.
    pub fn from_place(place: crate::backend::Place) -> Option<Self> {
        place.downcast::<Self>().ok().map(|a| *a)
    }

    /// Stops the job after `timeout` if that is sooner than the pool's deadline.
    pub fn within(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Waits for a worker slot (when queued) and counts the job as
    /// processing from then on: what a caller that announces the start
    /// itself does before `run`.
    pub async fn ready(mut self) -> Result<Self, JobError> {
        if self.permit.is_none() {
            self.permit = Some(self.inner.acquire_slot().await?);
        }
        if self.running.is_none() {
            self.running = Some(Running::start(self.inner.clone()));
            self.leave_queue();
        }
        Ok(self)
    }

    /// Waits for a worker slot and for the image's pixels to fit the pool's
    /// pixel budget, calls `on_start`, then runs the pipeline on a blocking
    /// thread with the pool's deadline.
    pub async fn run(
        self,
        input: Bytes,
        mut options: Options,
        on_start: impl FnOnce() + Send,
    ) -> Result<Output, JobError> {
        let mut this = self.ready().await?;
        let (Some(permit), Some(running)) = (this.permit.take(), this.running.take()) else {
            return Err(JobError::ShuttingDown);
        };
        // Slot first, pixels second: whoever holds pixels holds a slot and
        // is running, so the budget always comes back.
        let pixels = match this.inner.pixel_budget.get() {
            Some(budget) => Some(budget.acquire(input_pixels(&input, &options)).await?),
            None => None,
        };
        on_start();
        let timeout = this
            .timeout
            .map_or(this.inner.timeout, |t| t.min(this.inner.timeout));
        let deadline = Instant::now() + timeout;
        options.deadline = Some(options.deadline.map_or(deadline, |d| d.min(deadline)));
        let task = tokio::task::spawn_blocking(move || {
            // The slot stays taken until the pipeline has really stopped,
            // even when the caller gave up waiting.
            let _slot = permit;
            let _pixels = pixels;
            let _running = running;
            std::panic::catch_unwind(AssertUnwindSafe(|| pipeline::process(&input, &options)))
        });
        match tokio::time::timeout(timeout + Duration::from_secs(1), task).await {
            Err(_) => Err(JobError::Timeout),
            Ok(Err(_join)) => Err(JobError::Panicked),
            Ok(Ok(Err(_panic))) => Err(JobError::Panicked),
            Ok(Ok(Ok(Err(pipeline::PipelineError::Timeout)))) => Err(JobError::Timeout),
            Ok(Ok(Ok(result))) => result.map_err(JobError::from),
        }
    }
}

/// The pixels a job's input decodes to, from its header (admission probed
/// it already); 0 when the header does not read (the pipeline then fails
/// at once).
fn input_pixels(input: &[u8], options: &Options) -> u64 {
    pipeline::read_header(input, &options.limits)
        .map(|info| u64::from(info.width) * u64::from(info.height))
        .unwrap_or(0)
}

impl Admission {
    /// Gives back the queue place and the bytes it held, once.
    fn leave_queue(&mut self) {
        if self.counted_queued {
            self.inner.queued.fetch_sub(1, Ordering::AcqRel);
            self.counted_queued = false;
        }
        let held = std::mem::take(&mut self.held_bytes);
        self.inner.queued_bytes.fetch_sub(held, Ordering::AcqRel);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.leave_queue();
        self.inner.refresh_idle();
    }
}

/// Counts a job as processing for as long as it lives.
struct Running(Arc<Inner>);

impl Running {
    fn start(inner: Arc<Inner>) -> Self {
        inner.processing.fetch_add(1, Ordering::AcqRel);
        inner.refresh_idle();
        Self(inner)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.processing.fetch_sub(1, Ordering::AcqRel);
        self.0.refresh_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_by_slots_plus_queue() {
        let pool = WorkerPool::new(1, 2, Duration::from_secs(5));
        let a = pool.try_admit().expect("a free slot");
        let b = pool.try_admit().expect("queue place 1");
        let c = pool.try_admit().expect("queue place 2");
        assert!(matches!(pool.try_admit(), Err(JobError::QueueFull)));
        assert_eq!(pool.stats().queued, 2);
        drop(b);
        assert_eq!(pool.stats().queued, 1);
        let d = pool.try_admit().expect("the freed queue place");
        drop((a, c, d));
        assert_eq!(
            pool.stats(),
            PoolStats {
                queued: 0,
                processing: 0
            }
        );
    }

    #[test]
    fn uploads_being_received_and_queued_jobs_share_the_byte_bound() {
        let pool = WorkerPool::new(1, 10, Duration::from_secs(5)).with_max_queued_bytes(100);
        let _running = pool.try_admit().unwrap();
        let receiving = pool.hold_intake(70).expect("fits");
        assert!(pool.hold_intake(40).is_none(), "70 + 40 is over 100");
        assert!(
            matches!(pool.try_admit_holding(40), Err(JobError::QueueFull)),
            "a queued job counts against the same bound"
        );
        let queued = pool.try_admit_holding(30).expect("70 + 30 fits");
        assert_eq!(pool.queued_bytes(), 100);
        drop(receiving);
        assert_eq!(pool.queued_bytes(), 30);
        drop(queued);
        assert_eq!(pool.queued_bytes(), 0);
    }

    #[test]
    fn queued_jobs_are_bounded_by_the_bytes_they_hold() {
        let pool = WorkerPool::new(1, 10, Duration::from_secs(5)).with_max_queued_bytes(100);
        let running = pool
            .try_admit_holding(1_000)
            .expect("a free slot holds no queue bytes");
        let a = pool.try_admit_holding(60).expect("60 of 100 bytes");
        assert!(matches!(
            pool.try_admit_holding(41),
            Err(JobError::QueueFull)
        ));
        assert_eq!(pool.queued_bytes(), 60, "a refusal holds nothing");
        let b = pool.try_admit_holding(40).expect("exactly 100 bytes");
        assert_eq!(pool.stats().queued, 2);
        drop(a);
        assert_eq!(pool.queued_bytes(), 40);
        let c = pool.try_admit_holding(60).expect("the freed bytes");
        drop((running, b, c));
        assert_eq!(pool.queued_bytes(), 0);
        assert_eq!(pool.stats().queued, 0);
    }

    #[tokio::test]
    async fn a_job_waits_until_its_pixels_fit_beside_the_running_ones() {
        use futures_util::FutureExt;
        let pool = WorkerPool::new(2, 0, Duration::from_secs(30)).with_max_running_pixels(100_000);
        let budget = pool.inner.pixel_budget.get().expect("a budget was set");
        // A running job holding 60,000 of the 100,000 pixels.
        let held = budget.acquire(60_000).await.unwrap();
        let png = Bytes::from(crate::jobs::admission::tests::png(250, 200)); // 50,000 px
        let started = std::sync::atomic::AtomicBool::new(false);
        let mut job = Box::pin(pool.try_admit().unwrap().run(
            png.clone(),
            Options::default(),
            || started.store(true, Ordering::SeqCst),
        ));
        assert!(
            job.as_mut().now_or_never().is_none(),
            "50,000 px do not fit beside 60,000"
        );
        assert!(!started.load(Ordering::SeqCst));
        assert_eq!(
            pool.stats().processing,
            1,
            "it holds its slot while it waits"
        );
        drop(held);
        let output = job.await.expect("runs once the pixels are back");
        assert!(started.load(Ordering::SeqCst));
        assert!(!output.bytes.is_empty());
        // An image larger than the whole budget runs alone, not never.
        let big = Bytes::from(crate::jobs::admission::tests::png(500, 400)); // 200,000 px
        pool.try_admit()
            .unwrap()
            .run(big, Options::default(), || {})
            .await
            .expect("runs with the whole budget");
        assert_eq!(budget.units.available_permits(), 100, "every unit is back");
    }

    #[tokio::test]
    async fn a_bad_image_fails_its_job_and_frees_the_slot() {
        let pool = WorkerPool::new(1, 0, Duration::from_secs(5));
        let err = pool
            .try_admit()
            .unwrap()
            .run(
                Bytes::from_static(b"not an image"),
                Options::default(),
                || {},
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
        assert_eq!(
            pool.stats(),
            PoolStats {
                queued: 0,
                processing: 0
            }
        );
        assert!(pool.try_admit().is_ok(), "the slot is free again");
    }
}
