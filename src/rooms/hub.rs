//! The room hub: named rooms of WebSocket members and the one fan-out
//! mechanism that the share, img2img and chat protocols all use.
//!
//! Owns room membership and delivery only. It knows nothing of message
//! shapes, images or history; protocols build their messages and decide who
//! receives them.
//!
//! # API
//!
//! - [`RoomHub::new`]`(HubLimits)` makes a hub (one per protocol, so room
//!   names of different protocols never meet). Cheap to clone.
//! - [`RoomHub::join`]`(room, name)` creates the room on first join and
//!   returns a [`Membership`] plus the member's [`Outbound`] queue. Fails
//!   with [`JoinError::RoomFull`] past `max_members`.
//! - A [`Membership`] leaves the room when dropped; the room is dropped when
//!   its last member leaves. It derefs to a [`MemberHandle`].
//! - A [`MemberHandle`] (clonable, e.g. into a spawned job) sends:
//!   [`send_self`](MemberHandle::send_self),
//!   [`broadcast`](MemberHandle::broadcast) (everyone, sender included),
//!   [`broadcast_others`](MemberHandle::broadcast_others),
//!   [`send_to`](MemberHandle::send_to) (one member by id) and
//!   [`send_where`](MemberHandle::send_where) (members matching a
//!   predicate over [`MemberView`], this instance only) and
//!   [`send_with_role`](MemberHandle::send_with_role) (the sender and the
//!   members with a role, e.g. img2img consumers). A member may carry a
//!   role ([`MemberHandle::set_role`]) for such sends.
//!   Every send takes a [`Batch`]: one [`Frame`] or a `Vec<Frame>`; the
//!   messages of one batch reach each member consecutively, never
//!   interleaved with another batch (an image's chunks, a metadata frame
//!   and its binary frame).
//! - [`Outbound`] is drained by the socket's send task
//!   (see `protocols::ws::socket::serve`).
//!
//! # Across instances
//!
//! A hub made with [`RoomHub::on_bus`] also reaches the members of its
//! rooms on other instances: every room-wide send
//! ([`broadcast`](MemberHandle::broadcast),
//! [`broadcast_others`](MemberHandle::broadcast_others),
//! [`send_with_role`](MemberHandle::send_with_role)) is delivered to the
//! local members at once and published on the [`Bus`] (topic = the
//! protocol) with the sender and the role filter, and what the bus brings
//! from other hubs is delivered to the local members the same way, through
//! the same bounded queues. Sends to single members and
//! [`send_where`](MemberHandle::send_where) (an arbitrary predicate, e.g.
//! presence's "those present before") stay on this instance. Posts wait
//! for the bus in a queue of `bus_queue` posts per hub; past it a post is
//! dropped for the other instances (logged), never blocking the room.
//!
//! Delivery never waits: each member has a bounded queue
//! (`HubLimits::member_queue` messages). A member whose queue is full is
//! removed from the room at once (its queue closes, which ends its socket),
//! so one slow or stuck client never stalls the others, and
//! [`Outbound::kick_signal`] tells its socket to stop writing at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{Bus, Frame, RoomPost};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::{CancellationToken, DropGuard};

/// A member's id, unique within one hub for the life of the process.
pub type MemberId = u64;

/// Bounds of a hub, taken from the protocol's settings section.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Members per room.
    pub max_members: usize,
    /// Outbound messages queued per member before it is dropped as too slow.
    pub member_queue: usize,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("room {room:?} is full ({max} members)")]
    RoomFull { room: String, max: usize },
}

/// What a predicate of [`MemberHandle::send_where`] sees of a member.
#[derive(Debug, Clone, Copy)]
pub struct MemberView<'a> {
    pub id: MemberId,
    pub name: &'a str,
    pub role: Option<&'a str>,
}

/// A member as listed by [`RoomHub::members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: MemberId,
    pub name: String,
    pub role: Option<String>,
}

/// A cheap-to-clone handle on all rooms of one protocol.
#[derive(Clone)]
pub struct RoomHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
    limits: HubLimits,
    /// This hub's name, unique across processes (see [`hub_origin`]).
    origin: Arc<str>,
    relay: Option<Relay>,
    /// Stops the bus tasks when the hub goes.
    _stop: Option<DropGuard>,
}

/// Where a hub on a bus puts its posts for the other instances.
#[derive(Clone)]
struct Relay {
    /// This hub's name on the bus (unique per hub and process).
    origin: Arc<str>,
    posts: mpsc::Sender<RoomPost>,
}

struct Room {
    name: String,
    /// The hub's origin, for member keys.
    origin: Arc<str>,
    members: Mutex<HashMap<MemberId, Entry>>,
    relay: Option<Relay>,
}

struct Entry {
    name: String,
    role: Option<String>,
    queue: mpsc::Sender<Frame>,
    /// Signalled when the member is dropped as too slow.
    kicked: Arc<Notify>,
}

/// A member's place in a room; leaving happens on drop.
pub struct Membership {
    hub: RoomHub,
    handle: MemberHandle,
}

/// Sends on behalf of one member of one room. Sending after the member has
/// left (or was dropped as slow) reaches the others but never the member.
#[derive(Clone)]
pub struct MemberHandle {
    room: Arc<Room>,
    id: MemberId,
}

/// Messages delivered together: each recipient gets all of them,
/// consecutively, or (if its queue cannot hold them all) none and is dropped.
#[derive(Debug, Clone)]
pub struct Batch(Vec<Frame>);

impl From<Frame> for Batch {
    fn from(msg: Frame) -> Self {
        Self(vec![msg])
    }
}

impl From<Vec<Frame>> for Batch {
    fn from(msgs: Vec<Frame>) -> Self {
        Self(msgs)
    }
}

/// The receiving end of a member's queue, drained by its socket.
pub struct Outbound {
    queue: mpsc::Receiver<Frame>,
    kicked: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; recover the data if one did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RoomHub {
    /// A hub whose rooms live on this instance alone.
    pub fn new(limits: HubLimits) -> Self {
        Self {
            inner: Arc::new(HubInner {
                rooms: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                limits,
                origin: Arc::from(hub_origin("local")),
                relay: None,
                _stop: None,
            }),
        }
    }

    /// A hub whose rooms span every instance on `bus` under `topic` (see
    /// the module docs). `bus_queue` bounds the posts waiting to be
    /// published. Spawns its two bus tasks, which end with the hub; must
    /// be called within a Tokio runtime.
    pub fn on_bus(limits: HubLimits, bus: Arc<dyn Bus>, topic: &str, bus_queue: usize) -> Self {
        let origin: Arc<str> = Arc::from(hub_origin(topic));
        let (posts, outgoing) = mpsc::channel(bus_queue.max(1));
        let incoming = bus.subscribe(topic);
        let stop = CancellationToken::new();
        let hub = Self {
            inner: Arc::new(HubInner {
                rooms: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                limits,
                origin: origin.clone(),
                relay: Some(Relay {
                    origin: origin.clone(),
                    posts,
                }),
                _stop: Some(stop.clone().drop_guard()),
            }),
        };
        tokio::spawn(publish_posts(bus, topic.to_owned(), outgoing, stop.clone()));
        tokio::spawn(deliver_posts(
            Arc::downgrade(&hub.inner),
            origin,
            incoming,
            stop,
        ));
        hub
    }

    pub fn limits(&self) -> HubLimits {
        self.inner.limits
    }

    /// Joins `room` as `name`, creating the room if it does not exist.
    pub fn join(&self, room: &str, name: &str) -> Result<(Membership, Outbound), JoinError> {
        let limits = self.inner.limits;
        let mut rooms = lock(&self.inner.rooms);
        let entry = rooms.entry(room.to_owned()).or_insert_with(|| {
            Arc::new(Room {
                name: room.to_owned(),
                origin: self.inner.origin.clone(),
                members: Mutex::new(HashMap::new()),
                relay: self.inner.relay.clone(),
            })
        });
        let room_arc = entry.clone();
        let mut members = lock(&room_arc.members);
        if members.len() >= limits.max_members {
            let empty = members.is_empty();
            drop(members);
            if empty {
                rooms.remove(room);
            }
            return Err(JoinError::RoomFull {
                room: room.to_owned(),
                max: limits.max_members,
            });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(limits.member_queue.max(1));
        let kicked = Arc::new(Notify::new());
        members.insert(
            id,
            Entry {
                name: name.to_owned(),
                role: None,
                queue: tx,
                kicked: kicked.clone(),
            },
        );
        drop(members);
        let handle = MemberHandle { room: room_arc, id };
        Ok((
            Membership {
                hub: self.clone(),
                handle,
            },
            Outbound { queue: rx, kicked },
        ))
    }

    /// Rooms that currently have members.
    pub fn room_count(&self) -> usize {
        lock(&self.inner.rooms).len()
    }

    /// The members of `room`, ordered by id (empty if the room does not exist).
    pub fn members(&self, room: &str) -> Vec<MemberInfo> {
        let Some(room) = lock(&self.inner.rooms).get(room).cloned() else {
            return Vec::new();
        };
        let mut list: Vec<MemberInfo> = lock(&room.members)
            .iter()
            .map(|(id, e)| MemberInfo {
                id: *id,
                name: e.name.clone(),
                role: e.role.clone(),
            })
            .collect();
        list.sort_by_key(|m| m.id);
        list
    }

    /// Queues `msg` for the members of `room` matching `pick`, from outside
    /// the room (chat: events for another user's sockets). Returns how many
    /// got it; 0 when the room does not exist.
    pub fn send_to_room(
        &self,
        room: &str,
        pick: impl Fn(&MemberView<'_>) -> bool,
        msg: impl Into<Batch>,
    ) -> usize {
        let Some(room) = lock(&self.inner.rooms).get(room).cloned() else {
            return 0;
        };
        room.deliver(pick, &msg.into())
    }

    fn leave(&self, handle: &MemberHandle) {
        let mut rooms = lock(&self.inner.rooms);
        let mut members = lock(&handle.room.members);
        members.remove(&handle.id);
        let empty = members.is_empty();
        drop(members);
        let same_room = rooms
            .get(&handle.room.name)
            .is_some_and(|r| Arc::ptr_eq(r, &handle.room));
        if empty && same_room {
            rooms.remove(&handle.room.name);
        }
    }
}

/// A member alone in a room of its own, on a hub of its own: for a socket
/// that talks only to its client (`/ws`) but runs on the same socket loop.
pub fn solo(member_queue: usize) -> (Membership, Outbound) {
    let hub = RoomHub::new(HubLimits {
        max_members: 1,
        member_queue,
    });
    match hub.join("solo", "client") {
        Ok(joined) => joined,
        // A new hub's first room has room for its one member.
        Err(JoinError::RoomFull { .. }) => unreachable!("a new room is empty"),
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.handle);
    }
}

impl std::ops::Deref for Membership {
    type Target = MemberHandle;
    fn deref(&self) -> &MemberHandle {
        &self.handle
    }
}

impl Membership {
    /// A clonable handle for tasks that outlive the current message.
    pub fn handle(&self) -> MemberHandle {
        self.handle.clone()
    }
}

impl MemberHandle {
    pub fn id(&self) -> MemberId {
        self.id
    }

    pub fn room_name(&self) -> &str {
        &self.room.name
    }

    /// This member's key, unique across instances: its hub's origin and
    /// its id there (how room state names it).
    pub fn key(&self) -> String {
        member_key(&self.room.origin, self.id)
    }

    /// The id of a member of this hub from its [`key`](Self::key); `None`
    /// for a member of another hub.
    pub fn local_id(&self, key: &str) -> Option<MemberId> {
        key.strip_prefix(&*self.room.origin)?
            .strip_prefix('/')?
            .parse()
            .ok()
    }

    /// This member's name (empty once it has left).
    pub fn name(&self) -> String {
        lock(&self.room.members)
            .get(&self.id)
            .map(|e| e.name.clone())
            .unwrap_or_default()
    }

    /// Tags this member (e.g. `"consumer"`), for [`Self::send_where`].
    pub fn set_role(&self, role: &str) {
        if let Some(e) = lock(&self.room.members).get_mut(&self.id) {
            e.role = Some(role.to_owned());
        }
    }

    /// Queues `msg` for this member alone. False if it is gone or was dropped.
    pub fn send_self(&self, msg: impl Into<Batch>) -> bool {
        self.send_to(self.id, msg)
    }

    /// Queues `msg` for one member of the room.
    pub fn send_to(&self, id: MemberId, msg: impl Into<Batch>) -> bool {
        self.room.deliver(|m| m.id == id, &msg.into()) == 1
    }

    /// Queues `msg` for everyone in the room, this member included (on
    /// every instance of a hub on a bus). Returns how many local members
    /// got it.
    pub fn broadcast(&self, msg: impl Into<Batch>) -> usize {
        let batch = msg.into();
        self.room.relay(self.id, false, None, &batch);
        self.room.deliver(|_| true, &batch)
    }

    /// Queues `msg` for everyone in the room but this member.
    pub fn broadcast_others(&self, msg: impl Into<Batch>) -> usize {
        let me = self.id;
        let batch = msg.into();
        self.room.relay(me, true, None, &batch);
        self.room.deliver(|m| m.id != me, &batch)
    }

    /// Queues `msg` for this member and every member with `role` (on every
    /// instance of a hub on a bus), e.g. a result for its requester and
    /// the room's consumers. Returns how many local members got it.
    pub fn send_with_role(&self, role: &str, msg: impl Into<Batch>) -> usize {
        let me = self.id;
        let batch = msg.into();
        self.room.relay(me, true, Some(role), &batch);
        self.room
            .deliver(|m| m.id == me || m.role == Some(role), &batch)
    }

    /// Publishes `msg` for the room's members on the other instances (those
    /// with `role`, when given), none of this one: with
    /// [`send_where`](Self::send_where) for the local ones, a message for
    /// chosen members everywhere.
    pub fn send_elsewhere(&self, role: Option<&str>, msg: impl Into<Batch>) {
        self.room.relay(self.id, true, role, &msg.into());
    }

    /// Queues `msg` for the members matching `pick`; returns how many got it.
    pub fn send_where(
        &self,
        pick: impl Fn(&MemberView<'_>) -> bool,
        msg: impl Into<Batch>,
    ) -> usize {
        self.room.deliver(pick, &msg.into())
    }
}

impl Room {
    /// Hands a room-wide send to the bus for the other instances' members.
    fn relay(&self, sender: MemberId, skip_sender: bool, role: Option<&str>, batch: &Batch) {
        let Some(relay) = &self.relay else { return };
        let post = RoomPost {
            room: self.name.clone(),
            origin: relay.origin.to_string(),
            sender,
            skip_sender,
            role: role.map(str::to_owned),
            frames: batch.0.clone(),
        };
        if relay.posts.try_send(post).is_err() {
            tracing::warn!(room = %self.name,
                "bus queue is full; a room post does not reach the other instances");
        }
    }

    /// The one fan-out: a non-blocking push into each chosen member's queue.
    /// Members whose queue is full (or whose socket is gone) are removed.
    fn deliver(&self, pick: impl Fn(&MemberView<'_>) -> bool, batch: &Batch) -> usize {
        let mut members = lock(&self.members);
        let mut delivered = 0;
        let mut dropped = Vec::new();
        for (id, entry) in members.iter() {
            let view = MemberView {
                id: *id,
                name: &entry.name,
                role: entry.role.as_deref(),
            };
            if !pick(&view) {
                continue;
            }
            if entry.queue.is_closed() {
                dropped.push(*id);
                continue;
            }
            // Only this function sends, under the room lock, so the
            // capacity seen here cannot shrink before the sends below.
            if entry.queue.capacity() < batch.0.len() {
                tracing::warn!(room = %self.name, member = id, name = %entry.name,
                    "member's outbound queue is full; dropping it as too slow");
                entry.kicked.notify_one();
                dropped.push(*id);
                continue;
            }
            if batch
                .0
                .iter()
                .all(|m| entry.queue.try_send(m.clone()).is_ok())
            {
                delivered += 1;
            } else {
                dropped.push(*id);
            }
        }
        // Removing the entry drops the queue's only sender, which ends the
        // member's socket once it has drained what was queued.
        for id in dropped {
            members.remove(&id);
        }
        delivered
    }
}

/// A name for a hub on the bus, unique across processes: its topic, host,
/// process id, start time and a counter.
fn hub_origin(topic: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!(
        "{topic}:{host}:{}:{}:{}",
        std::process::id(),
        crate::backend::now_micros(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A member's key: its hub's origin and its id there.
fn member_key(origin: &str, id: MemberId) -> String {
    format!("{origin}/{id}")
}

/// Publishes a hub's posts in order until the hub goes.
async fn publish_posts(
    bus: Arc<dyn Bus>,
    topic: String,
    mut posts: mpsc::Receiver<RoomPost>,
    stop: CancellationToken,
) {
    loop {
        let post = tokio::select! {
            p = posts.recv() => p,
            () = stop.cancelled() => None,
        };
        let Some(post) = post else { return };
        if let Err(e) = bus.publish(&topic, &post).await {
            tracing::warn!(error = %e, room = %post.room,
                "a room post could not be published to the other instances");
        }
    }
}

/// Delivers what other hubs publish to this hub's members, until the hub
/// goes. Posts of this hub were delivered when they were sent.
async fn deliver_posts(
    hub: std::sync::Weak<HubInner>,
    origin: Arc<str>,
    mut incoming: mpsc::UnboundedReceiver<RoomPost>,
    stop: CancellationToken,
) {
    loop {
        let post = tokio::select! {
            p = incoming.recv() => p,
            () = stop.cancelled() => None,
        };
        let Some(post) = post else { return };
        if *post.origin == *origin {
            continue;
        }
        let Some(hub) = hub.upgrade() else { return };
        let room = lock(&hub.rooms).get(&post.room).cloned();
        drop(hub);
        if let Some(room) = room {
            let role = post.role.as_deref();
            // Member ids are per hub, so the sender is never one of these
            // members; the role filter still applies.
            room.deliver(
                |m| role.is_none_or(|r| m.role == Some(r)),
                &Batch(post.frames),
            );
        }
    }
}

impl Outbound {
    /// The next queued message; `None` once the member has left the room.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.queue.recv().await
    }

    /// A queued message if there is one right now, without waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.queue.try_recv().ok()
    }

    /// A signal that completes once the member has been dropped as too
    /// slow: what is still queued should then be discarded, not written.
    pub fn kick_signal(&self) -> KickSignal {
        KickSignal(self.kicked.clone())
    }
}

/// See [`Outbound::kick_signal`].
pub struct KickSignal(Arc<Notify>);

impl KickSignal {
    pub async fn kicked(&self) {
        self.0.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max_members: usize, member_queue: usize) -> RoomHub {
        RoomHub::new(HubLimits {
            max_members,
            member_queue,
        })
    }

    fn text(s: &str) -> Frame {
        Frame::text(s)
    }

    fn next_text(out: &mut Outbound) -> Option<String> {
        out.queue
            .try_recv()
            .ok()
            .map(|m| m.as_text().unwrap().to_owned())
    }

    #[test]
    fn rooms_exist_while_they_have_members() {
        let hub = hub(8, 8);
        let (a, _ao) = hub.join("r", "a").unwrap();
        let (b, _bo) = hub.join("r", "b").unwrap();
        assert_eq!(hub.room_count(), 1);
        assert_eq!(hub.members("r").len(), 2);
        drop(a);
        assert_eq!(
            hub.members("r")
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        drop(b);
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn a_full_room_refuses_joins() {
        let hub = hub(1, 8);
        let (_a, _ao) = hub.join("r", "a").unwrap();
        let err = hub.join("r", "b").err().unwrap();
        assert_eq!(
            err,
            JoinError::RoomFull {
                room: "r".into(),
                max: 1
            }
        );
        assert!(hub.join("other", "b").is_ok());
    }

    #[test]
    fn fan_out_targets() {
        let hub = hub(8, 8);
        let (a, mut ao) = hub.join("r", "a").unwrap();
        let (b, mut bo) = hub.join("r", "b").unwrap();
        let (_c, mut co) = hub.join("elsewhere", "c").unwrap();
        b.set_role("consumer");

        assert_eq!(a.broadcast(text("all")), 2);
        assert_eq!(a.broadcast_others(text("others")), 1);
        assert!(a.send_self(text("me")));
        assert_eq!(
            a.send_where(|m| m.role == Some("consumer"), text("consumers")),
            1
        );
        assert!(a.send_to(b.id(), text("to b")));

        assert_eq!(next_text(&mut ao).as_deref(), Some("all"));
        assert_eq!(next_text(&mut ao).as_deref(), Some("me"));
        assert_eq!(next_text(&mut ao), None);
        for want in ["all", "others", "consumers", "to b"] {
            assert_eq!(next_text(&mut bo).as_deref(), Some(want));
        }
        assert_eq!(next_text(&mut co), None, "other rooms receive nothing");
    }

    #[test]
    fn a_batch_arrives_whole_or_not_at_all() {
        let hub = hub(8, 3);
        let (a, mut ao) = hub.join("r", "a").unwrap();
        let (_b, mut bo) = hub.join("r", "b").unwrap();
        assert_eq!(a.broadcast_others(vec![text("1"), text("2")]), 1);
        assert!(!a.send_self(vec![text("x"), text("y"), text("z"), text("w")]));
        assert_eq!(
            next_text(&mut ao),
            None,
            "nothing of a batch that does not fit"
        );
        assert_eq!(next_text(&mut bo).as_deref(), Some("1"));
        assert_eq!(next_text(&mut bo).as_deref(), Some("2"));
    }

    async fn next(out: &mut Outbound) -> String {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), out.recv())
            .await
            .expect("a frame within the wait")
            .expect("still in the room");
        frame.as_text().unwrap().to_owned()
    }

    #[tokio::test]
    async fn hubs_on_one_bus_share_their_rooms_with_senders_and_roles_kept() {
        let bus: Arc<dyn Bus> = Arc::new(crate::backend::MemoryBus::new());
        let limits = HubLimits {
            max_members: 8,
            member_queue: 8,
        };
        let one = RoomHub::on_bus(limits, bus.clone(), "t", 16);
        let two = RoomHub::on_bus(limits, bus.clone(), "t", 16);
        let other_topic = RoomHub::on_bus(limits, bus, "u", 16);
        let (a, mut ao) = one.join("r", "a").unwrap();
        let (b, mut bo) = two.join("r", "b").unwrap();
        let (c, mut co) = two.join("r", "c").unwrap();
        let (_d, mut d_out) = other_topic.join("r", "d").unwrap();
        c.set_role("consumer");

        assert_eq!(a.broadcast(text("all")), 1, "one local member");
        a.broadcast_others(text("others"));
        a.send_with_role("consumer", text("consumers"));
        a.send_where(|_| true, text("local only"));
        assert_eq!(next(&mut bo).await, "all");
        assert_eq!(next(&mut bo).await, "others");
        for want in ["all", "others", "consumers"] {
            assert_eq!(next(&mut co).await, want);
        }
        // A frame from the far side comes after everything `a` published
        // (one bus, in order), so a copy of `a`'s own frames would be here.
        b.broadcast(text("from b"));
        assert_eq!(next(&mut co).await, "from b");
        for want in ["all", "consumers", "local only", "from b"] {
            assert_eq!(next(&mut ao).await, want);
        }
        assert!(ao.try_recv().is_none(), "a hears its own frames once");
        assert!(bo.try_recv().is_some_and(|f| f.as_text() == Some("from b")));
        assert!(bo.try_recv().is_none(), "b is no consumer");
        assert!(d_out.try_recv().is_none(), "another topic hears nothing");
    }

    #[tokio::test]
    async fn members_have_keys_and_can_be_sent_to_elsewhere_only() {
        let bus: Arc<dyn Bus> = Arc::new(crate::backend::MemoryBus::new());
        let limits = HubLimits {
            max_members: 8,
            member_queue: 8,
        };
        let one = RoomHub::on_bus(limits, bus.clone(), "t", 16);
        let two = RoomHub::on_bus(limits, bus, "t", 16);
        let (a, mut ao) = one.join("r", "a").unwrap();
        let (b, mut bo) = one.join("r", "b").unwrap();
        let (c, mut co) = two.join("r", "c").unwrap();
        let (d, mut d_out) = two.join("r", "d").unwrap();
        assert_eq!(a.local_id(&b.key()), Some(b.id()));
        assert_eq!(a.local_id(&c.key()), None, "another hub's member");
        assert_ne!(a.key(), c.key());
        d.set_role("present");
        a.send_elsewhere(Some("present"), text("far"));
        a.send_elsewhere(None, text("all far"));
        assert_eq!(next(&mut d_out).await, "far");
        assert_eq!(next(&mut d_out).await, "all far");
        assert_eq!(
            next(&mut co).await,
            "all far",
            "no role: c only hears the second"
        );
        assert!(
            ao.try_recv().is_none() && bo.try_recv().is_none(),
            "none here"
        );
        c.broadcast(text("end"));
        assert_eq!(next(&mut ao).await, "end");
    }

    #[test]
    fn a_member_with_a_full_queue_is_dropped_and_the_rest_still_receive() {
        let hub = hub(8, 2);
        let (fast, mut fo) = hub.join("r", "fast").unwrap();
        let (_slow, mut so) = hub.join("r", "slow").unwrap();
        for i in 0..5 {
            fast.broadcast_others(text("x"));
            fast.send_self(text(&i.to_string()));
            assert_eq!(next_text(&mut fo), Some(i.to_string()));
        }
        assert_eq!(hub.members("r").len(), 1, "the slow member was removed");
        // Its queue still holds what fitted, then ends.
        assert_eq!(next_text(&mut so).as_deref(), Some("x"));
        assert_eq!(next_text(&mut so).as_deref(), Some("x"));
        assert!(matches!(
            so.queue.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
