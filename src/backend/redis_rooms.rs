//! Room state in Redis (`backend.kind: redis`): every instance on one
//! Redis and key prefix sees the same history, state frames and roster of
//! a room.
//!
//! Keys of room `R` of topic `T` (`P` = `backend.key_prefix`), all with the
//! hash tag `{T:R}`, so one room's keys sit in one Redis Cluster slot and
//! the scripts below, which touch several of them, run there:
//!
//! - `P room:{T:R}:history`: list of items, oldest first, trimmed to
//!   `keep`; each is a JSON header line (`at`, ms since the epoch, and each
//!   frame's kind and length), then the frames' bytes.
//! - `P room:{T:R}:state`: hash, kind -> a 16-digit order of first setting
//!   and the frame (encoded as an item).
//! - `P room:{T:R}:roster`: sorted set of `seq|member|label`, scored by
//!   the time (Redis's clock, ms) the entry expires; renewed by its
//!   instance every third of `backend.member_ttl`, so the members of an
//!   instance that died drop off within `member_ttl`.
//! - `P room:{T:R}:seq`: the roster's arrival counter.
//!
//! History and state expire `ttl` after the room's last item, state change
//! or join; roster keys `member_ttl` after the last arrival or renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::frame::{pack, unpack};
use super::redis::connect_manager;
use super::rooms::{Entered, HistoryBounds, RoomRepo, RoomRepos, RosterEntry};
use super::{BackendError, Frame};
use crate::config::BackendSettings;

/// Opens the room state of each protocol on one Redis connection.
pub struct RedisRooms {
    conn: ConnectionManager,
    prefix: String,
    member_ttl: Duration,
}

impl RedisRooms {
    /// Connects (the connection reconnects by itself afterwards).
    pub async fn connect(settings: &BackendSettings) -> Result<Self, BackendError> {
        let (_client, conn) = connect_manager(settings).await?;
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            member_ttl: settings.member_ttl.max(Duration::from_millis(30)),
        })
    }
}

impl RoomRepos for RedisRooms {
    /// Must be called within a Tokio runtime: starts the roster renewal,
    /// which ends with the repo.
    fn open(&self, topic: &str, history: HistoryBounds) -> Arc<dyn RoomRepo> {
        let stop = CancellationToken::new();
        let repo = RedisRoomRepo {
            conn: self.conn.clone(),
            keys: Keys {
                prefix: self.prefix.clone(),
                topic: topic.to_owned(),
            },
            history,
            member_ttl: self.member_ttl,
            mine: Arc::default(),
            _stop: stop.clone().drop_guard(),
        };
        tokio::spawn(renew(
            repo.conn.clone(),
            repo.keys.clone(),
            repo.mine.clone(),
            self.member_ttl,
            stop,
        ));
        Arc::new(repo)
    }
}

/// A state hash's fields: kind, and order then frame.
type StateFields = Vec<(String, Vec<u8>)>;

/// This instance's roster entries: room -> member -> entry.
type Mine = Arc<Mutex<HashMap<String, HashMap<String, String>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One protocol's rooms in Redis.
pub struct RedisRoomRepo {
    conn: ConnectionManager,
    keys: Keys,
    history: HistoryBounds,
    member_ttl: Duration,
    mine: Mine,
    _stop: DropGuard,
}

#[derive(Clone)]
struct Keys {
    prefix: String,
    topic: String,
}

impl Keys {
    fn key(&self, room: &str, what: &str) -> String {
        format!("{}room:{{{}:{room}}}:{what}", self.prefix, self.topic)
    }
    fn history(&self, room: &str) -> String {
        self.key(room, "history")
    }
    fn state(&self, room: &str) -> String {
        self.key(room, "state")
    }
    fn roster(&self, room: &str) -> String {
        self.key(room, "roster")
    }
    fn seq(&self, room: &str) -> String {
        self.key(room, "seq")
    }
}

/// The header line of a stored item or state frame.
#[derive(Serialize, Deserialize)]
struct Header {
    /// When it was stored, ms since the Unix epoch.
    at: u64,
    frames: Vec<(bool, usize)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Frames as one stored value: the header line, then their bytes.
pub fn encode(at: u64, frames: &[Frame]) -> Vec<u8> {
    let (layout, body) = pack(frames);
    let mut out = serde_json::to_vec(&Header { at, frames: layout }).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(&body);
    out
}

/// A stored value back into its time and frames.
pub fn decode(value: &[u8]) -> Result<(u64, Vec<Frame>), BackendError> {
    let bad = |why: &str| BackendError::BadRecord(format!("room history: {why}"));
    let split = value
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no header line"))?;
    let header: Header =
        serde_json::from_slice(&value[..split]).map_err(|e| bad(&e.to_string()))?;
    let frames = unpack(&header.frames, Bytes::copy_from_slice(&value[split + 1..]))
        .map_err(|why| bad(&why))?;
    Ok((header.at, frames))
}

/// Width of the order and arrival numbers at the start of stored values.
const ORDER_DIGITS: usize = 16;

/// Sets one state frame, keeping its kind's order of first setting.
/// KEYS: state, history. ARGV: kind, value, ttl ms.
const SET_STATE: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local order
if old then order = string.sub(old, 1, 16)
else order = string.format('%016d', redis.call('HLEN', KEYS[1]) + 1) end
redis.call('HSET', KEYS[1], ARGV[1], order .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
";

/// Redis's clock in ms, and the removal of expired roster entries.
const NOW_AND_PURGE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
";

/// KEYS: roster, seq. ARGV: ttl ms, max (0: none), member, label.
/// Returns false when full, else the new entry then the whole roster.
const ENTER: &str = r"
local max = tonumber(ARGV[2])
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then return false end
local seq = redis.call('INCR', KEYS[2])
local entry = string.format('%016d', seq) .. '|' .. ARGV[3] .. '|' .. ARGV[4]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), entry)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local all = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(all, 1, entry)
return all
";

/// KEYS: roster. ARGV: entry. False when it was not there, else the rest.
const LEAVE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// KEYS: roster.
const ROSTER: &str = r"
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// KEYS: roster, seq. ARGV: ttl ms, entries. Renews entries still there.
const RENEW: &str = r"
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
";

/// A roster script, run after purging expired entries.
fn roster_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{NOW_AND_PURGE}{body}"))
}

/// Roster entries (`seq|member|label`) in order of arrival.
fn parse_roster(mut entries: Vec<String>) -> Vec<RosterEntry> {
    entries.sort();
    entries
        .iter()
        .filter_map(|e| {
            let mut parts = e.splitn(3, '|');
            let (_seq, member, label) = (parts.next()?, parts.next()?, parts.next()?);
            Some(RosterEntry {
                member: member.to_owned(),
                label: label.to_owned(),
            })
        })
        .collect()
}

/// Renews this instance's roster entries every third of `ttl` until `stop`.
async fn renew(
    mut conn: ConnectionManager,
    keys: Keys,
    mine: Mine,
    ttl: Duration,
    stop: CancellationToken,
) {
    let script = roster_script(RENEW);
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let rooms: Vec<(String, Vec<String>)> = lock(&mine)
            .iter()
            .map(|(room, members)| (room.clone(), members.values().cloned().collect()))
            .collect();
        for (room, entries) in rooms {
            let mut call = script.key(keys.roster(&room));
            call.key(keys.seq(&room)).arg(millis(ttl)).arg(&entries);
            if let Err(e) = call.invoke_async::<i64>(&mut conn).await {
                tracing::warn!(error = %e, room = %room, "room members could not be renewed");
            }
        }
    }
}

impl RoomRepo for RedisRoomRepo {
    fn shared(&self) -> bool {
        true
    }

    fn push_item<'a>(
        &'a self,
        room: &'a str,
        item: Vec<Frame>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let HistoryBounds { keep, ttl, .. } = self.history;
            if keep == 0 {
                return Ok(());
            }
            let ttl = millis(ttl);
            let history = self.keys.history(room);
            let mut conn = self.conn.clone();
            redis::pipe()
                .rpush(&history, encode(now_ms(), &item))
                .ignore()
                .ltrim(&history, -(keep as isize), -1)
                .ignore()
                .pexpire(&history, ttl as i64)
                .ignore()
                .pexpire(self.keys.state(room), ttl as i64)
                .ignore()
                .query_async::<()>(&mut conn)
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn set_state<'a>(
        &'a self,
        room: &'a str,
        key: &'a str,
        frame: Frame,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let mut conn = self.conn.clone();
            redis::Script::new(SET_STATE)
                .key(self.keys.state(room))
                .key(self.keys.history(room))
                .arg(key)
                .arg(encode(now_ms(), std::slice::from_ref(&frame)))
                .arg(millis(self.history.ttl))
                .invoke_async::<i64>(&mut conn)
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn snapshot<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Frame>, BackendError>> {
        async move {
            let HistoryBounds { keep, ttl, .. } = self.history;
            let (history, state) = (self.keys.history(room), self.keys.state(room));
            let mut conn = self.conn.clone();
            let (items, states): (Vec<Vec<u8>>, StateFields) = redis::pipe()
                .lrange(&history, -(keep.max(1) as isize), -1)
                .hgetall(&state)
                .pexpire(&history, millis(ttl) as i64)
                .ignore()
                .pexpire(&state, millis(ttl) as i64)
                .ignore()
                .query_async(&mut conn)
                .await?;
            let mut states: Vec<Vec<u8>> = states.into_iter().map(|(_, v)| v).collect();
            states.sort();
            let mut frames = Vec::new();
            for value in &states {
                let (_, state) = decode(value.get(ORDER_DIGITS..).unwrap_or_default())?;
                frames.extend(state);
            }
            let oldest = now_ms().saturating_sub(millis(ttl));
            for value in items.iter().rev().take(keep).rev() {
                let (at, item) = decode(value)?;
                if at > oldest {
                    frames.extend(item);
                }
            }
            Ok(frames)
        }
        .boxed()
    }

    fn enter<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
        label: &'a str,
        max: Option<usize>,
    ) -> BoxFuture<'a, Result<Entered, BackendError>> {
        async move {
            let mut conn = self.conn.clone();
            let answer: Option<Vec<String>> = roster_script(ENTER)
                .key(self.keys.roster(room))
                .key(self.keys.seq(room))
                .arg(millis(self.member_ttl))
                .arg(max.unwrap_or(0))
                .arg(member.replace('|', "_"))
                .arg(label)
                .invoke_async(&mut conn)
                .await?;
            let Some(mut all) = answer else {
                return Ok(Entered::Full);
            };
            if all.is_empty() {
                return Err(BackendError::BadRecord("room roster: no entry".into()));
            }
            let entry = all.remove(0);
            lock(&self.mine)
                .entry(room.to_owned())
                .or_default()
                .insert(member.to_owned(), entry);
            Ok(Entered::In(parse_roster(all)))
        }
        .boxed()
    }

    fn leave<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<RosterEntry>>, BackendError>> {
        async move {
            let entry = {
                let mut mine = lock(&self.mine);
                let Some(members) = mine.get_mut(room) else {
                    return Ok(None);
                };
                let entry = members.remove(member);
                if members.is_empty() {
                    mine.remove(room);
                }
                entry
            };
            let Some(entry) = entry else { return Ok(None) };
            let mut conn = self.conn.clone();
            let rest: Option<Vec<String>> = roster_script(LEAVE)
                .key(self.keys.roster(room))
                .arg(entry)
                .invoke_async(&mut conn)
                .await?;
            Ok(rest.map(parse_roster))
        }
        .boxed()
    }

    fn roster<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RosterEntry>, BackendError>> {
        async move {
            let mut conn = self.conn.clone();
            let all: Vec<String> = roster_script(ROSTER)
                .key(self.keys.roster(room))
                .invoke_async(&mut conn)
                .await?;
            Ok(parse_roster(all))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_item_keeps_its_time_and_frames() {
        let frames = vec![Frame::text("{\"a\":1}\n"), Frame::binary(vec![0, b'\n'])];
        let (at, back) = decode(&encode(42, &frames)).unwrap();
        assert_eq!((at, back), (42, frames));
        assert!(decode(b"{\"at\":1,\"frames\":[[true,5]]}\nabc").is_err());
    }

    #[test]
    fn every_key_of_a_room_has_its_hash_tag() {
        let keys = Keys {
            prefix: "p:".into(),
            topic: "share".into(),
        };
        for key in [
            keys.history("r"),
            keys.state("r"),
            keys.roster("r"),
            keys.seq("r"),
        ] {
            let tag = key
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'));
            assert_eq!(tag.map(|(tag, _)| tag), Some("share:r"), "{key}");
        }
    }

    #[test]
    fn the_roster_is_in_order_of_arrival_whatever_the_labels() {
        let entries = vec![
            "0000000000000010|h/2|b|ob".to_owned(),
            "0000000000000009|h/1|ann".to_owned(),
        ];
        let labels: Vec<String> = parse_roster(entries).into_iter().map(|e| e.label).collect();
        assert_eq!(labels, ["ann", "b|ob"]);
    }
}
