//! A room's recent history for late joiners: the last
//! `share.history` items (a text message, or an image as start, chunks and
//! complete), each expiring after `share.history_ttl`; and a room's state
//! messages (e.g. a shared text pad), of which a joiner gets the latest of
//! each kind before the items. They are kept by the room repo
//! ([`RoomRepo`]): in this process (all rooms' logs together bounded by
//! `share.history_max_bytes`), or in Redis, where a joiner on any instance
//! gets what was published on every instance.
//!
//! It also orders joins against publications: a publication is delivered
//! to this instance's members and queued for the repo, and a join is made
//! and its read queued, under one lock, and the repo runs what was queued
//! in order. So a joiner gets each item of its own instance exactly once,
//! either in its history preface or live through its queue. The members
//! of other instances are sent an item once the repo has it, so a member
//! who joins anywhere after they got it finds it in its history. An item
//! published on another instance while a join is being read may reach
//! the joiner twice (see docs/distributed.md).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::hub::{JoinError, MemberHandle, Membership, Outbound, RoomHub};
use super::ordered::Ordered;
use crate::backend::{Frame, HistoryBounds, MemoryRoomRepos, RoomRepo, RoomRepos};

/// History of all rooms of one protocol. Cheap to clone.
#[derive(Clone)]
pub struct History {
    repo: Arc<dyn RoomRepo>,
    ordered: Ordered,
    /// Orders joins against publications on this instance.
    order: Arc<Mutex<()>>,
}

/// What a joiner gets: its place, its queue and the history to send first.
pub struct Joined {
    pub membership: Membership,
    pub outbound: Outbound,
    pub preface: Vec<Frame>,
}

impl History {
    /// History kept in this process. Must be called within a Tokio runtime.
    pub fn new(keep: usize, ttl: Duration, max_bytes: u64) -> Self {
        let bounds = HistoryBounds {
            keep,
            ttl,
            max_bytes,
        };
        Self::on(MemoryRoomRepos.open("history", bounds), 4096)
    }

    /// History kept by `repo`, with at most `queue` writes waiting for it
    /// (past that a write is dropped, logged). Must be called within a
    /// Tokio runtime.
    pub fn on(repo: Arc<dyn RoomRepo>, queue: usize) -> Self {
        Self {
            repo,
            ordered: Ordered::new(queue),
            order: Arc::default(),
        }
    }

    /// Joins `room` and takes the history it holds (see the module docs).
    /// A history that cannot be read is logged and left out.
    pub async fn join(&self, hub: &RoomHub, room: &str, name: &str) -> Result<Joined, JoinError> {
        let (membership, outbound, read) = {
            let _order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
            let (membership, outbound) = hub.join(room, name)?;
            let repo = self.repo.clone();
            let room = room.to_owned();
            let read = self.ordered.call(async move { repo.snapshot(&room).await });
            (membership, outbound, read)
        };
        let preface = match read {
            Ok(answer) => match answer.await {
                Ok(Ok(frames)) => frames,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, room, "room history could not be read");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            },
            Err(e) => {
                tracing::warn!(error = %e, room, "room history not read");
                Vec::new()
            }
        };
        Ok(Joined {
            membership,
            outbound,
            preface,
        })
    }

    /// Sends `item` to everyone in `member`'s room, `member` included, and
    /// records it for late joiners (see the module docs).
    pub fn publish(&self, member: &MemberHandle, item: Vec<Frame>) {
        let repo = self.repo.clone();
        let room = member.room_name().to_owned();
        let relay = member.clone();
        let _order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
        member.send_where(|_| true, item.clone());
        self.write_then_relay(relay, item.clone(), async move {
            if let Err(e) = repo.push_item(&room, item).await {
                tracing::warn!(error = %e, room, "a room history item was not kept");
            }
        });
    }

    /// Replaces the room's state message of kind `key` with `msg` (a joiner
    /// gets the latest of each kind, before the history items) and sends
    /// it to everyone in `member`'s room but `member`. Kept as long as the
    /// room's history, even with `share.history` at 0.
    pub fn set_state(&self, member: &MemberHandle, key: &str, msg: Frame) {
        let repo = self.repo.clone();
        let (room, key) = (member.room_name().to_owned(), key.to_owned());
        let me = member.id();
        let _order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
        member.send_where(|m| m.id != me, msg.clone());
        self.write_then_relay(member.clone(), vec![msg.clone()], async move {
            if let Err(e) = repo.set_state(&room, &key, msg).await {
                tracing::warn!(error = %e, room, "a room state message was not kept");
            }
        });
    }

    /// Queues `write`, then the relay of `frames` to the other instances'
    /// members; relays at once when the queue is full (the write is lost).
    fn write_then_relay(
        &self,
        member: MemberHandle,
        frames: Vec<Frame>,
        write: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let relay = member.clone();
        let copy = frames.clone();
        let queued = self.ordered.run(async move {
            write.await;
            relay.send_elsewhere(None, copy);
        });
        if !queued {
            tracing::warn!(
                room = member.room_name(),
                "room state queue is full: a history write was dropped"
            );
            member.send_elsewhere(None, frames);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::hub::HubLimits;

    fn hub() -> RoomHub {
        RoomHub::new(HubLimits {
            max_members: 8,
            member_queue: 8,
        })
    }

    fn texts(msgs: &[Frame]) -> Vec<String> {
        msgs.iter()
            .map(|m| m.as_text().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_late_joiner_gets_the_last_items_in_order() {
        let history = History::new(2, Duration::from_secs(60), 1 << 20);
        let hub = hub();
        let (r, _ro) = hub.join("r", "sender").unwrap();
        let (other, _oo) = hub.join("other", "sender").unwrap();
        for t in ["1", "2", "3"] {
            history.publish(&r, vec![Frame::text(t)]);
        }
        history.publish(&other, vec![Frame::text("x")]);
        let joined = history.join(&hub, "r", "late").await.unwrap();
        assert_eq!(texts(&joined.preface), ["2", "3"]);
    }

    #[tokio::test]
    async fn a_joiner_gets_the_latest_state_of_each_kind_first() {
        let history = History::new(5, Duration::from_secs(60), 1 << 20);
        let hub = hub();
        let (sender, mut so) = hub.join("r", "sender").unwrap();
        let (_other, mut oo) = hub.join("r", "other").unwrap();
        history.publish(&sender, vec![Frame::text("item")]);
        for (key, text) in [("pad", "v1"), ("other", "o"), ("pad", "v2")] {
            history.set_state(&sender, key, Frame::text(text));
        }
        let joined = history.join(&hub, "r", "late").await.unwrap();
        assert_eq!(texts(&joined.preface), ["v2", "o", "item"]);
        let live =
            |out: &mut Outbound| texts(&std::iter::from_fn(|| out.try_recv()).collect::<Vec<_>>());
        assert_eq!(live(&mut so), ["item"], "state goes to the others");
        assert_eq!(live(&mut oo), ["item", "v1", "o", "v2"]);
    }

    #[tokio::test]
    async fn expired_items_are_not_sent() {
        let history = History::new(5, Duration::ZERO, 1 << 20);
        let hub = hub();
        let (sender, _so) = hub.join("r", "sender").unwrap();
        history.publish(&sender, vec![Frame::text("old")]);
        let joined = history.join(&hub, "r", "late").await.unwrap();
        assert!(joined.preface.is_empty());
    }

    #[tokio::test]
    async fn a_publication_reaches_a_joiner_once_live_or_in_history() {
        let history = History::new(5, Duration::from_secs(60), 1 << 20);
        let hub = hub();
        let (sender, _so) = hub.join("r", "sender").unwrap();
        history.publish(&sender, vec![Frame::text("before")]);
        let mut joined = history.join(&hub, "r", "late").await.unwrap();
        history.publish(&sender, vec![Frame::text("after")]);
        assert_eq!(texts(&joined.preface), ["before"]);
        let live = joined.outbound.try_recv().unwrap();
        assert_eq!(live.as_text(), Some("after"));
        assert!(joined.outbound.try_recv().is_none());
    }
}
