//! The Redis job backend: several instances on one Redis form one job
//! service.
//!
//! It owns the Redis side of jobs (keys below `backend.key_prefix`, see
//! docs/distributed.md): the per-task hash of variant records (claimed with
//! HSETNX), the input and result bytes (with the cache TTL), the job stream
//! and its consumer group, the reclaiming of jobs whose worker died, and the
//! state-change channel. It stores and moves plain records: the job
//! service's worker loop (`jobs::worker`) takes jobs from it, runs them and
//! applies the state changes it hears to the local mirror. It imports no
//! domain module and does not speak HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

pub use super::now_micros;
use super::{
    BackendError, FieldName, Heard, JobQueue, JobRepo, Listener, Phase, QueueDepth, VariantRecord,
};
use crate::config::BackendSettings;

/// The consumer group every instance reads the job stream in.
pub const GROUP: &str = "workers";
/// How long a health check or connection attempt may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// A client for the configured Redis and a managed connection to it that
/// reconnects by itself; an error when Redis does not answer in time.
pub(super) async fn connect_manager(
    settings: &BackendSettings,
) -> Result<(redis::Client, ConnectionManager), BackendError> {
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
    Ok((client, conn))
}

/// What a pub/sub connection listens to: one channel, or a pattern.
pub(super) enum Channel {
    Exact(String),
    Pattern(String),
}

/// A pub/sub connection of its own, subscribed to `channel`.
pub(super) async fn subscribe(
    client: &redis::Client,
    channel: &Channel,
) -> Result<redis::aio::PubSub, BackendError> {
    let mut pubsub = client.get_async_pubsub().await?;
    match channel {
        Channel::Exact(name) => pubsub.subscribe(name).await?,
        Channel::Pattern(pattern) => pubsub.psubscribe(pattern).await?,
    }
    Ok(pubsub)
}

/// Hands every message heard on `channel` to `on_message` until `stop` is
/// cancelled or `on_message` answers false; when the subscription is lost,
/// subscribes again (every `RETRY_AFTER` while Redis does not answer).
/// `what` names the messages in the log.
pub(super) async fn each_message(
    client: redis::Client,
    channel: Channel,
    pubsub: redis::aio::PubSub,
    stop: CancellationToken,
    what: &'static str,
    on_message: impl FnMut(redis::Msg) -> bool,
) {
    each_message_resuming(client, channel, pubsub, stop, what, on_message, || true).await;
}

/// Like [`each_message`], calling `on_resubscribed` each time the
/// subscription is back after it was lost (messages in between were
/// missed); it answers false to stop.
pub(super) async fn each_message_resuming(
    client: redis::Client,
    channel: Channel,
    mut pubsub: redis::aio::PubSub,
    stop: CancellationToken,
    what: &'static str,
    mut on_message: impl FnMut(redis::Msg) -> bool,
    mut on_resubscribed: impl FnMut() -> bool,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    m = messages.next() => m,
                    () = stop.cancelled() => return,
                };
                let Some(message) = message else { break };
                if !on_message(message) {
                    return;
                }
            }
        }
        tracing::warn!(what, "lost a subscription; subscribing again");
        pubsub = loop {
            if stop.is_cancelled() {
                return;
            }
            match subscribe(&client, &channel).await {
                Ok(p) => {
                    tracing::info!(what, "subscribed again");
                    break p;
                }
                Err(e) => {
                    tracing::warn!(error = %e, what, "cannot subscribe");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_AFTER) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        if !on_resubscribed() {
            return;
        }
    }
}

/// How long one stream read blocks before looking at the stop signal again.
const READ_BLOCK_MS: usize = 1000;
/// Pause after a Redis error in a loop, so a lost Redis is not hammered.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

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
    pub fn task(&self, key: &str) -> String {
        format!("{}task:{key}", self.prefix)
    }
    /// String: the uploaded bytes.
    pub fn input(&self, key: &str) -> String {
        format!("{}input:{key}", self.prefix)
    }
    /// String: one variant's result bytes.
    pub fn result(&self, key: &str, field: &str) -> String {
        format!("{}result:{key}:{field}", self.prefix)
    }
    /// Stream of jobs: fields `md5` and `variant`.
    /// The set of owners (API key names) of a task.
    pub fn owners(&self, key: &str) -> String {
        format!("{}owners:{key}", self.prefix)
    }

    pub fn jobs(&self) -> String {
        format!("{}jobs", self.prefix)
    }
    /// Pub/sub channel of `StateEvent`s.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
}

pub use super::{Claim, QueuedJob, StateEvent};

fn queued_job(entry: &StreamId) -> QueuedJob {
    QueuedJob {
        id: entry.id.clone(),
        md5: entry.get::<String>("md5").unwrap_or_default(),
        variant: entry.get::<String>("variant").unwrap_or_default(),
        input: None,
        place: None,
        deliveries: 1,
    }
}

/// Claims a variant and enqueues its job in one step (see
/// [`RedisBackend::submit`]). KEYS: the task hash, the input, the
/// variant's result, the job stream. ARGV: the field, the queued record,
/// the TTL in seconds, the queue bound, the md5, the input bytes. Answers
/// `{0, record}` for an existing variant, `{1, ""}` when claimed and
/// queued, `{2, ""}` when the queue is full. The job is added first, so a
/// command that fails leaves nothing behind (Redis does not undo a
/// script's earlier writes).
const SUBMIT: &str = r#"
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  local ok, record = pcall(cjson.decode, existing)
  local expired = ok and type(record) == 'table' and record.state == 'done'
    and redis.call('EXISTS', KEYS[3]) == 0
  if not expired then
    return {0, existing}
  end
end
if redis.call('XLEN', KEYS[4]) >= tonumber(ARGV[4]) then
  return {2, ''}
end
redis.call('XADD', KEYS[4], '*', 'md5', ARGV[5], 'variant', ARGV[1])
redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, ''}
"#;

/// The connection that blocks on the job stream, apart from the shared one.
pub struct JobReader {
    conn: MultiplexedConnection,
}

/// A connection to the shared Redis.
pub struct RedisBackend {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    ttl: Duration,
    claim_idle: Duration,
    max_queue: usize,
    consumer: String,
    /// The blocking reader of the job stream, made on first `take`.
    reader: tokio::sync::Mutex<Option<JobReader>>,
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
        let (client, conn) = connect_manager(settings).await?;
        let backend = Self {
            client,
            conn,
            keys: Keys::new(&settings.key_prefix),
            ttl,
            claim_idle: settings.claim_idle_or(job_timeout),
            max_queue,
            consumer: consumer_name(),
            reader: tokio::sync::Mutex::new(None),
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

    /// Records `owner` as one who uploaded task `key` (for as long as results live).
    pub async fn add_owner(&self, key: &str, owner: &str) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let set = self.keys.owners(key);
        redis::pipe()
            .sadd(&set, owner)
            .ignore()
            .expire(&set, ttl_secs(self.ttl))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether `owner` uploaded task `key`.
    pub async fn is_owner(&self, key: &str, owner: &str) -> Result<bool, BackendError> {
        let mut conn = self.conn.clone();
        Ok(conn.sismember(self.keys.owners(key), owner).await?)
    }

    /// Jobs in the stream not yet finished (waiting or running).
    pub async fn outstanding(&self) -> Result<usize, BackendError> {
        let mut conn = self.conn.clone();
        Ok(conn.xlen(self.keys.jobs()).await?)
    }

    /// A variant's record, unless it is missing or done with its result
    /// expired (then the variant may be claimed again).
    async fn live_record(
        &self,
        key: &str,
        field: &str,
    ) -> Result<Option<VariantRecord>, BackendError> {
        let Some(record) = self.record(key, field).await? else {
            return Ok(None);
        };
        if record.state == Phase::Done {
            let mut conn = self.conn.clone();
            if !conn.exists::<_, bool>(self.keys.result(key, field)).await? {
                return Ok(None);
            }
        }
        Ok(Some(record))
    }

    /// Claims a variant for this caller unless it exists already. A done
    /// variant whose result has expired is claimed again.
    pub async fn claim<K, F>(
        &self,
        key: &K,
        spec: &F,
        original_size: usize,
    ) -> Result<Claim, BackendError>
    where
        K: AsRef<str> + ?Sized,
        F: FieldName + ?Sized,
    {
        let (key, field) = (key.as_ref(), spec.field());
        let hash = self.keys.task(key);
        let mut conn = self.conn.clone();
        if let Some(record) = self.live_record(key, &field).await? {
            return Ok(Claim::Existing(record));
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
        match self.record(key, &*field).await? {
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
    pub async fn enqueue<K, F>(&self, key: &K, spec: &F, input: &Bytes) -> Result<(), BackendError>
    where
        K: AsRef<str> + ?Sized,
        F: FieldName + ?Sized,
    {
        let (key, field) = (key.as_ref(), spec.field());
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
                &[("md5", key), ("variant", field.as_str())],
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Claims a variant and, when won, stores the input and adds the job to
    /// the stream, all in one script: a caller that loses Redis half-way
    /// leaves either everything or nothing. The queue bound is checked in
    /// the same step. An existing variant is looked up first, so its
    /// duplicates never send their bytes to Redis.
    pub async fn submit<K, F>(
        &self,
        key: &K,
        spec: &F,
        input: &Bytes,
    ) -> Result<Claim, BackendError>
    where
        K: AsRef<str> + ?Sized,
        F: FieldName + ?Sized,
    {
        let (key, field) = (key.as_ref(), spec.field());
        let mut conn = self.conn.clone();
        if let Some(record) = self.live_record(key, &field).await? {
            return Ok(Claim::Existing(record));
        }
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| redis::Script::new(SUBMIT));
        let (outcome, existing): (i64, String) = script
            .key(self.keys.task(key))
            .key(self.keys.input(key))
            .key(self.keys.result(key, &field))
            .key(self.keys.jobs())
            .arg(&field)
            .arg(VariantRecord::queued(input.len()).to_json())
            .arg(ttl_secs(self.ttl))
            .arg(self.max_queue)
            .arg(key)
            .arg(input.as_ref())
            .invoke_async(&mut conn)
            .await?;
        match outcome {
            1 => Ok(Claim::Won),
            2 => Ok(Claim::QueueFull),
            _ => Ok(Claim::Existing(VariantRecord::from_json(&existing)?)),
        }
    }

    /// Jobs in the stream waiting to be taken, and taken but not
    /// acknowledged (running, or held by a worker that died), across every
    /// instance.
    pub async fn depth(&self) -> Result<QueueDepth, BackendError> {
        let mut conn = self.conn.clone();
        let read: redis::RedisResult<(usize, redis::streams::StreamPendingReply)> = redis::pipe()
            .xlen(self.keys.jobs())
            .xpending(self.keys.jobs(), GROUP)
            .query_async(&mut conn)
            .await;
        let (len, pending) = match read {
            Ok(r) => r,
            Err(e) => {
                self.remake_lost_group(&e).await;
                return Err(e.into());
            }
        };
        let taken = pending.count();
        Ok(QueueDepth {
            waiting: len.saturating_sub(taken),
            taken,
        })
    }

    /// Makes the consumer group again when Redis lost it (it restarted
    /// empty): the next read finds it.
    async fn remake_lost_group(&self, e: &redis::RedisError) {
        if e.code() == Some("NOGROUP") {
            if let Err(e) = self.create_group().await {
                tracing::warn!(error = %e, "cannot make the consumer group");
            }
        }
    }

    /// One variant's record.
    pub async fn record<K, F>(
        &self,
        key: &K,
        spec: &F,
    ) -> Result<Option<VariantRecord>, BackendError>
    where
        K: AsRef<str> + ?Sized,
        F: FieldName + ?Sized,
    {
        let mut conn = self.conn.clone();
        let text: Option<String> = conn
            .hget(self.keys.task(key.as_ref()), spec.field())
            .await?;
        text.map(|t| VariantRecord::from_json(&t)).transpose()
    }

    /// Every variant of a task by field (empty when the task is unknown or
    /// expired).
    pub async fn records(&self, key: &str) -> Result<Vec<(String, VariantRecord)>, BackendError> {
        let mut conn = self.conn.clone();
        let all: Vec<(String, String)> = conn.hgetall(self.keys.task(key)).await?;
        let mut out = Vec::with_capacity(all.len());
        for (field, text) in all {
            out.push((field, VariantRecord::from_json(&text)?));
        }
        Ok(out)
    }

    /// A done variant's result bytes.
    pub async fn result(&self, key: &str, field: &str) -> Result<Option<Bytes>, BackendError> {
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = conn.get(self.keys.result(key, field)).await?;
        Ok(bytes.map(Bytes::from))
    }

    /// A job's uploaded bytes, while kept.
    pub async fn input(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = conn.get(self.keys.input(key)).await?;
        Ok(bytes.map(Bytes::from))
    }

    /// Records a state and tells every instance. A done record is stored
    /// after its result bytes; a transient failure is told but not kept, so
    /// the next submission claims the variant again.
    pub async fn publish<K, F>(
        &self,
        key: &K,
        spec: &F,
        record: &VariantRecord,
        result: Option<&Bytes>,
    ) -> Result<(), BackendError>
    where
        K: AsRef<str> + ?Sized,
        F: FieldName + ?Sized,
    {
        let (key, field) = (key.as_ref(), spec.field());
        let hash = self.keys.task(key);
        let event = StateEvent {
            md5: key.to_string(),
            variant: field.clone(),
            record: record.clone(),
        };
        let event = serde_json::to_string(&event).unwrap_or_default();
        let transient = record.is_transient();
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(bytes) = result {
            pipe.set_ex(
                self.keys.result(key, &field),
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

    /// Subscribes to state changes (before this returns) and hands every
    /// one to the returned receiver until `stop` is cancelled, subscribing
    /// again when the subscription is lost.
    pub async fn listen(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> Result<(JoinHandle<()>, mpsc::UnboundedReceiver<Heard>), BackendError> {
        let pubsub = self.subscribe().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((tokio::spawn(self.forward(pubsub, tx, stop)), rx))
    }

    async fn forward(
        self: Arc<Self>,
        pubsub: redis::aio::PubSub,
        events: mpsc::UnboundedSender<Heard>,
        stop: CancellationToken,
    ) {
        let channel = Channel::Exact(self.keys.events());
        let resumed = events.clone();
        each_message_resuming(
            self.client.clone(),
            channel,
            pubsub,
            stop,
            "state changes",
            |message| {
                let Ok(text) = message.get_payload::<String>() else {
                    return true;
                };
                match serde_json::from_str::<StateEvent>(&text) {
                    Ok(event) => events.send(Heard::Change(Box::new(event))).is_ok(),
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable state event");
                        true
                    }
                }
            },
            || resumed.send(Heard::Resubscribed).is_ok(),
        )
        .await;
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSub, BackendError> {
        subscribe(&self.client, &Channel::Exact(self.keys.events())).await
    }

    /// A connection of its own for blocking reads of the job stream.
    pub async fn reader(&self) -> Result<JobReader, BackendError> {
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_connection_timeout(ANSWER_WITHIN),
            )
            .await?;
        Ok(JobReader { conn })
    }

    /// Takes up to `count` new jobs for this instance, waiting a moment for
    /// one to arrive (an empty answer then). A lost consumer group is made
    /// again.
    pub async fn take(
        &self,
        reader: &mut JobReader,
        count: usize,
    ) -> Result<Vec<QueuedJob>, BackendError> {
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(count.max(1))
            .block(READ_BLOCK_MS);
        let read: redis::RedisResult<StreamReadReply> = reader
            .conn
            .xread_options(&[self.keys.jobs()], &[">"], &options)
            .await;
        match read {
            Ok(reply) => Ok(reply
                .keys
                .iter()
                .flat_map(|k| k.ids.iter().map(queued_job))
                .collect()),
            Err(e) => {
                self.remake_lost_group(&e).await;
                Err(e.into())
            }
        }
    }

    /// Takes over up to `count` jobs idle longer than `claim_idle` (their
    /// worker died), each with the number of times the stream has handed
    /// it out (this time included), read from the group's pending list.
    pub async fn reclaim(&self, count: usize) -> Result<Vec<QueuedJob>, BackendError> {
        let mut conn = self.conn.clone();
        let claimed: redis::RedisResult<StreamAutoClaimReply> = conn
            .xautoclaim_options(
                self.keys.jobs(),
                GROUP,
                &self.consumer,
                self.claim_idle.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(count.max(1)),
            )
            .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                self.remake_lost_group(&e).await;
                return Err(e.into());
            }
        };
        let mut jobs: Vec<QueuedJob> = claimed.claimed.iter().map(queued_job).collect();
        if jobs.is_empty() {
            return Ok(jobs);
        }
        let mut pipe = redis::pipe();
        for job in &jobs {
            pipe.xpending_count(self.keys.jobs(), GROUP, &job.id, &job.id, 1);
        }
        let pending: Vec<StreamPendingCountReply> = pipe.query_async(&mut conn).await?;
        for (job, entry) in jobs.iter_mut().zip(pending) {
            if let Some(entry) = entry.ids.first() {
                job.deliveries = u32::try_from(entry.times_delivered).unwrap_or(u32::MAX);
            }
        }
        Ok(jobs)
    }

    /// How long a job may stay unacknowledged before another worker takes it.
    pub fn claim_idle(&self) -> Duration {
        self.claim_idle
    }

    /// Acknowledges and removes a finished job.
    pub async fn ack(&self, job: &QueuedJob) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .xack(self.keys.jobs(), GROUP, &[&job.id])
            .ignore()
            .xdel(self.keys.jobs(), &[&job.id])
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)
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

impl JobRepo for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn add_owner<'a>(
        &'a self,
        md5: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        RedisBackend::add_owner(self, md5, owner).boxed()
    }

    fn is_owner<'a>(
        &'a self,
        md5: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        RedisBackend::is_owner(self, md5, owner).boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        RedisBackend::ping(self).boxed()
    }

    fn claim<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        original_size: usize,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        RedisBackend::claim(self, md5, field, original_size).boxed()
    }

    fn record<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<VariantRecord>, BackendError>> {
        RedisBackend::record(self, md5, field).boxed()
    }

    fn records<'a>(
        &'a self,
        md5: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, VariantRecord)>, BackendError>> {
        RedisBackend::records(self, md5).boxed()
    }

    fn result<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        RedisBackend::result(self, md5, field).boxed()
    }

    fn input<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        RedisBackend::input(self, md5).boxed()
    }

    fn publish<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        record: &'a VariantRecord,
        result: Option<&'a Bytes>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        RedisBackend::publish(self, md5, field, record, result).boxed()
    }

    fn listen(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Result<Listener, BackendError>> {
        RedisBackend::listen(self, stop).boxed()
    }
}

impl JobQueue for RedisBackend {
    fn enqueue<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        RedisBackend::enqueue(self, md5, field, input).boxed()
    }

    fn submit<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        RedisBackend::submit(self, md5, field, input).boxed()
    }

    fn depth(&self) -> BoxFuture<'_, Result<Option<QueueDepth>, BackendError>> {
        async move { RedisBackend::depth(self).await.map(Some) }.boxed()
    }

    fn take(&self, count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>> {
        async move {
            let mut reader = self.reader.lock().await;
            if reader.is_none() {
                *reader = Some(self.reader().await?);
            }
            let Some(conn) = reader.as_mut() else {
                return Ok(Vec::new());
            };
            let taken = RedisBackend::take(self, conn, count).await;
            if taken.is_err() {
                // The connection may be broken (Redis restarted): the next
                // read makes a new one.
                *reader = None;
            }
            taken
        }
        .boxed()
    }

    fn admits_at_claim(&self) -> bool {
        false
    }

    fn claim_idle(&self) -> Option<Duration> {
        Some(self.claim_idle)
    }

    fn reclaim(&self, count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>> {
        RedisBackend::reclaim(self, count).boxed()
    }

    fn ack<'a>(&'a self, job: &'a QueuedJob) -> BoxFuture<'a, Result<(), BackendError>> {
        RedisBackend::ack(self, job).boxed()
    }
}
