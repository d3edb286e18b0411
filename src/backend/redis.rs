//! The Redis job backend: several instances on one Redis form one job
//! service.
//!
//! It owns the Redis side of jobs (keys below `backend.key_prefix`, see
//! docs/distributed.md): the per-task hash of variant records (claimed with
//! HSETNX), the input and result bytes (with the cache TTL), the job stream
//! and its consumer group, the reclaiming of jobs whose worker died, and the
//! state-change channel. Its loops run jobs on the local `WorkerPool` and
//! feed state changes to the local `JobStore`, which keeps the watch
//! channels that waiters follow. It does not speak HTTP, and rooms, img2img
//! and chat do not go through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{field_of, spec_of, BackendError, Phase, VariantRecord};
use crate::config::BackendSettings;
use crate::jobs::{Finished, JobError, JobStore, TaskKey, VariantSpec};

/// The consumer group every instance reads the job stream in.
pub const GROUP: &str = "workers";
/// How long a health check or connection attempt may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// How long one stream read blocks before looking at the stop signal again.
const READ_BLOCK_MS: usize = 1000;
/// Pause after a Redis error in a loop, so a lost Redis is not hammered.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Key and channel names below the prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
    /// Hash: variant field -> `VariantRecord` JSON.
    pub fn task(&self, key: &TaskKey) -> String {
        format!("{}task:{key}", self.prefix)
    }
    /// String: the uploaded bytes.
    pub fn input(&self, key: &TaskKey) -> String {
        format!("{}input:{key}", self.prefix)
    }
    /// String: one variant's result bytes.
    pub fn result(&self, key: &TaskKey, spec: &VariantSpec) -> String {
        format!("{}result:{key}:{}", self.prefix, field_of(spec))
    }
    /// Stream of jobs: fields `md5` and `variant`.
    pub fn jobs(&self) -> String {
        format!("{}jobs", self.prefix)
    }
    /// Pub/sub channel of `StateEvent`s.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
}

/// A state change, as published on the events channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEvent {
    pub md5: String,
    pub variant: String,
    pub record: VariantRecord,
}

/// What a claim of a variant led to.
#[derive(Debug)]
pub enum Claim {
    /// This caller owns the variant: it must `enqueue` the job.
    Won,
    /// The variant exists (queued, running or settled somewhere).
    Existing(VariantRecord),
    /// Too many jobs are outstanding in the service.
    QueueFull,
}

/// A connection to the shared Redis, and the loops that serve its jobs.
pub struct RedisBackend {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    ttl: Duration,
    claim_idle: Duration,
    max_queue: usize,
    consumer: String,
}

impl RedisBackend {
    /// Connects, checks that Redis answers and creates the consumer group.
    /// `ttl` is the cache TTL of results; `job_timeout` sets the default
    /// `claim_idle`; `max_queue` bounds the jobs outstanding in the stream.
    pub async fn connect(
        settings: &BackendSettings,
        ttl: Duration,
        job_timeout: Duration,
        max_queue: usize,
    ) -> Result<Self, BackendError> {
        let client = redis::Client::open(settings.redis_url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(ANSWER_WITHIN)
            .set_response_timeout(Duration::from_secs(10));
        let conn = tokio::time::timeout(
            ANSWER_WITHIN * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| BackendError::NoAnswer(ANSWER_WITHIN * 2))??;
        let backend = Self {
            client,
            conn,
            keys: Keys::new(&settings.key_prefix),
            ttl,
            claim_idle: settings.claim_idle_or(job_timeout),
            max_queue,
            consumer: consumer_name(),
        };
        backend.ping().await?;
        backend.create_group().await?;
        Ok(backend)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This instance's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Whether Redis answers, within a short deadline.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(
            ANSWER_WITHIN,
            redis::cmd("PING").query_async::<()>(&mut conn),
        )
        .await
        .map_err(|_| BackendError::NoAnswer(ANSWER_WITHIN))??;
        Ok(())
    }

    async fn create_group(&self) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = conn
            .xgroup_create_mkstream(self.keys.jobs(), GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Jobs in the stream not yet finished (waiting or running).
    pub async fn outstanding(&self) -> Result<usize, BackendError> {
        let mut conn = self.conn.clone();
        Ok(conn.xlen(self.keys.jobs()).await?)
    }

    /// Claims a variant for this caller unless it exists already. A done
    /// variant whose result has expired is claimed again.
    pub async fn claim(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
        original_size: usize,
    ) -> Result<Claim, BackendError> {
        let field = field_of(spec);
        let hash = self.keys.task(key);
        let mut conn = self.conn.clone();
        if let Some(record) = self.record(key, spec).await? {
            let gone: bool = record.state == Phase::Done
                && !conn.exists::<_, bool>(self.keys.result(key, spec)).await?;
            if !gone {
                return Ok(Claim::Existing(record));
            }
        }
        if self.outstanding().await? >= self.max_queue {
            return Ok(Claim::QueueFull);
        }
        let queued = VariantRecord::queued(original_size).to_json();
        let (won,): (bool,) = redis::pipe()
            .atomic()
            .hset_nx(&hash, &field, &queued)
            .expire(&hash, ttl_secs(self.ttl))
            .ignore()
            .query_async(&mut conn)
            .await?;
        if won {
            return Ok(Claim::Won);
        }
        match self.record(key, spec).await? {
            Some(record) if record.state == Phase::Done => {
                // Its result expired: take it over.
                let _: () = conn.hset(&hash, &field, &queued).await?;
                Ok(Claim::Won)
            }
            Some(record) => Ok(Claim::Existing(record)),
            // Deleted in between (a transient failure): the next try claims it.
            None => Ok(Claim::Existing(VariantRecord::queued(original_size))),
        }
    }

    /// Stores the input and adds the job to the stream (after `Won`).
    pub async fn enqueue(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
        input: &Bytes,
    ) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .set_ex(
                self.keys.input(key),
                input.as_ref(),
                self.ttl.as_secs().max(1),
            )
            .ignore()
            .xadd(
                self.keys.jobs(),
                "*",
                &[("md5", key.as_str()), ("variant", field_of(spec).as_str())],
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// One variant's record.
    pub async fn record(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
    ) -> Result<Option<VariantRecord>, BackendError> {
        let mut conn = self.conn.clone();
        let text: Option<String> = conn.hget(self.keys.task(key), field_of(spec)).await?;
        text.map(|t| VariantRecord::from_json(&t)).transpose()
    }

    /// Every variant of a task (empty when the task is unknown or expired).
    pub async fn records(
        &self,
        key: &TaskKey,
    ) -> Result<Vec<(VariantSpec, VariantRecord)>, BackendError> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, String)> = conn.hgetall(self.keys.task(key)).await?;
        let mut out = Vec::with_capacity(all.len());
        for (field, text) in all {
            if let Some(spec) = spec_of(&field) {
                out.push((spec, VariantRecord::from_json(&text)?));
            }
        }
        Ok(out)
    }

    /// A done variant's result bytes.
    pub async fn result(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
    ) -> Result<Option<Bytes>, BackendError> {
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = conn.get(self.keys.result(key, spec)).await?;
        Ok(bytes.map(Bytes::from))
    }

    /// Records a state and tells every instance. A done record is stored
    /// after its result bytes; a transient failure is told but not kept, so
    /// the next submission claims the variant again.
    pub async fn publish(
        &self,
        key: &TaskKey,
        spec: &VariantSpec,
        record: &VariantRecord,
        result: Option<&Bytes>,
    ) -> Result<(), BackendError> {
        let hash = self.keys.task(key);
        let field = field_of(spec);
        let event = StateEvent {
            md5: key.to_string(),
            variant: field.clone(),
            record: record.clone(),
        };
        let event = serde_json::to_string(&event).expect("an event serialises");
        let transient = record
            .failure
            .as_ref()
            .is_some_and(|f| f.to_error().is_transient());
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(bytes) = result {
            pipe.set_ex(
                self.keys.result(key, spec),
                bytes.as_ref(),
                self.ttl.as_secs().max(1),
            )
            .ignore();
        }
        if transient {
            pipe.hdel(&hash, &field).ignore();
        } else {
            pipe.hset(&hash, &field, record.to_json()).ignore();
            pipe.expire(&hash, ttl_secs(self.ttl)).ignore();
        }
        pipe.publish(self.keys.events(), event).ignore();
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Starts this instance's loops: the state-change listener (subscribed
    /// before this returns), the job consumer and the reclaimer of jobs
    /// whose worker died, running at most `slots` jobs at once. They stop
    /// when `stop` turns true.
    pub async fn start(
        self: Arc<Self>,
        store: JobStore,
        slots: usize,
        stop: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, BackendError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.events()).await?;
        let listener = tokio::spawn(self.clone().listen(pubsub, store.clone(), stop.clone()));
        let reader = self
            .client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_connection_timeout(ANSWER_WITHIN),
            )
            .await?;
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        let consumer =
            tokio::spawn(
                self.clone()
                    .consume(reader, store.clone(), slots.clone(), stop.clone()),
            );
        let reclaimer = tokio::spawn(self.reclaim(store, slots, stop));
        Ok(vec![listener, consumer, reclaimer])
    }

    /// Applies every published state change to the local mirror.
    async fn listen(
        self: Arc<Self>,
        mut pubsub: redis::aio::PubSub,
        store: JobStore,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            {
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        m = messages.next() => m,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let Some(message) = message else { break };
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<StateEvent>(&text) {
                        Ok(event) => store.apply_event(event).await,
                        Err(e) => tracing::warn!(error = %e, "unreadable state event"),
                    }
                }
            }
            tracing::warn!("lost the state-change subscription; subscribing again");
            pubsub = loop {
                if *stop.borrow() {
                    return;
                }
                match self.subscribe().await {
                    Ok(p) => break p,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to state changes");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            };
        }
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSub, BackendError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.events()).await?;
        Ok(pubsub)
    }

    /// Reads new jobs from the stream, as many at once as there are free
    /// worker slots, and runs each.
    async fn consume(
        self: Arc<Self>,
        mut reader: MultiplexedConnection,
        store: JobStore,
        slots: Arc<Semaphore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let stream = [self.keys.jobs()];
        loop {
            let permits = tokio::select! {
                p = take_slots(&slots) => p,
                _ = stop.wait_for(|s| *s) => return,
            };
            let options = StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(permits.len())
                .block(READ_BLOCK_MS);
            let read: redis::RedisResult<StreamReadReply> = tokio::select! {
                r = reader.xread_options(&stream, &[">"], &options) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match read {
                Ok(reply) => {
                    let entries = reply.keys.into_iter().flat_map(|k| k.ids);
                    for (entry, permit) in entries.zip(permits) {
                        tokio::spawn(self.clone().run_job(store.clone(), entry, permit));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the job stream");
                    tokio::time::sleep(RETRY_AFTER).await;
                    if e.code() == Some("NOGROUP") {
                        let _ = self.create_group().await;
                    }
                }
            }
        }
    }

    /// Takes over jobs idle longer than `claim_idle` (their worker died).
    async fn reclaim(
        self: Arc<Self>,
        store: JobStore,
        slots: Arc<Semaphore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval((self.claim_idle / 2).max(Duration::from_millis(20)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let permits = tokio::select! {
                p = take_slots(&slots) => p,
                _ = stop.wait_for(|s| *s) => return,
            };
            let mut conn = self.conn.clone();
            let claimed: redis::RedisResult<StreamAutoClaimReply> = conn
                .xautoclaim_options(
                    self.keys.jobs(),
                    GROUP,
                    &self.consumer,
                    self.claim_idle.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(permits.len()),
                )
                .await;
            match claimed {
                Ok(reply) => {
                    for (entry, permit) in reply.claimed.into_iter().zip(permits) {
                        tracing::info!(id = %entry.id, "taking over a job whose worker stopped");
                        tokio::spawn(self.clone().run_job(store.clone(), entry, permit));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reclaim idle jobs"),
            }
        }
    }

    /// Runs one job from the stream on the local pool, stores its outcome
    /// and acknowledges it.
    async fn run_job(
        self: Arc<Self>,
        store: JobStore,
        entry: StreamId,
        _slot: OwnedSemaphorePermit,
    ) {
        let job = entry
            .get::<String>("md5")
            .and_then(|m| TaskKey::parse(&m))
            .zip(entry.get::<String>("variant").and_then(|v| spec_of(&v)));
        if let Some((key, spec)) = job {
            if let Err(e) = self.work(&store, &key, &spec).await {
                tracing::warn!(error = %e, md5 = %key, "a job could not be finished");
                // Left pending: another instance takes it after `claim_idle`.
                return;
            }
        }
        let mut conn = self.conn.clone();
        let acked: redis::RedisResult<()> = redis::pipe()
            .xack(self.keys.jobs(), GROUP, &[&entry.id])
            .ignore()
            .xdel(self.keys.jobs(), &[&entry.id])
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = acked {
            tracing::warn!(error = %e, "cannot acknowledge a finished job");
        }
    }

    async fn work(
        &self,
        store: &JobStore,
        key: &TaskKey,
        spec: &VariantSpec,
    ) -> Result<(), BackendError> {
        let Some(record) = self.record(key, spec).await? else {
            return Ok(()); // expired, or failed transiently and dropped
        };
        if matches!(record.state, Phase::Done | Phase::Error) {
            return Ok(()); // finished by another worker
        }
        let original_size = record.original_size;
        let mut conn = self.conn.clone();
        let input: Option<Vec<u8>> = conn.get(self.keys.input(key)).await?;
        let Some(input) = input else {
            let failed = VariantRecord::failed(original_size, &JobError::Timeout);
            return self.publish(key, spec, &failed, None).await;
        };
        let admission = loop {
            match store.pool().try_admit() {
                Ok(a) => break a,
                // Local work of other protocols fills the pool: wait for it.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.publish(key, spec, &VariantRecord::processing(original_size), None)
            .await?;
        let started = Instant::now();
        let result = admission
            .run(Bytes::from(input), spec.options(store.limits()), || {})
            .await;
        let (record, bytes, outcome) = match result {
            Ok(output) => {
                let finished = Finished::from_output(output, now_micros());
                store.write_copy(key, spec, &finished.bytes).await;
                let record = VariantRecord::done(original_size, &finished);
                (record, Some(finished.bytes), "done")
            }
            Err(e) => (VariantRecord::failed(original_size, &e), None, e.code()),
        };
        self.publish(key, spec, &record, bytes.as_ref()).await?;
        store.observe(
            spec.format,
            outcome,
            started.elapsed(),
            original_size,
            bytes.as_ref().map_or(0, Bytes::len),
        );
        Ok(())
    }
}

/// Waits for one free slot, then takes every other free one.
async fn take_slots(slots: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let first = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the slots are never closed");
    let mut permits = vec![first];
    while let Ok(p) = slots.clone().try_acquire_owned() {
        permits.push(p);
    }
    permits
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A name unique to this instance: process, start time and a counter.
fn consumer_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_micros(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
