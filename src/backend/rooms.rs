//! Room state ([`RoomRepo`]): what a room keeps beyond its live traffic,
//! so that every instance sees the same room. A room's recent history
//! items (each a run of frames, the last `keep`, each kept for `ttl`), its
//! state frames (the latest of each kind, e.g. a share room's text pad)
//! and its roster (who is in it, under which label, in order of arrival).
//!
//! One repo serves one protocol's rooms (its topic); [`RoomRepos`] opens
//! them. [`MemoryRoomRepos`](super::memory_rooms::MemoryRoomRepos) keeps
//! everything in this process; [`RedisRooms`](super::redis_rooms::RedisRooms)
//! keeps it in Redis for every instance of `backend.kind: redis`.
//!
//! A member is named by a key unique across instances (its hub's origin
//! and its id there); the repo stores it and its label as plain strings.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{BackendError, Frame};

/// How much history a protocol's rooms keep.
#[derive(Debug, Clone, Copy)]
pub struct HistoryBounds {
    /// Items kept per room (0: none; state frames are kept anyway).
    pub keep: usize,
    /// How long an item is kept, and a room's history and state after its
    /// last use.
    pub ttl: Duration,
    /// Bytes of history and state of all rooms together (this process's
    /// memory; Redis bounds its own with `maxmemory`).
    pub max_bytes: u64,
}

/// One member on a room's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member's key, unique across instances.
    pub member: String,
    /// What the others are shown of it.
    pub label: String,
}

/// A room's roster after a member entered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entered {
    /// In: everyone on the roster in order of arrival, the newcomer last.
    In(Vec<RosterEntry>),
    /// Refused: the roster already had `max` members.
    Full,
}

/// The history, state and roster of one protocol's rooms.
pub trait RoomRepo: Send + Sync {
    /// Whether other instances share this state (then a room's member
    /// bound is counted here, across them).
    fn shared(&self) -> bool;

    /// Appends a history item (frames a late joiner is sent together).
    fn push_item<'a>(
        &'a self,
        room: &'a str,
        item: Vec<Frame>,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Replaces the room's state frame of kind `key`.
    fn set_state<'a>(
        &'a self,
        room: &'a str,
        key: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// What a joiner is sent: the state frames (in order of first setting),
    /// then the items still kept, oldest first.
    fn snapshot<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Frame>, BackendError>>;

    /// Puts `member` on the roster under `label`, unless `max` members
    /// (when given) are on it already.
    fn enter<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
        label: &'a str,
        max: Option<usize>,
    ) -> BoxFuture<'a, Result<Entered, BackendError>>;

    /// Takes `member` off the roster: the members still on it, or `None`
    /// when it was not on it.
    fn leave<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RosterEntry>>, BackendError>>;

    /// The roster, in order of arrival.
    fn roster<'a>(&'a self, room: &'a str)
        -> BoxFuture<'a, Result<Vec<RosterEntry>, BackendError>>;
}

/// Opens the room state of each protocol (`topic`: `share`, `img2img`).
pub trait RoomRepos: Send + Sync {
    fn open(&self, topic: &str, history: HistoryBounds) -> Arc<dyn RoomRepo>;
}
