//! The worker loop of the shared job service (`backend.kind: redis`): takes
//! jobs from the backend's stream only as fast as this instance's worker
//! pool can run them (waiting for a free slot, never polling), takes over
//! jobs whose worker died, runs each through the pool, records the outcome
//! in the backend, and applies every state change it hears to the local
//! job store's mirror.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::record::{field_of, spec_of};
use super::{Admission, JobError, JobStore, TaskKey, VariantSpec, VariantState};
use crate::backend::redis::{now_micros, JobReader, QueuedJob, RETRY_AFTER};
use crate::backend::{BackendError, Phase, RedisBackend, VariantRecord};

/// Starts this instance's loops over `backend`: the state-change listener
/// (subscribed before this returns), the job consumer and the reclaimer of
/// jobs whose worker died. They stop when `stop` is cancelled.
pub async fn start(
    store: JobStore,
    backend: Arc<RedisBackend>,
    stop: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, BackendError> {
    let (listener, mut events) = backend.clone().listen(stop.clone()).await?;
    let mirror = {
        let store = store.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                store.apply_event(event).await;
            }
        })
    };
    let reader = backend.reader().await?;
    let consumer = tokio::spawn(consume(
        store.clone(),
        backend.clone(),
        reader,
        stop.clone(),
    ));
    let reclaimer = tokio::spawn(reclaim(store, backend, stop));
    Ok(vec![listener, mirror, consumer, reclaimer])
}

/// Reads new jobs, as many at once as there are free worker slots.
async fn consume(
    store: JobStore,
    backend: Arc<RedisBackend>,
    mut reader: JobReader,
    stop: CancellationToken,
) {
    loop {
        let free = tokio::select! {
            free = store.pool().wait_free() => free,
            () = stop.cancelled() => return,
        };
        let Ok(free) = free else { return };
        let taken = tokio::select! {
            taken = backend.take(&mut reader, free) => taken,
            () = stop.cancelled() => return,
        };
        match taken {
            Ok(jobs) => {
                if !start_jobs(&store, &backend, jobs).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job stream");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Takes over jobs idle longer than `claim_idle` (their worker died), as
/// many as there are free worker slots.
async fn reclaim(store: JobStore, backend: Arc<RedisBackend>, stop: CancellationToken) {
    let every = (backend.claim_idle() / 2).max(Duration::from_millis(20));
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
        match backend.reclaim(free).await {
            Ok(jobs) => {
                for job in &jobs {
                    tracing::info!(id = %job.id, "taking over a job whose worker stopped");
                }
                if !start_jobs(&store, &backend, jobs).await {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reclaim idle jobs"),
        }
    }
}

/// Takes a worker slot for each job (they were free when the jobs were
/// read; local work of other protocols may have taken them since, and then
/// this waits) and runs it. False once the pool is closed.
async fn start_jobs(store: &JobStore, backend: &Arc<RedisBackend>, jobs: Vec<QueuedJob>) -> bool {
    for job in jobs {
        let Ok(slot) = store.pool().wait_slot().await else {
            return false;
        };
        tokio::spawn(run_job(store.clone(), backend.clone(), job, slot));
    }
    true
}

/// Runs one job from the stream on `slot`, stores its outcome and
/// acknowledges it.
async fn run_job(store: JobStore, backend: Arc<RedisBackend>, job: QueuedJob, slot: Admission) {
    let named = TaskKey::parse(&job.md5).zip(spec_of(&job.variant));
    if let Some((key, spec)) = named {
        if let Err(e) = work(&store, &backend, &key, &spec, slot).await {
            tracing::warn!(error = %e, md5 = %key, "a job could not be finished");
            // Left pending: another instance takes it after `claim_idle`.
            return;
        }
    }
    if let Err(e) = backend.ack(&job).await {
        tracing::warn!(error = %e, "cannot acknowledge a finished job");
    }
}

async fn work(
    store: &JobStore,
    backend: &RedisBackend,
    key: &TaskKey,
    spec: &VariantSpec,
    slot: Admission,
) -> Result<(), BackendError> {
    let field = field_of(spec);
    let Some(record) = backend.record(key.as_str(), &*field).await? else {
        return Ok(()); // expired, or failed transiently and dropped
    };
    if matches!(record.state, Phase::Done | Phase::Error) {
        return Ok(()); // finished by another worker
    }
    let original_size = record.original_size;
    let Some(input) = backend.input(key.as_str()).await? else {
        let failed = VariantRecord::failed(original_size, &JobError::Timeout);
        return backend.publish(key.as_str(), &*field, &failed, None).await;
    };
    backend
        .publish(
            key.as_str(),
            &*field,
            &VariantRecord::processing(original_size),
            None,
        )
        .await?;
    let started = Instant::now();
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
    backend
        .publish(key.as_str(), &*field, &record, bytes.as_ref())
        .await
}
