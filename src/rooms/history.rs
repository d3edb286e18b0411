//! A room's recent history for late joiners: the last
//! `share.history` items (a text message, or an image as start, chunks and
//! complete), each expiring after `share.history_ttl`, all rooms' logs
//! together bounded by `share.history_max_bytes`; and a room's state
//! messages (e.g. a shared text pad), of which a joiner gets the latest of
//! each kind before the items.
//!
//! It also orders joins against publications: both happen under the room
//! log's lock, so a joiner sees every item exactly once, either in its
//! history preface or live through its queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::hub::{JoinError, Membership, Outbound, RoomHub};
use crate::backend::Frame;

/// One history item: the messages a late joiner is sent for it.
struct Item {
    at: Instant,
    messages: Vec<Frame>,
    bytes: usize,
}

#[derive(Default)]
struct RoomLog {
    items: VecDeque<Item>,
    /// The latest state message of each kind, in order of first setting.
    state: Vec<(String, Frame)>,
    /// Bytes of `items` and `state` together.
    bytes: usize,
}

/// History of all share rooms.
#[derive(Clone)]
pub struct History {
    logs: moka::sync::Cache<String, Arc<Mutex<RoomLog>>>,
    keep: usize,
    ttl: Duration,
}

/// What a joiner gets: its place, its queue and the history to send first.
pub struct Joined {
    pub membership: Membership,
    pub outbound: Outbound,
    pub preface: Vec<Frame>,
}

fn size_of(m: &Frame) -> usize {
    m.len()
}

impl History {
    pub fn new(keep: usize, ttl: Duration, max_bytes: u64) -> Self {
        let logs = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_room: &String, log: &Arc<Mutex<RoomLog>>| {
                let bytes = log.lock().unwrap_or_else(PoisonError::into_inner).bytes;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_idle(ttl)
            .build();
        Self { logs, keep, ttl }
    }

    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        self.logs.get_with(room.to_owned(), Default::default)
    }

    /// Joins `room` and takes the history still held, atomically.
    pub fn join(&self, hub: &RoomHub, room: &str, name: &str) -> Result<Joined, JoinError> {
        let log = self.log(room);
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.prune(self.keep, self.ttl);
        let (membership, outbound) = hub.join(room, name)?;
        let preface = log
            .state
            .iter()
            .map(|(_, msg)| msg.clone())
            .chain(
                log.items
                    .iter()
                    .flat_map(|item| item.messages.iter().cloned()),
            )
            .collect();
        Ok(Joined {
            membership,
            outbound,
            preface,
        })
    }

    /// Records `item` (the messages a late joiner will get) and runs
    /// `deliver` (sending it live) under the room log's lock.
    pub fn publish(&self, room: &str, item: Vec<Frame>, deliver: impl FnOnce()) {
        let shared = self.log(room);
        {
            let mut log = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if self.keep > 0 {
                let bytes = item.iter().map(size_of).sum();
                log.bytes += bytes;
                log.items.push_back(Item {
                    at: Instant::now(),
                    messages: item,
                    bytes,
                });
                log.prune(self.keep, self.ttl);
            }
            deliver();
        }
        // Re-inserting lets the cache weigh the log at its new size.
        self.logs.insert(room.to_owned(), shared);
    }

    /// Replaces the room's state message of kind `key` with `msg` (a joiner
    /// gets the latest of each kind, before the history items) and runs
    /// `deliver` (sending it live) under the room log's lock. Kept as long
    /// as the room's history, even with `share.history` at 0.
    pub fn set_state(&self, room: &str, key: &str, msg: Frame, deliver: impl FnOnce()) {
        let shared = self.log(room);
        {
            let mut log = shared.lock().unwrap_or_else(PoisonError::into_inner);
            log.bytes += size_of(&msg);
            match log.state.iter().position(|(k, _)| k == key) {
                Some(at) => {
                    let old = std::mem::replace(&mut log.state[at].1, msg);
                    log.bytes -= size_of(&old);
                }
                None => log.state.push((key.to_owned(), msg)),
            }
            deliver();
        }
        self.logs.insert(room.to_owned(), shared);
    }
}

impl RoomLog {
    fn prune(&mut self, keep: usize, ttl: Duration) {
        while let Some(front) = self.items.front() {
            if self.items.len() <= keep && front.at.elapsed() < ttl {
                break;
            }
            self.bytes -= front.bytes;
            self.items.pop_front();
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

    #[test]
    fn a_late_joiner_gets_the_last_items_in_order() {
        let history = History::new(2, Duration::from_secs(60), 1 << 20);
        for t in ["1", "2", "3"] {
            history.publish("r", vec![Frame::text(t)], || {});
        }
        history.publish("other", vec![Frame::text("x")], || {});
        let joined = history.join(&hub(), "r", "late").unwrap();
        assert_eq!(texts(&joined.preface), ["2", "3"]);
    }

    #[test]
    fn a_joiner_gets_the_latest_state_of_each_kind_first() {
        let history = History::new(5, Duration::from_secs(60), 1 << 20);
        history.publish("r", vec![Frame::text("item")], || {});
        let mut delivered = 0;
        for (key, text) in [("pad", "v1"), ("other", "o"), ("pad", "v2")] {
            history.set_state("r", key, Frame::text(text), || delivered += 1);
        }
        assert_eq!(delivered, 3);
        let joined = history.join(&hub(), "r", "late").unwrap();
        assert_eq!(texts(&joined.preface), ["v2", "o", "item"]);
        let log = history.log("r");
        let bytes = log.lock().unwrap().bytes;
        assert_eq!(bytes, "v2".len() + "o".len() + "item".len());
    }

    #[test]
    fn expired_items_are_not_sent() {
        let history = History::new(5, Duration::ZERO, 1 << 20);
        history.publish("r", vec![Frame::text("old")], || {});
        let joined = history.join(&hub(), "r", "late").unwrap();
        assert!(joined.preface.is_empty());
    }
}
