//! The backends: where the services keep what several instances share,
//! behind one trait per kind of state, with one file per implementation
//! (`memory`, `redis`).
//!
//! - Jobs ([`JobRepo`], [`JobQueue`]): single flight per variant (one
//!   caller claims it, the others get the claimed one), a work queue whose
//!   jobs survive a dead worker, each variant's state and result with the
//!   cache TTL, and a broadcast of state changes so every instance's mirror
//!   (the job store's watch channels) reacts at once. Memory mode is
//!   [`MemoryJobs`]; `backend.kind: redis` is [`RedisBackend`].
//! - Room fan-out ([`Bus`]): frames published to a room reach every
//!   instance's subscribers of its topic: [`MemoryBus`] within one process,
//!   [`RedisBus`] (Redis pub/sub) across the instances of `backend.kind:
//!   redis`. The room hub delivers to its own members at once and publishes
//!   every room-wide send for the other instances' members.
//!
//! - Room state ([`RoomRepo`], in `rooms`): a room's history, state frames
//!   and roster, so a late joiner on any instance gets the same history,
//!   text pad and member list: [`MemoryRoomRepos`] in one process,
//!   [`RedisRooms`] in Redis.
//! - Chat ([`ChatRepo`]): per-user numbered event logs, messages and their
//!   marks, contacts, presence counts and the live feed of every user's
//!   events: [`MemoryChat`] in this process, [`RedisChat`] shared by the
//!   instances of `backend.kind: redis`.
//!
//! The named-file store's trait (`files::FileRepo`) lives with its service,
//! one file per implementation there too (memory, a directory, Redis).
//!
//! Backends store and move plain records: a task is named by its md5 text,
//! a variant by a field name ([`FieldName`]), a failure by its registry code
//! and message, a room frame by its bytes. They import no domain module: the
//! services turn their states into these records and back.

pub mod chat;
pub mod frame;
pub mod memory;
pub mod memory_chat;
pub mod memory_rooms;
pub mod redis;
pub mod redis_bus;
pub mod redis_chat;
pub mod redis_rooms;
pub mod rooms;

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use self::chat::{
    ChatBounds, ChatNow, ChatRepo, ChatRepoError, ChatRow, EventDraft, EventRow, LiveEvent,
    LiveFeed, MarkKind, MessageRow, Replayed,
};
pub use self::frame::Frame;
pub use self::memory::{MemoryBus, MemoryJobs};
pub use self::memory_chat::MemoryChat;
pub use self::redis::RedisBackend;
pub use self::redis_bus::RedisBus;
pub use self::redis_chat::RedisChat;

// Room state: its own section, see `rooms`.
pub use self::memory_rooms::MemoryRoomRepos;
pub use self::redis_rooms::RedisRooms;
pub use self::rooms::{Entered, HistoryBounds, RoomRepo, RoomRepos, RosterEntry};

/// A backend that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    NoAnswer(std::time::Duration),
    #[error("a stored record is unreadable: {0}")]
    BadRecord(String),
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

/// A state change, as every instance hears it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEvent {
    pub md5: String,
    pub variant: String,
    pub record: VariantRecord,
}

/// A place a local queue took for a job when it was claimed (a worker pool
/// admission), handed to whoever runs the job. Opaque to the backend.
pub type Place = Box<dyn Any + Send + Sync>;

/// What bounds a queue that lives in this process: asked once per claimed
/// job, before the claim is recorded; `None` refuses it (`QueueFull`).
pub trait Gate: Send + Sync {
    fn enter(&self, input_len: usize) -> Option<Place>;
}

/// A job taken from the queue: its id (to acknowledge it), its task and its
/// variant field; a local queue hands over its input and place too.
#[derive(Debug)]
pub struct QueuedJob {
    pub id: String,
    pub md5: String,
    pub variant: String,
    /// The uploaded bytes, when the queue holds them itself (else they are
    /// read with [`JobRepo::input`]).
    pub input: Option<Bytes>,
    /// The place taken at claim time, when the queue has a [`Gate`].
    pub place: Option<PlaceCell>,
    /// How many times the queue has handed this job out, this time
    /// included: 1 when first taken, more when taken over from workers
    /// that never finished it.
    pub deliveries: u32,
}

/// Jobs in the whole service's queue: waiting to be taken, and taken by a
/// worker but not finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub waiting: usize,
    pub taken: usize,
}

/// A [`Place`] with a `Debug` form.
pub struct PlaceCell(pub Place);

impl std::fmt::Debug for PlaceCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Place")
    }
}

/// Where jobs' records and bytes live: one record per variant (claimed
/// once), result and input bytes with the cache TTL, and the state changes
/// every instance hears.
pub trait JobRepo: Send + Sync {
    /// `memory` or `redis`, as `/readyz` reports it.
    fn kind(&self) -> &'static str;

    /// Whether the store answers, within a short deadline.
    fn ping(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Claims a variant for this caller unless it exists already. A done
    /// variant whose result has expired is claimed again.
    fn claim<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        original_size: usize,
    ) -> BoxFuture<'a, Result<Claim, BackendError>>;

    /// One variant's record.
    fn record<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<VariantRecord>, BackendError>>;

    /// Every variant of a task by field (empty when unknown or expired).
    fn records<'a>(
        &'a self,
        md5: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, VariantRecord)>, BackendError>>;

    /// A done variant's result bytes.
    fn result<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>>;

    /// A job's uploaded bytes, while kept.
    fn input<'a>(&'a self, md5: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>>;

    /// Records a state and tells every instance. A done record is stored
    /// with its result bytes; a transient failure is told but not kept, so
    /// the next submission claims the variant again.
    fn publish<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        record: &'a VariantRecord,
        result: Option<&'a Bytes>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Records `owner` (an API key's name) as one who uploaded task `md5`,
    /// for as long as its results live, so every instance knows.
    fn add_owner<'a>(
        &'a self,
        md5: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Whether another instance recorded `owner` as an uploader of `md5`.
    fn is_owner<'a>(
        &'a self,
        md5: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Hears every state change (subscribed before this returns) until
    /// `stop` is cancelled: the task that listens, and the changes.
    fn listen(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Result<Listener, BackendError>>;
}

/// What a state-change listener hears.
#[derive(Debug)]
pub enum Heard {
    /// A state change.
    Change(Box<StateEvent>),
    /// The subscription was lost and is back: changes published in between
    /// were missed.
    Resubscribed,
}

/// The task that listens for state changes and what it hears.
pub type Listener = (JoinHandle<()>, mpsc::UnboundedReceiver<Heard>);

/// The work queue of claimed jobs.
pub trait JobQueue: Send + Sync {
    /// Adds a claimed job (after [`Claim::Won`]) with its input.
    fn enqueue<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Claims a variant and, when this caller wins it, enqueues its job
    /// with `input` in the same step: either both are recorded or neither
    /// is, so no record is left without its job.
    fn submit<'a>(
        &'a self,
        md5: &'a str,
        field: &'a str,
        input: &'a Bytes,
    ) -> BoxFuture<'a, Result<Claim, BackendError>>;

    /// Jobs waiting and taken in the whole service, when the queue is
    /// shared; `None` when it is this instance's own (its worker pool
    /// counts them).
    fn depth(&self) -> BoxFuture<'_, Result<Option<QueueDepth>, BackendError>>;

    /// Takes up to `count` new jobs, waiting a moment for one to arrive (an
    /// empty answer then).
    fn take(&self, count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>>;

    /// Whether taken jobs carry the place they were admitted with (a local
    /// queue with a [`Gate`]): then they are taken as they come, not only as
    /// fast as worker slots free up.
    fn admits_at_claim(&self) -> bool;

    /// How long a taken job may stay unacknowledged before another worker
    /// takes it over; `None` when workers cannot die apart from the queue.
    fn claim_idle(&self) -> Option<Duration>;

    /// Takes over up to `count` jobs idle longer than `claim_idle`, each
    /// with its count of deliveries.
    fn reclaim(&self, count: usize) -> BoxFuture<'_, Result<Vec<QueuedJob>, BackendError>>;

    /// Acknowledges and removes a finished job.
    fn ack<'a>(&'a self, job: &'a QueuedJob) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// Microseconds since the Unix epoch, strictly increasing within this
/// process: orders results across instances.
pub fn now_micros() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let prev = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(0);
    now.max(prev + 1)
}

/// Frames published to one room, with whom they are for: each instance
/// delivers them together to its members there. The sender is named by the
/// hub that published (`origin`, unique per hub and process) and its member
/// id there, so no instance delivers a post back to its own members (they
/// were served when it was sent) and a sender never hears its frame twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPost {
    pub room: String,
    /// The publishing hub.
    pub origin: String,
    /// The sending member's id within `origin`.
    pub sender: u64,
    /// Not for the sender ("everyone but me").
    #[serde(default)]
    pub skip_sender: bool,
    /// Only for members with this role (e.g. img2img consumers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The frames, delivered together (carried apart from this header).
    #[serde(skip)]
    pub frames: Vec<Frame>,
}

/// Room fan-out: what one instance publishes to a room of a topic (one
/// topic per protocol's hub), every subscriber of that topic hears, in
/// publication order, itself included.
pub trait Bus: Send + Sync {
    /// Publishes `post` (its frames delivered together) to its room of
    /// `topic`.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        post: &'a RoomPost,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Hears every later publication to `topic`'s rooms.
    fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<RoomPost>;
}

/// A variant's name inside its task, as the backend stores it.
pub trait FieldName {
    fn field(&self) -> String;
}

impl FieldName for str {
    fn field(&self) -> String {
        self.to_owned()
    }
}

/// Where a stored variant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Queued,
    Processing,
    Done,
    Error,
}

/// One variant's state as the backend stores and broadcasts it. A done
/// record describes the result; the bytes are stored beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub state: Phase,
    /// Size of the uploaded bytes.
    #[serde(default)]
    pub original_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
}

/// What a done variant produced. Fields added later default when absent,
/// so records written by older instances still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub size: usize,
    pub kept_original: bool,
    /// Microseconds since the Unix epoch; orders results across instances.
    pub finished_at: u64,
    /// The quality of the encode (absent when the original was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// The outcome of `quality=auto` / `format=auto` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoRecord>,
}

/// An auto variant's search outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoRecord {
    pub target: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
    #[serde(default)]
    pub budget_limited: bool,
    #[serde(default)]
    pub score_sampled: bool,
    #[serde(default)]
    pub trials: u32,
}

/// A failed variant's error: its registry code and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// A retry could succeed: the failure is told but not kept, so the
    /// next submission claims the variant again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

impl VariantRecord {
    pub fn queued(original_size: usize) -> Self {
        Self {
            state: Phase::Queued,
            original_size,
            result: None,
            failure: None,
        }
    }

    pub fn processing(original_size: usize) -> Self {
        Self {
            state: Phase::Processing,
            ..Self::queued(original_size)
        }
    }

    pub fn done(original_size: usize, result: impl Into<ResultRecord>) -> Self {
        Self {
            state: Phase::Done,
            result: Some(result.into()),
            ..Self::queued(original_size)
        }
    }

    pub fn failed(original_size: usize, failure: impl Into<FailureRecord>) -> Self {
        Self {
            state: Phase::Error,
            failure: Some(failure.into()),
            ..Self::queued(original_size)
        }
    }

    /// A failure that is told to every instance but not kept.
    pub fn is_transient(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.transient)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, BackendError> {
        serde_json::from_str(text).map_err(|e| BackendError::BadRecord(format!("{e}: {text}")))
    }
}
