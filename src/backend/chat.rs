//! The chat's storage ([`ChatRepo`]): per-user numbered event logs, the
//! messages of direct chats with their marks, contacts and presence
//! counts, and the live feed of every user's events. Memory mode is
//! [`MemoryChat`](super::MemoryChat); `backend.kind: redis` is
//! [`RedisChat`](super::RedisChat), shared by every instance.
//!
//! The repo keeps plain records: a message's text and content (JSON the
//! chat service wrote), an event's kind and payload (JSON, as sent). It
//! owns the storage mechanics and the bounds of `chat.*` (ids, retention,
//! `max_events_per_user`, `max_messages_per_chat`, `max_messages`,
//! `max_users`); the chat service owns every rule of who may do what.
//!
//! Every operation that changes state appends its events in the same step
//! (atomically), in the order given, and hands each to the live feed in id
//! order per user, so a user's log and what its sockets hear agree.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::BackendError;
use crate::config::ChatSettings;

/// The bounds a chat repo keeps, from `chat.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatBounds {
    /// How long events and messages are kept.
    pub retention: Duration,
    pub max_events_per_user: usize,
    pub max_messages_per_chat: usize,
    pub max_messages: usize,
    pub max_users: usize,
}

impl From<&ChatSettings> for ChatBounds {
    fn from(s: &ChatSettings) -> Self {
        Self {
            retention: s.retention,
            max_events_per_user: s.max_events_per_user.max(1),
            max_messages_per_chat: s.max_messages_per_chat.max(1),
            max_messages: s.max_messages.max(1),
            max_users: s.max_users.max(1),
        }
    }
}

/// When an operation happens: monotonic for the memory repo's retention,
/// Unix time for records and for a shared repo's retention.
#[derive(Debug, Clone, Copy)]
pub struct ChatNow {
    pub at: Instant,
    /// Unix seconds, the time records carry.
    pub unix: u64,
    /// Unix milliseconds, for retention across instances.
    pub unix_ms: u64,
}

impl ChatNow {
    pub fn current() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            at: Instant::now(),
            unix: since.as_secs(),
            unix_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub text: String,
    /// What else the message carries (JSON written by the chat service;
    /// empty when nothing).
    pub content: String,
    /// Created, Unix seconds.
    pub created: u64,
    /// Last edited.
    pub updated: Option<u64>,
    /// Marked delivered.
    pub delivered: Option<u64>,
    /// Marked read.
    pub read: Option<u64>,
}

/// An event to append to a user's log: its kind and payload, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    pub user: String,
    pub kind: String,
    /// The payload as JSON.
    pub payload: String,
}

/// A kept event of a user's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The user's event id: 1, 2, 3... with no gaps.
    pub id: u64,
    /// Unix seconds.
    pub timestamp: u64,
    pub kind: String,
    /// The payload as JSON.
    pub payload: String,
}

/// A user's log after some id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The user's latest event id.
    pub last_event_id: u64,
    /// The id of the oldest kept event (`last_event_id + 1` when none is kept).
    pub first_kept: u64,
    /// The kept events after the asked id, in order.
    pub events: Vec<EventRow>,
}

/// Which mark a recipient sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Delivered,
    /// Read; also sets delivered when unset.
    Read,
}

/// A chat as one user sees it: its newest message and the unread count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatRow {
    pub last: Option<MessageRow>,
    /// Messages to the user not read yet.
    pub unread: usize,
}

/// What the live feed carries for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// An event of the user's log.
    Numbered(EventRow),
    /// A frame that is not kept (typing, presence).
    Transient(String),
}

/// Why a chat repo operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatRepoError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A new user past `chat.max_users`.
    #[error("the chat has reached its limit of {0} users")]
    TooManyUsers(usize),
}

impl From<::redis::RedisError> for ChatRepoError {
    fn from(e: ::redis::RedisError) -> Self {
        Self::Backend(BackendError::Redis(e))
    }
}

/// The answer of a chat repo operation.
pub type ChatResult<'a, T> = BoxFuture<'a, Result<T, ChatRepoError>>;

/// The feed of every user's live events: the user, and what for it.
pub type LiveFeed = mpsc::UnboundedReceiver<(String, LiveEvent)>;

/// Where the chat keeps its state (see the module docs).
pub trait ChatRepo: Send + Sync {
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Hears every later live event of every user, in id order per user.
    fn listen(&self) -> LiveFeed;

    /// A socket of `user` opened. True when the user comes online with it
    /// (its first socket, or the first since it went offline).
    fn connect<'a>(&'a self, user: &'a str, now: ChatNow) -> ChatResult<'a, bool>;

    /// A socket of `user` closed. True when it was the last and the user
    /// was online.
    fn disconnect<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool>;

    /// How often [`ChatRepo::reap`] must run: `None` when sockets cannot
    /// outlive their instance (one process).
    fn reap_every(&self) -> Option<Duration> {
        None
    }

    /// Renews this instance's presence and takes the sockets of instances
    /// that stopped renewing (killed) out of it; the users that left
    /// without a socket anywhere, now offline.
    fn reap(&self) -> ChatResult<'_, Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// The user shows offline while its sockets stay open. True when it
    /// was online.
    fn go_offline<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool>;

    /// A connected user shows online again. True when it was not.
    fn go_online<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool>;

    /// The users with whom `user` has kept messages, sorted.
    fn contacts<'a>(&'a self, user: &'a str, now: ChatNow) -> ChatResult<'a, Vec<String>>;

    /// Hands a frame that is not kept to `user`'s live sockets everywhere.
    fn send_transient<'a>(&'a self, user: &'a str, frame: &'a str) -> ChatResult<'a, ()>;

    /// A new message id (ids grow with time).
    fn next_message_id(&self) -> ChatResult<'_, u64>;

    /// Stores message `row` (its id from [`Self::next_message_id`]), links
    /// its two users as contacts, applies the count bounds and appends
    /// `events`.
    fn add_message<'a>(
        &'a self,
        row: &'a MessageRow,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, ()>;

    /// A kept message.
    fn message(&self, id: u64, now: ChatNow) -> ChatResult<'_, Option<MessageRow>>;

    /// Replaces a kept message's text (edited at `now`) and appends
    /// `events`; false (and nothing done) when it is not kept.
    fn edit<'a>(
        &'a self,
        id: u64,
        text: &'a str,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool>;

    /// Removes a kept message and appends `events`; false (and nothing
    /// done) when it is not kept. A chat left empty unlinks its users.
    fn delete<'a>(
        &'a self,
        id: u64,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool>;

    /// The ids of the kept messages from `author` to `reader` up to `upto`
    /// that do not have mark `kind`, oldest first.
    fn unmarked<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        upto: u64,
        kind: MarkKind,
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>>;

    /// Sets mark `kind` (at `now`) on each of `marks`' messages that is
    /// still kept, from `author` to `reader` and unmarked, appending that
    /// message's events; returns the ids marked.
    fn mark<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        kind: MarkKind,
        marks: &'a [(u64, Vec<EventDraft>)],
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>>;

    /// The last `count` kept messages between `a` and `b` with ids up to
    /// `last`, oldest first, and whether older ones are kept.
    fn page<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        last: Option<u64>,
        count: usize,
        now: ChatNow,
    ) -> ChatResult<'a, (Vec<MessageRow>, bool)>;

    /// The chat of `user` with `other`.
    fn chat<'a>(&'a self, user: &'a str, other: &'a str, now: ChatNow) -> ChatResult<'a, ChatRow>;

    /// `user`'s kept events after `after`.
    fn replay<'a>(&'a self, user: &'a str, after: u64, now: ChatNow) -> ChatResult<'a, Replayed>;

    /// One kept event of `user`'s.
    fn event<'a>(
        &'a self,
        user: &'a str,
        id: u64,
        now: ChatNow,
    ) -> ChatResult<'a, Option<EventRow>>;

    /// Drops what retention expired and forgets idle users.
    fn sweep(&self, now: ChatNow) -> ChatResult<'_, ()>;
}
