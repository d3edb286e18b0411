//! Room state in this process (`backend.kind: memory`): each room's log
//! of history items and state frames in one cache bounded by
//! `max_bytes` over all rooms (least recently used rooms go first) and
//! dropped `ttl` after its last use, and each room's roster in a map.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::{self, BoxFuture};
use futures_util::FutureExt;

use super::rooms::{Entered, HistoryBounds, RoomRepo, RoomRepos, RosterEntry};
use super::{BackendError, Frame};

/// Opens [`MemoryRooms`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryRoomRepos;

impl RoomRepos for MemoryRoomRepos {
    fn open(&self, _topic: &str, history: HistoryBounds) -> Arc<dyn RoomRepo> {
        Arc::new(MemoryRooms::new(history))
    }
}

/// One item: the frames a late joiner is sent for it.
struct Item {
    at: Instant,
    frames: Vec<Frame>,
    bytes: usize,
}

#[derive(Default)]
struct RoomLog {
    items: VecDeque<Item>,
    /// The latest state frame of each kind, in order of first setting.
    state: Vec<(String, Frame)>,
    /// Bytes of `items` and `state` together.
    bytes: usize,
}

/// One protocol's rooms, in this process.
pub struct MemoryRooms {
    logs: moka::sync::Cache<String, Arc<Mutex<RoomLog>>>,
    rosters: Mutex<HashMap<String, Vec<RosterEntry>>>,
    bounds: HistoryBounds,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data if it did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryRooms {
    pub fn new(bounds: HistoryBounds) -> Self {
        let logs = moka::sync::Cache::builder()
            .max_capacity(bounds.max_bytes)
            .weigher(|_room: &String, log: &Arc<Mutex<RoomLog>>| {
                u32::try_from(lock(log).bytes).unwrap_or(u32::MAX)
            })
            .time_to_idle(bounds.ttl)
            .build();
        Self {
            logs,
            rosters: Mutex::default(),
            bounds,
        }
    }

    fn log(&self, room: &str) -> Arc<Mutex<RoomLog>> {
        self.logs.get_with(room.to_owned(), Default::default)
    }

    /// Changes a room's log, then lets the cache weigh it at its new size.
    fn change(&self, room: &str, f: impl FnOnce(&mut RoomLog)) {
        let shared = self.log(room);
        f(&mut lock(&shared));
        self.logs.insert(room.to_owned(), shared);
    }

    /// Bytes held for a room (for tests of the bound).
    pub fn bytes(&self, room: &str) -> usize {
        lock(&self.log(room)).bytes
    }

    fn push_now(&self, room: &str, frames: Vec<Frame>) {
        let HistoryBounds { keep, ttl, .. } = self.bounds;
        if keep == 0 {
            return;
        }
        self.change(room, |log| {
            let bytes = frames.iter().map(Frame::len).sum();
            log.bytes += bytes;
            log.items.push_back(Item {
                at: Instant::now(),
                frames,
                bytes,
            });
            log.prune(keep, ttl);
        });
    }

    fn set_state_now(&self, room: &str, key: &str, frame: Frame) {
        self.change(room, |log| {
            log.bytes += frame.len();
            match log.state.iter().position(|(k, _)| k == key) {
                Some(at) => {
                    let old = std::mem::replace(&mut log.state[at].1, frame);
                    log.bytes -= old.len();
                }
                None => log.state.push((key.to_owned(), frame)),
            }
        });
    }

    fn snapshot_now(&self, room: &str) -> Vec<Frame> {
        let log = self.log(room);
        let mut log = lock(&log);
        log.prune(self.bounds.keep, self.bounds.ttl);
        log.state
            .iter()
            .map(|(_, frame)| frame.clone())
            .chain(
                log.items
                    .iter()
                    .flat_map(|item| item.frames.iter().cloned()),
            )
            .collect()
    }

    fn enter_now(&self, room: &str, member: &str, label: &str, max: Option<usize>) -> Entered {
        let mut rosters = lock(&self.rosters);
        let roster = rosters.entry(room.to_owned()).or_default();
        if max.is_some_and(|max| roster.len() >= max) {
            if roster.is_empty() {
                rosters.remove(room);
            }
            return Entered::Full;
        }
        roster.push(RosterEntry {
            member: member.to_owned(),
            label: label.to_owned(),
        });
        Entered::In(roster.clone())
    }

    fn leave_now(&self, room: &str, member: &str) -> Option<Vec<RosterEntry>> {
        let mut rosters = lock(&self.rosters);
        let roster = rosters.get_mut(room)?;
        let at = roster.iter().position(|e| e.member == member)?;
        roster.remove(at);
        let rest = roster.clone();
        if rest.is_empty() {
            rosters.remove(room);
        }
        Some(rest)
    }
}

impl RoomLog {
    fn prune(&mut self, keep: usize, ttl: std::time::Duration) {
        while let Some(front) = self.items.front() {
            if self.items.len() <= keep && front.at.elapsed() < ttl {
                break;
            }
            self.bytes -= front.bytes;
            self.items.pop_front();
        }
    }
}

/// A memory operation's answer, as the trait's future.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, Result<T, BackendError>> {
    future::ready(Ok(value)).boxed()
}

impl RoomRepo for MemoryRooms {
    fn shared(&self) -> bool {
        false
    }

    fn push_item<'a>(
        &'a self,
        room: &'a str,
        item: Vec<Frame>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.push_now(room, item);
        ready(())
    }

    fn set_state<'a>(
        &'a self,
        room: &'a str,
        key: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.set_state_now(room, key, frame);
        ready(())
    }

    fn snapshot<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Frame>, BackendError>> {
        ready(self.snapshot_now(room))
    }

    fn enter<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
        label: &'a str,
        max: Option<usize>,
    ) -> BoxFuture<'a, Result<Entered, BackendError>> {
        ready(self.enter_now(room, member, label, max))
    }

    fn leave<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RosterEntry>>, BackendError>> {
        ready(self.leave_now(room, member))
    }

    fn roster<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RosterEntry>, BackendError>> {
        ready(lock(&self.rosters).get(room).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rooms(keep: usize, ttl: Duration) -> MemoryRooms {
        MemoryRooms::new(HistoryBounds {
            keep,
            ttl,
            max_bytes: 1 << 20,
        })
    }

    fn texts(frames: &[Frame]) -> Vec<&str> {
        frames.iter().map(|f| f.as_text().unwrap()).collect()
    }

    #[test]
    fn the_last_items_come_after_the_latest_state_of_each_kind() {
        let r = rooms(2, Duration::from_secs(60));
        for t in ["1", "2", "3"] {
            r.push_now("r", vec![Frame::text(t)]);
        }
        r.push_now("other", vec![Frame::text("x")]);
        for (key, text) in [("pad", "v1"), ("other", "o"), ("pad", "v2")] {
            r.set_state_now("r", key, Frame::text(text));
        }
        assert_eq!(texts(&r.snapshot_now("r")), ["v2", "o", "2", "3"]);
        assert_eq!(r.bytes("r"), "v2".len() + "o".len() + "2".len() + "3".len());
    }

    #[test]
    fn expired_items_are_not_kept() {
        let r = rooms(5, Duration::ZERO);
        r.push_now("r", vec![Frame::text("old")]);
        assert!(r.snapshot_now("r").is_empty());
    }

    #[test]
    fn the_roster_keeps_arrival_order_and_its_bound() {
        let r = rooms(0, Duration::from_secs(60));
        assert!(matches!(r.enter_now("r", "a", "ann", Some(2)), Entered::In(l) if l.len() == 1));
        let Entered::In(list) = r.enter_now("r", "b", "bob", Some(2)) else {
            panic!("room for two")
        };
        let labels: Vec<&str> = list.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["ann", "bob"]);
        assert_eq!(r.enter_now("r", "c", "cy", Some(2)), Entered::Full);
        assert_eq!(r.leave_now("r", "a").unwrap().len(), 1);
        assert_eq!(r.leave_now("r", "a"), None, "gone once");
        assert!(matches!(
            r.enter_now("r", "c", "cy", Some(2)),
            Entered::In(_)
        ));
    }
}
