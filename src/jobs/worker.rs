//! The worker loop of the job service: takes jobs from the backend's queue
//! (in memory mode as they come, each holding the pool place it was
//! admitted with; with Redis only as fast as this instance's worker pool
//! can run them, waiting for a free slot, never polling), takes over jobs
//! whose worker died, runs each through the pool, records the outcome in
//! the backend, and applies every state change it hears to the local job
//! store's mirror.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::record::{field_of, spec_of};
use super::{Admission, JobError, JobStore, TaskKey, VariantSpec, VariantState};
use crate::backend::{now_micros, BackendError, Heard, Phase, QueuedJob, VariantRecord};

/// Pause after a backend error in a loop, so a lost backend is not hammered.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Starts this instance's loops over the store's backend: the state-change
/// listener (subscribed before this returns), the job consumer and, when
/// workers can die apart from the queue, the reclaimer of their jobs. They
/// stop when `stop` is cancelled.
pub async fn start(
    store: JobStore,
    stop: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, BackendError> {
    let (listener, mut events) = store.repo().clone().listen(stop.clone()).await?;
    let mirror = {
        let store = store.clone();
        tokio::spawn(async move {
            while let Some(heard) = events.recv().await {
                match heard {
                    Heard::Change(event) => store.apply_event(*event).await,
                    // Changes were missed while the subscription was down.
                    Heard::Resubscribed => {
                        tokio::spawn(store.clone().resync());
                    }
                }
            }
        })
    };
    let mut loops = vec![listener, mirror];
    loops.push(tokio::spawn(consume(store.clone(), stop.clone())));
    if let Some(idle) = store.queue().claim_idle() {
        loops.push(tokio::spawn(reclaim(store, idle, stop)));
    }
    Ok(loops)
}

/// Reads new jobs: those that hold their place as they come, others as many
/// at once as there are free worker slots.
///
/// Jobs that hold their place were admitted by this instance's pool and
/// are its jobs in flight: they are still taken after `stop` (shutdown
/// waits for them within its grace period, then ends this loop).
async fn consume(store: JobStore, stop: CancellationToken) {
    let queue = store.queue().clone();
    let stop = if queue.admits_at_claim() {
        CancellationToken::new()
    } else {
        stop
    };
    loop {
        let free = if queue.admits_at_claim() {
            Ok(usize::MAX)
        } else {
            tokio::select! {
                free = store.pool().wait_free() => free,
                () = stop.cancelled() => return,
            }
        };
        let Ok(free) = free else { return };
        let taken = tokio::select! {
            taken = queue.take(free) => taken,
            () = stop.cancelled() => return,
        };
        match taken {
            Ok(jobs) => {
                if !start_jobs(&store, jobs).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job queue");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Takes over jobs idle longer than `idle` (their worker died), as many as
/// there are free worker slots.
async fn reclaim(store: JobStore, idle: Duration, stop: CancellationToken) {
    let every = (idle / 2).max(Duration::from_millis(20));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let free = tokio::select! {
            free = store.pool().wait_free() => free,
            () = stop.cancelled() => return,
        };
        let Ok(free) = free else { return };
        match store.queue().reclaim(free).await {
            Ok(jobs) => {
                for job in &jobs {
                    tracing::info!(id = %job.id, "taking over a job whose worker stopped");
                }
                if !start_jobs(&store, jobs).await {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reclaim idle jobs"),
        }
    }
}

/// Runs each job on the place it holds, or else on a worker slot (they
/// were free when the jobs were read; local work of other protocols may
/// have taken them since, and then this waits). False once the pool is
/// closed.
async fn start_jobs(store: &JobStore, jobs: Vec<QueuedJob>) -> bool {
    for mut job in jobs {
        let held = job.place.take().and_then(|p| Admission::from_place(p.0));
        let slot = match held {
            Some(slot) => slot,
            None => match store.pool().wait_slot().await {
                Ok(slot) => slot,
                Err(_) => return false,
            },
        };
        tokio::spawn(run_job(store.clone(), job, slot));
    }
    true
}

/// Runs one job from the queue on `slot`, stores its outcome and
/// acknowledges it. A job handed out more than `max_attempts` times (each
/// worker before died running it) is set aside instead.
async fn run_job(store: JobStore, job: QueuedJob, slot: Admission) {
    let named = TaskKey::parse(&job.md5).zip(spec_of(&job.variant));
    if let Some((key, spec)) = named {
        let done = if job.deliveries > store.max_attempts() {
            drop(slot);
            set_aside(&store, &job, &key, &spec).await
        } else {
            work(&store, &job, &key, &spec, slot).await
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, md5 = %key, "a job could not be finished");
            // Left pending: another instance takes it after `claim_idle`.
            return;
        }
    }
    if let Err(e) = store.queue().ack(&job).await {
        tracing::warn!(error = %e, "cannot acknowledge a finished job");
    }
}

/// Records a job that stopped its worker every time as failed for good
/// (`job_failed_repeatedly`), unless it was finished meanwhile.
async fn set_aside(
    store: &JobStore,
    job: &QueuedJob,
    key: &TaskKey,
    spec: &VariantSpec,
) -> Result<(), BackendError> {
    let repo = store.repo();
    let field = field_of(spec);
    let Some(record) = repo.record(key.as_str(), &field).await? else {
        return Ok(()); // expired, or failed transiently and dropped
    };
    if matches!(record.state, Phase::Done | Phase::Error) {
        return Ok(());
    }
    let attempts = job.deliveries - 1;
    tracing::warn!(
        id = %job.id,
        md5 = %key,
        variant = %field,
        attempts,
        "setting aside a job that stopped its worker every time"
    );
    let failed = VariantRecord::failed(
        record.original_size,
        &JobError::FailedRepeatedly { attempts },
    );
    repo.publish(key.as_str(), &field, &failed, None).await
}

async fn work(
    store: &JobStore,
    job: &QueuedJob,
    key: &TaskKey,
    spec: &VariantSpec,
    slot: Admission,
) -> Result<(), BackendError> {
    let repo = store.repo();
    let field = field_of(spec);
    let record = match (repo.record(key.as_str(), &field).await?, &job.input) {
        (Some(record), _) => record,
        // A local queue's job is this instance's own: its record may have
        // been evicted from a full cache while it waited, but it still runs.
        (None, Some(input)) => VariantRecord::queued(input.len()),
        (None, None) => return Ok(()), // expired, or failed transiently and dropped
    };
    if matches!(record.state, Phase::Done | Phase::Error) {
        return Ok(()); // finished by another worker
    }
    let original_size = record.original_size;
    let input = match &job.input {
        Some(input) => Some(input.clone()),
        None => repo.input(key.as_str()).await?,
    };
    let Some(input) = input else {
        let failed = VariantRecord::failed(original_size, &JobError::Timeout);
        return repo.publish(key.as_str(), &field, &failed, None).await;
    };
    // A queued place waits for its slot before the job is told processing.
    let started = Instant::now();
    let slot = match slot.ready().await {
        Ok(slot) => slot,
        Err(e) => {
            let failed = VariantRecord::failed(original_size, &e);
            return repo.publish(key.as_str(), &field, &failed, None).await;
        }
    };
    repo.publish(
        key.as_str(),
        &field,
        &VariantRecord::processing(original_size),
        None,
    )
    .await?;
    let result = slot.run(input, store.job_options(spec), || {}).await;
    let state = store
        .settle(key, spec, original_size, result, started, now_micros())
        .await;
    let (record, bytes) = match &state {
        VariantState::Done(finished) => (
            VariantRecord::done(original_size, &**finished),
            Some(finished.bytes.clone()),
        ),
        VariantState::Failed(e) => (VariantRecord::failed(original_size, e), None),
        _ => return Ok(()),
    };
    repo.publish(key.as_str(), &field, &record, bytes.as_ref())
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::backend::{Claim, FailureRecord, JobQueue, JobRepo, MemoryJobs};
    use crate::jobs::admission::tests::png;
    use crate::jobs::{StoreSettings, WorkerPool};

    #[test]
    fn the_servers_auto_scoring_settings_reach_every_jobs_options() {
        let mut settings = crate::config::Settings::default();
        settings.quality.auto_sample_tiles = 20;
        settings.quality.auto_exact_max_pixels = 8_000_000;
        let store = JobStore::new(
            StoreSettings::of(&settings),
            WorkerPool::new(1, 4, Duration::from_secs(30)),
        );
        for query in [
            "format=webp&quality=auto",
            "format=auto",
            "format=webp&quality=80",
        ] {
            let options = store.job_options(&spec_of(query).unwrap());
            assert_eq!(options.auto_scoring.sample_tiles, 20, "{query}");
            assert_eq!(options.auto_scoring.exact_max_pixels, 8_000_000, "{query}");
        }
    }

    #[tokio::test]
    async fn a_cache_too_small_for_a_task_still_answers_its_waiters() {
        let mut settings = StoreSettings::of(&crate::config::Settings::default());
        // Smaller than any task: the cache evicts each one it is given.
        settings.max_bytes = 1;
        let store = JobStore::new(settings, WorkerPool::new(1, 4, Duration::from_secs(30)));
        let input = Bytes::from(png(8, 8));
        let key = TaskKey::of(&input);
        let spec = spec_of("format=webp&quality=80").unwrap();
        let submitted = store.submit(input, spec).await.unwrap();
        store.tasks.run_pending();
        assert_eq!(store.cache_usage().0, 0, "the cache kept nothing");
        assert!(store.task(&key).is_some(), "a queued task stays known");

        let mut state = submitted.variant.subscribe();
        start(store.clone(), CancellationToken::new())
            .await
            .unwrap();
        let settled = tokio::time::timeout(
            Duration::from_secs(60),
            state.wait_for(VariantState::is_settled),
        )
        .await
        .expect("the waiter hears the job's end")
        .unwrap()
        .clone();
        assert!(matches!(settled, VariantState::Done(_)), "{settled:?}");
        // Settled, the task is under the cache's rules again.
        store.tasks.run_pending();
        assert!(store.task(&key).is_none());
    }

    #[tokio::test]
    async fn a_local_job_whose_record_was_evicted_still_runs() {
        let settings = crate::config::Settings::default();
        let pool = WorkerPool::new(1, 4, Duration::from_secs(30));
        let memory = Arc::new(MemoryJobs::new(
            Duration::from_secs(60),
            1 << 20,
            Some(Arc::new(pool.clone())),
        ));
        let store = JobStore::new(StoreSettings::of(&settings), pool).with_backend(memory.clone());
        start(store, CancellationToken::new()).await.unwrap();

        let input = Bytes::from(png(8, 8));
        let key = TaskKey::of(&input);
        let field = "format=webp&quality=80";
        assert!(spec_of(field).is_some());
        assert!(matches!(
            memory.claim(key.as_str(), field, input.len()).await,
            Ok(Claim::Won)
        ));
        // The record goes (as a full cache evicts it) while the job waits.
        let gone = VariantRecord::failed(
            input.len(),
            FailureRecord {
                code: "timeout".into(),
                message: String::new(),
                transient: true,
            },
        );
        memory
            .publish(key.as_str(), field, &gone, None)
            .await
            .unwrap();
        assert_eq!(memory.record(key.as_str(), field).await.unwrap(), None);
        let (_listener, mut events) = memory
            .clone()
            .listen(CancellationToken::new())
            .await
            .unwrap();
        memory.enqueue(key.as_str(), field, &input).await.unwrap();

        loop {
            let Heard::Change(event) = events.recv().await.expect("state changes") else {
                continue;
            };
            if event.record.state == Phase::Done {
                break;
            }
            assert_ne!(event.record.state, Phase::Error, "{event:?}");
        }
        let result = memory.result(key.as_str(), field).await.unwrap();
        assert!(result.is_some_and(|b| b.starts_with(b"RIFF")));
    }
}
