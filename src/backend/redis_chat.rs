//! The chat on Redis (`backend.kind: redis`): every instance on one Redis
//! and key prefix serves one chat. Keys (below `P` = `backend.key_prefix`,
//! see docs/distributed.md):
//!
//! - `P chat:eid:{user}` (INCR) numbers a user's events; `P chat:log:{user}`
//!   is the user's log, a stream whose entry ids are the event ids
//!   (`N-0`), trimmed by `chat.max_events_per_user` (`XADD MAXLEN`) and
//!   `chat.retention`;
//! - `P chat:mid` (INCR) numbers messages; `P chat:msg:{id}` holds one (a
//!   hash), `P chat:messages` lists them all by creation time and
//!   `P chat:chat:{len(a)}:{a}:{b}` those of one chat (sorted sets);
//! - `P chat:contacts:{user}` (set), `P chat:users` (sorted set by last
//!   activity, bounded by `chat.max_users`), `P chat:conn:{user}` (a hash:
//!   the user's open sockets per instance) and `P chat:online:{user}`
//!   (presence);
//! - `P chat:instances` (set), `P chat:alive:{instance}` (renewed by each
//!   instance every third of `backend.member_ttl`) and
//!   `P chat:here:{instance}` (its users with sockets): an instance that
//!   stops renewing (killed) has its sockets taken out of presence by the
//!   others, and users left with none go offline;
//! - channel `P chat:user:{user}` carries the user's live events.
//!
//! Every change is one Lua script: the state change, the events' ids
//! (INCR), their log entries (XADD) and their publication happen together,
//! so a user's log order, id order and publication order are one order.
//! Every key has a TTL (retention, renewed on use). The scripts name their
//! keys from the prefix (they are not declared as KEYS), so they need one
//! Redis, not a cluster.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, ScriptInvocation};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::chat::{
    ChatBounds, ChatNow, ChatRepo, ChatRepoError, ChatResult, ChatRow, EventDraft, EventRow,
    LiveEvent, LiveFeed, MarkKind, MessageRow, Replayed,
};
use super::redis::{connect_manager, each_message, subscribe, Channel};
use super::BackendError;
use crate::config::BackendSettings;

/// How long subscribing may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(4);

/// Shared by every script: the prefix (KEYS[1]), the time and the bounds
/// (ARGV[1..7]), and the helpers. A script's own arguments start at ARGV[8].
const PRELUDE: &str = r#"
local P = KEYS[1]
local now_ms = tonumber(ARGV[1])
local now_s = ARGV[2]
local retention_ms = tonumber(ARGV[3])
local max_events = ARGV[4]
local max_per_chat = tonumber(ARGV[5])
local max_messages = tonumber(ARGV[6])
local max_users = tonumber(ARGV[7])
local ttl = math.floor(retention_ms / 1000) + 1
local keep_ms = retention_ms + 60000

local function chat_key(a, b)
  if b < a then a, b = b, a end
  return P .. 'chat:chat:' .. #a .. ':' .. a .. ':' .. b
end

-- Counts the user as active; false when a new user is past the bound.
local function touch(user, bounded)
  local k = P .. 'chat:users'
  if bounded and not redis.call('ZSCORE', k, user) then
    if redis.call('ZCARD', k) >= max_users then return false end
  end
  redis.call('ZADD', k, now_ms, user)
  redis.call('PEXPIRE', k, keep_ms)
  return true
end

-- The hash of a user's open sockets per instance (a counter of an earlier
-- version, one number, is dropped).
local function conn_key(user)
  local ck = P .. 'chat:conn:' .. user
  if redis.call('TYPE', ck).ok == 'string' then redis.call('DEL', ck) end
  return ck
end

local function remove_message(id)
  local mk = P .. 'chat:msg:' .. id
  local f = redis.call('HMGET', mk, 'from', 'to')
  redis.call('ZREM', P .. 'chat:messages', id)
  redis.call('DEL', mk)
  if f[1] and f[2] then
    local ck = chat_key(f[1], f[2])
    redis.call('ZREM', ck, id)
    if redis.call('ZCARD', ck) == 0 then
      redis.call('SREM', P .. 'chat:contacts:' .. f[1], f[2])
      redis.call('SREM', P .. 'chat:contacts:' .. f[2], f[1])
    end
  end
end

-- Drops the messages older than the retention.
local function prune()
  local old = redis.call('ZRANGEBYSCORE', P .. 'chat:messages', '-inf',
    '(' .. (now_ms - retention_ms), 'LIMIT', 0, 1000)
  for _, id in ipairs(old) do remove_message(id) end
end

-- Drops a log's events older than the retention.
local function trim_log(lk)
  local cutoff = now_ms - retention_ms
  while true do
    local e = redis.call('XRANGE', lk, '-', '+', 'COUNT', 1)
    if #e == 0 then return end
    if tonumber(e[1][2][4]) >= cutoff then return end
    redis.call('XDEL', lk, e[1][1])
  end
end

-- Appends one event to a user's log and publishes it.
local function append(user, kind, payload)
  local ek = P .. 'chat:eid:' .. user
  local lk = P .. 'chat:log:' .. user
  local id = redis.call('INCR', ek)
  redis.call('XADD', lk, 'MAXLEN', max_events, id .. '-0',
    'ts', now_s, 'ms', now_ms, 'kind', kind, 'payload', payload)
  trim_log(lk)
  redis.call('EXPIRE', ek, ttl)
  redis.call('EXPIRE', lk, ttl)
  touch(user, false)
  redis.call('PUBLISH', P .. 'chat:user:' .. user,
    'N ' .. id .. ' ' .. now_s .. ' ' .. kind .. '\n' .. payload)
end

-- Appends the drafts given from ARGV[at]: a count, then user, kind, payload each.
local function append_drafts(at)
  local n = tonumber(ARGV[at])
  for i = 0, n - 1 do
    append(ARGV[at + 1 + 3 * i], ARGV[at + 2 + 3 * i], ARGV[at + 3 + 3 * i])
  end
  return at + 1 + 3 * n
end

local FIELDS = {'from', 'to', 'text', 'content', 'created', 'updated', 'delivered', 'read'}
local function message_fields(id)
  local f = redis.call('HMGET', P .. 'chat:msg:' .. id, unpack(FIELDS))
  if not f[1] then return false end
  table.insert(f, 1, tostring(id))
  return f
end

-- A log's events after ARGV-given range start, as id, ts, kind, payload.
local function entries(list)
  local out = {}
  for _, e in ipairs(list) do
    local f = e[2]
    table.insert(out, string.match(e[1], '^(%d+)'))
    table.insert(out, f[2])
    table.insert(out, f[6])
    table.insert(out, f[8])
  end
  return out
end
"#;

/// ARGV[8] user, ARGV[9] this instance, ARGV[10] `member_ttl` in ms. 1
/// when the user comes online, 0 not, -1 too many users.
const CONNECT: &str = r#"
local user, me = ARGV[8], ARGV[9]
if not touch(user, true) then return -1 end
local ck = conn_key(user)
redis.call('HINCRBY', ck, me, 1)
redis.call('EXPIRE', ck, ttl)
local hk = P .. 'chat:here:' .. me
redis.call('SADD', hk, user)
redis.call('EXPIRE', hk, ttl)
redis.call('SADD', P .. 'chat:instances', me)
redis.call('PEXPIRE', P .. 'chat:instances', keep_ms)
redis.call('SET', P .. 'chat:alive:' .. me, '1', 'PX', ARGV[10])
redis.call('EXPIRE', P .. 'chat:eid:' .. user, ttl)
redis.call('EXPIRE', P .. 'chat:log:' .. user, ttl)
local was = redis.call('SET', P .. 'chat:online:' .. user, '1', 'GET', 'EX', ttl)
if was then return 0 end
return 1
"#;

/// ARGV[8] user, ARGV[9] this instance. 1 when its last socket closed
/// while it was online.
const DISCONNECT: &str = r#"
local user, me = ARGV[8], ARGV[9]
local ck = conn_key(user)
if redis.call('HEXISTS', ck, me) == 0 then return 0 end
if redis.call('HINCRBY', ck, me, -1) > 0 then return 0 end
redis.call('HDEL', ck, me)
redis.call('SREM', P .. 'chat:here:' .. me, user)
if redis.call('EXISTS', ck) == 1 then return 0 end
return redis.call('DEL', P .. 'chat:online:' .. user)
"#;

/// ARGV[8] this instance, ARGV[9] `member_ttl` in ms. Renews this
/// instance, then takes every instance that stopped renewing out of
/// presence: the users left with no socket anywhere, who went offline.
const REAP: &str = r#"
local me = ARGV[8]
redis.call('SET', P .. 'chat:alive:' .. me, '1', 'PX', ARGV[9])
local ik = P .. 'chat:instances'
local gone = {}
for _, other in ipairs(redis.call('SMEMBERS', ik)) do
  if redis.call('EXISTS', P .. 'chat:alive:' .. other) == 0 then
    local hk = P .. 'chat:here:' .. other
    for _, user in ipairs(redis.call('SMEMBERS', hk)) do
      local ck = conn_key(user)
      redis.call('HDEL', ck, other)
      if redis.call('EXISTS', ck) == 0 and redis.call('DEL', P .. 'chat:online:' .. user) == 1 then
        table.insert(gone, user)
      end
    end
    redis.call('DEL', hk)
    redis.call('SREM', ik, other)
  end
end
return gone
"#;

/// ARGV[8] user. 1 when a connected user was not shown online.
const GO_ONLINE: &str = r#"
local user = ARGV[8]
if redis.call('EXISTS', P .. 'chat:conn:' .. user) == 0 then return 0 end
if redis.call('SET', P .. 'chat:online:' .. user, '1', 'NX', 'EX', ttl) then return 1 end
return 0
"#;

/// ARGV[8] user: its contacts.
const CONTACTS: &str = r#"
prune()
return redis.call('SMEMBERS', P .. 'chat:contacts:' .. ARGV[8])
"#;

/// ARGV[8..] id, from, to, text, content, created, then the drafts.
/// 0 stored, -1 too many users.
const ADD: &str = r#"
local id, from, to = ARGV[8], ARGV[9], ARGV[10]
if not touch(from, true) or not touch(to, true) then return -1 end
prune()
local mk = P .. 'chat:msg:' .. id
redis.call('HSET', mk, 'from', from, 'to', to, 'text', ARGV[11], 'content', ARGV[12],
  'created', ARGV[13])
redis.call('PEXPIRE', mk, keep_ms)
local all = P .. 'chat:messages'
redis.call('ZADD', all, now_ms, id)
redis.call('PEXPIRE', all, keep_ms)
local ck = chat_key(from, to)
redis.call('ZADD', ck, id, id)
redis.call('PEXPIRE', ck, keep_ms)
local over = redis.call('ZCARD', ck) - max_per_chat
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', ck, 0, over - 1)) do remove_message(old) end
end
over = redis.call('ZCARD', all) - max_messages
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', all, 0, over - 1)) do remove_message(old) end
end
for _, pair in ipairs({{from, to}, {to, from}}) do
  local k = P .. 'chat:contacts:' .. pair[1]
  redis.call('SADD', k, pair[2])
  redis.call('PEXPIRE', k, keep_ms)
end
append_drafts(14)
return 0
"#;

/// ARGV[8] id: the message's fields, or nil.
const MESSAGE: &str = r#"
prune()
return message_fields(ARGV[8])
"#;

/// ARGV[8..] id, text, then the drafts. 1 edited, 0 not kept.
const EDIT: &str = r#"
prune()
local mk = P .. 'chat:msg:' .. ARGV[8]
if redis.call('EXISTS', mk) == 0 then return 0 end
redis.call('HSET', mk, 'text', ARGV[9], 'updated', now_s)
append_drafts(10)
return 1
"#;

/// ARGV[8..] id, then the drafts. 1 deleted, 0 not kept.
const DELETE: &str = r#"
prune()
if redis.call('EXISTS', P .. 'chat:msg:' .. ARGV[8]) == 0 then return 0 end
remove_message(ARGV[8])
append_drafts(9)
return 1
"#;

/// ARGV[8..] reader, author, upto, field: ids from author to reader up to
/// `upto` without the field.
const UNMARKED: &str = r#"
prune()
local reader, author, field = ARGV[8], ARGV[9], ARGV[11]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', chat_key(reader, author), '-inf', ARGV[10])) do
  local f = redis.call('HMGET', P .. 'chat:msg:' .. id, 'from', 'to', field)
  if f[1] == author and f[2] == reader and not f[3] then table.insert(out, id) end
end
return out
"#;

/// ARGV[8..] reader, author, field, count, then per mark: id and its drafts.
/// The ids marked.
const MARK: &str = r#"
prune()
local reader, author, field = ARGV[8], ARGV[9], ARGV[10]
local at = 12
local out = {}
for _ = 1, tonumber(ARGV[11]) do
  local id = ARGV[at]
  local mk = P .. 'chat:msg:' .. id
  local f = redis.call('HMGET', mk, 'from', 'to', field)
  if f[1] == author and f[2] == reader and not f[3] then
    redis.call('HSET', mk, field, now_s)
    redis.call('HSETNX', mk, 'delivered', now_s)
    table.insert(out, id)
    at = append_drafts(at + 1)
  else
    at = at + 2 + 3 * tonumber(ARGV[at + 1])
  end
end
return out
"#;

/// ARGV[8..] a, b, last, count: has_more, then each message's fields.
const PAGE: &str = r#"
prune()
local count = tonumber(ARGV[11])
local ids = redis.call('ZREVRANGEBYSCORE', chat_key(ARGV[8], ARGV[9]), ARGV[10], '-inf',
  'LIMIT', 0, count + 1)
local out = {0}
if #ids > count then out[1] = 1 end
for i = math.min(#ids, count), 1, -1 do
  local f = message_fields(ids[i])
  if f then table.insert(out, f) end
end
return out
"#;

/// ARGV[8..] user, other: unread count, then the last message's fields.
const CHAT: &str = r#"
prune()
local user = ARGV[8]
local ids = redis.call('ZRANGE', chat_key(user, ARGV[9]), 0, -1)
local unread = 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', P .. 'chat:msg:' .. id, 'to', 'read')
  if f[1] == user and not f[2] then unread = unread + 1 end
end
local out = {unread}
if #ids > 0 then
  local f = message_fields(ids[#ids])
  if f then table.insert(out, f) end
end
return out
"#;

/// ARGV[8..] user, range start: last id, first kept id, then the events
/// (id, ts, kind, payload each); -1 too many users.
const REPLAY: &str = r#"
local user = ARGV[8]
if not touch(user, true) then return -1 end
local lk = P .. 'chat:log:' .. user
trim_log(lk)
local last = tonumber(redis.call('GET', P .. 'chat:eid:' .. user) or '0')
local first = redis.call('XRANGE', lk, '-', '+', 'COUNT', 1)
local first_id = last + 1
if #first > 0 then first_id = tonumber(string.match(first[1][1], '^(%d+)')) end
local out = {last, first_id}
for _, v in ipairs(entries(redis.call('XRANGE', lk, ARGV[9], '+'))) do table.insert(out, v) end
return out
"#;

/// ARGV[8..] user, id: the event (id, ts, kind, payload) or empty; -1 too many users.
const EVENT: &str = r#"
local user = ARGV[8]
if not touch(user, true) then return -1 end
local lk = P .. 'chat:log:' .. user
trim_log(lk)
return entries(redis.call('XRANGE', lk, ARGV[9] .. '-0', ARGV[9] .. '-0'))
"#;

/// Drops expired messages and forgets users idle for the retention with
/// no socket.
const SWEEP: &str = r#"
prune()
local k = P .. 'chat:users'
for _, user in ipairs(redis.call('ZRANGEBYSCORE', k, '-inf', '(' .. (now_ms - retention_ms),
    'LIMIT', 0, 1000)) do
  if redis.call('EXISTS', P .. 'chat:conn:' .. user) == 0 then redis.call('ZREM', k, user) end
end
return 0
"#;

struct Scripts {
    connect: Script,
    disconnect: Script,
    reap: Script,
    go_online: Script,
    contacts: Script,
    add: Script,
    message: Script,
    edit: Script,
    delete: Script,
    unmarked: Script,
    mark: Script,
    page: Script,
    chat: Script,
    replay: Script,
    event: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            connect: s(CONNECT),
            disconnect: s(DISCONNECT),
            reap: s(REAP),
            go_online: s(GO_ONLINE),
            contacts: s(CONTACTS),
            add: s(ADD),
            message: s(MESSAGE),
            edit: s(EDIT),
            delete: s(DELETE),
            unmarked: s(UNMARKED),
            mark: s(MARK),
            page: s(PAGE),
            chat: s(CHAT),
            replay: s(REPLAY),
            event: s(EVENT),
            sweep: s(SWEEP),
        }
    }
}

type Listeners = Arc<Mutex<Vec<mpsc::UnboundedSender<(String, LiveEvent)>>>>;

/// The chat of every instance on one Redis and key prefix.
pub struct RedisChat {
    conn: ConnectionManager,
    prefix: String,
    bounds: ChatBounds,
    /// This instance's name in presence (unique among the instances).
    instance: String,
    /// How long an instance counts as alive after its last renewal.
    member_ttl: Duration,
    scripts: Scripts,
    listeners: Listeners,
    /// Ends the subscriber task with the repo.
    _stop: DropGuard,
}

impl RedisChat {
    /// Connects, and subscribes to every user's channel (before this
    /// returns, so no later event is missed while the subscription holds).
    pub async fn connect(
        settings: &BackendSettings,
        bounds: ChatBounds,
    ) -> Result<Self, BackendError> {
        let (client, conn) = connect_manager(settings).await?;
        let instance: u64 = conn
            .clone()
            .incr(format!("{}chat:instance-seq", settings.key_prefix), 1)
            .await?;
        let pattern = format!("{}chat:user:*", settings.key_prefix);
        let channel = Channel::Pattern(pattern.clone());
        let pubsub = tokio::time::timeout(ANSWER_WITHIN, subscribe(&client, &channel))
            .await
            .map_err(|_| BackendError::NoAnswer(ANSWER_WITHIN))??;
        let listeners = Listeners::default();
        let stop = CancellationToken::new();
        let skip = pattern.len() - 1;
        let (feed, task_stop) = (listeners.clone(), stop.clone());
        tokio::spawn(async move {
            each_message(client, channel, pubsub, task_stop, "chat events", |msg| {
                let user = msg.get_channel_name().get(skip..).unwrap_or("").to_owned();
                match decode(msg.get_payload_bytes()) {
                    Some(event) => {
                        let mut list = feed.lock().unwrap_or_else(PoisonError::into_inner);
                        list.retain(|l| l.send((user.clone(), event.clone())).is_ok());
                    }
                    None => tracing::warn!(%user, "unreadable chat event"),
                }
                true
            })
            .await;
        });
        Ok(Self {
            conn,
            prefix: settings.key_prefix.clone(),
            bounds,
            instance: instance.to_string(),
            member_ttl: settings.member_ttl.max(Duration::from_millis(30)),
            scripts: Scripts::new(),
            listeners,
            _stop: stop.drop_guard(),
        })
    }

    /// A script call with the prefix, the time and the bounds.
    fn call<'s>(&self, script: &'s Script, now: ChatNow) -> ScriptInvocation<'s> {
        let b = &self.bounds;
        let mut call = script.key(&self.prefix);
        call.arg(now.unix_ms)
            .arg(now.unix)
            .arg(u64::try_from(b.retention.as_millis()).unwrap_or(u64::MAX))
            .arg(b.max_events_per_user)
            .arg(b.max_messages_per_chat)
            .arg(b.max_messages)
            .arg(b.max_users);
        call
    }

    fn member_ttl_ms(&self) -> u64 {
        u64::try_from(self.member_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, ChatRepoError> {
        let mut conn = self.conn.clone();
        Ok(call.invoke_async(&mut conn).await?)
    }
}

fn add_drafts(call: &mut ScriptInvocation<'_>, drafts: &[EventDraft]) {
    call.arg(drafts.len());
    for d in drafts {
        call.arg(&d.user).arg(&d.kind).arg(&d.payload);
    }
}

/// A published event: `N {id} {ts} {kind}\n{payload}` or `T\n{frame}`.
fn decode(message: &[u8]) -> Option<LiveEvent> {
    let text = std::str::from_utf8(message).ok()?;
    let (head, body) = text.split_once('\n')?;
    if head == "T" {
        return Some(LiveEvent::Transient(body.to_owned()));
    }
    let mut parts = head.strip_prefix("N ")?.splitn(3, ' ');
    let id = parts.next()?.parse().ok()?;
    let timestamp = parts.next()?.parse().ok()?;
    let kind = parts.next()?.to_owned();
    Some(LiveEvent::Numbered(EventRow {
        id,
        timestamp,
        kind,
        payload: body.to_owned(),
    }))
}

/// A message's fields as the scripts return them.
fn message_row(f: Vec<Option<String>>) -> Result<MessageRow, ChatRepoError> {
    let bad = || BackendError::BadRecord(format!("chat message: {f:?}"));
    let text = |i: usize| f.get(i).cloned().flatten().unwrap_or_default();
    let num = |i: usize| {
        f.get(i)
            .cloned()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok(MessageRow {
        id: num(0).ok_or_else(bad)?,
        from: text(1),
        to: text(2),
        text: text(3),
        content: text(4),
        created: num(5).unwrap_or(0),
        updated: num(6),
        delivered: num(7),
        read: num(8),
    })
}

/// A script's flat list of events: id, ts, kind, payload each.
fn event_rows(values: &[redis::Value]) -> Result<Vec<EventRow>, ChatRepoError> {
    let bad = |what: &str| BackendError::BadRecord(format!("chat event: {what}"));
    values
        .chunks(4)
        .map(|c| {
            let s = |v: &redis::Value| -> Result<String, ChatRepoError> {
                Ok(redis::from_redis_value::<String>(v)?)
            };
            let [id, ts, kind, payload] = c else {
                return Err(bad("an incomplete entry").into());
            };
            Ok(EventRow {
                id: s(id)?.parse().map_err(|_| bad("id"))?,
                timestamp: s(ts)?.parse().map_err(|_| bad("timestamp"))?,
                kind: s(kind)?,
                payload: s(payload)?,
            })
        })
        .collect()
}

fn field(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Delivered => "delivered",
        MarkKind::Read => "read",
    }
}

impl ChatRepo for RedisChat {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn listen(&self) -> LiveFeed {
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    fn connect<'a>(&'a self, user: &'a str, now: ChatNow) -> ChatResult<'a, bool> {
        async move {
            let mut call = self.call(&self.scripts.connect, now);
            call.arg(user).arg(&self.instance).arg(self.member_ttl_ms());
            match self.run::<i64>(&call).await? {
                -1 => Err(ChatRepoError::TooManyUsers(self.bounds.max_users)),
                n => Ok(n == 1),
            }
        }
        .boxed()
    }

    fn disconnect<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        async move {
            let mut call = self.call(&self.scripts.disconnect, ChatNow::current());
            call.arg(user).arg(&self.instance);
            Ok(self.run::<i64>(&call).await? == 1)
        }
        .boxed()
    }

    fn reap_every(&self) -> Option<Duration> {
        Some(self.member_ttl / 3)
    }

    fn reap(&self) -> ChatResult<'_, Vec<String>> {
        async move {
            let mut call = self.call(&self.scripts.reap, ChatNow::current());
            call.arg(&self.instance).arg(self.member_ttl_ms());
            self.run(&call).await
        }
        .boxed()
    }

    fn go_offline<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        async move {
            let mut conn = self.conn.clone();
            let gone: i64 = conn
                .del(format!("{}chat:online:{user}", self.prefix))
                .await?;
            Ok(gone == 1)
        }
        .boxed()
    }

    fn go_online<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        async move {
            let mut call = self.call(&self.scripts.go_online, ChatNow::current());
            call.arg(user);
            Ok(self.run::<i64>(&call).await? == 1)
        }
        .boxed()
    }

    fn contacts<'a>(&'a self, user: &'a str, now: ChatNow) -> ChatResult<'a, Vec<String>> {
        async move {
            let mut call = self.call(&self.scripts.contacts, now);
            call.arg(user);
            let mut list: Vec<String> = self.run(&call).await?;
            list.sort();
            Ok(list)
        }
        .boxed()
    }

    fn send_transient<'a>(&'a self, user: &'a str, frame: &'a str) -> ChatResult<'a, ()> {
        async move {
            let mut conn = self.conn.clone();
            let channel = format!("{}chat:user:{user}", self.prefix);
            let _: i64 = conn.publish(channel, format!("T\n{frame}")).await?;
            Ok(())
        }
        .boxed()
    }

    fn next_message_id(&self) -> ChatResult<'_, u64> {
        async move {
            let key = format!("{}chat:mid", self.prefix);
            let keep = self.bounds.retention.as_secs().saturating_mul(2).max(60);
            let mut conn = self.conn.clone();
            let (id,): (u64,) = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .expire(&key, i64::try_from(keep).unwrap_or(i64::MAX))
                .ignore()
                .query_async(&mut conn)
                .await?;
            Ok(id)
        }
        .boxed()
    }

    fn add_message<'a>(
        &'a self,
        row: &'a MessageRow,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, ()> {
        async move {
            let mut call = self.call(&self.scripts.add, now);
            call.arg(row.id)
                .arg(&row.from)
                .arg(&row.to)
                .arg(&row.text)
                .arg(&row.content)
                .arg(row.created);
            add_drafts(&mut call, events);
            match self.run::<i64>(&call).await? {
                -1 => Err(ChatRepoError::TooManyUsers(self.bounds.max_users)),
                _ => Ok(()),
            }
        }
        .boxed()
    }

    fn message(&self, id: u64, now: ChatNow) -> ChatResult<'_, Option<MessageRow>> {
        async move {
            let mut call = self.call(&self.scripts.message, now);
            call.arg(id);
            let fields: Option<Vec<Option<String>>> = self.run(&call).await?;
            fields.map(message_row).transpose()
        }
        .boxed()
    }

    fn edit<'a>(
        &'a self,
        id: u64,
        text: &'a str,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool> {
        async move {
            let mut call = self.call(&self.scripts.edit, now);
            call.arg(id).arg(text);
            add_drafts(&mut call, events);
            Ok(self.run::<i64>(&call).await? == 1)
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        id: u64,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool> {
        async move {
            let mut call = self.call(&self.scripts.delete, now);
            call.arg(id);
            add_drafts(&mut call, events);
            Ok(self.run::<i64>(&call).await? == 1)
        }
        .boxed()
    }

    fn unmarked<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        upto: u64,
        kind: MarkKind,
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>> {
        async move {
            let mut call = self.call(&self.scripts.unmarked, now);
            call.arg(reader).arg(author).arg(upto).arg(field(kind));
            self.run(&call).await
        }
        .boxed()
    }

    fn mark<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        kind: MarkKind,
        marks: &'a [(u64, Vec<EventDraft>)],
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>> {
        async move {
            let mut call = self.call(&self.scripts.mark, now);
            call.arg(reader)
                .arg(author)
                .arg(field(kind))
                .arg(marks.len());
            for (id, drafts) in marks {
                call.arg(*id);
                add_drafts(&mut call, drafts);
            }
            self.run(&call).await
        }
        .boxed()
    }

    fn page<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        last: Option<u64>,
        count: usize,
        now: ChatNow,
    ) -> ChatResult<'a, (Vec<MessageRow>, bool)> {
        async move {
            let mut call = self.call(&self.scripts.page, now);
            let last = last.map_or_else(|| "+inf".to_owned(), |l| l.to_string());
            call.arg(a).arg(b).arg(last).arg(count);
            let reply: Vec<redis::Value> = self.run(&call).await?;
            let mut items = reply.into_iter();
            let has_more = items
                .next()
                .map(|v| redis::from_redis_value::<i64>(&v))
                .transpose()?
                == Some(1);
            let rows = items
                .map(|v| message_row(redis::from_redis_value(&v)?))
                .collect::<Result<Vec<_>, ChatRepoError>>()?;
            Ok((rows, has_more))
        }
        .boxed()
    }

    fn chat<'a>(&'a self, user: &'a str, other: &'a str, now: ChatNow) -> ChatResult<'a, ChatRow> {
        async move {
            let mut call = self.call(&self.scripts.chat, now);
            call.arg(user).arg(other);
            let reply: Vec<redis::Value> = self.run(&call).await?;
            let mut items = reply.into_iter();
            let unread = items
                .next()
                .map(|v| redis::from_redis_value::<usize>(&v))
                .transpose()?
                .unwrap_or(0);
            let last = items
                .next()
                .map(|v| message_row(redis::from_redis_value(&v)?))
                .transpose()?;
            Ok(ChatRow { last, unread })
        }
        .boxed()
    }

    fn replay<'a>(&'a self, user: &'a str, after: u64, now: ChatNow) -> ChatResult<'a, Replayed> {
        async move {
            let mut call = self.call(&self.scripts.replay, now);
            // Entries after `after` (exclusive); ids are `N-0`.
            call.arg(user)
                .arg(format!("({}-0", after.min(u64::MAX - 1)));
            let reply: redis::Value = self.run(&call).await?;
            let items: Vec<redis::Value> = match reply {
                redis::Value::Int(-1) => {
                    return Err(ChatRepoError::TooManyUsers(self.bounds.max_users))
                }
                other => redis::from_redis_value(&other)?,
            };
            let num = |i: usize| -> Result<u64, ChatRepoError> {
                let v = items
                    .get(i)
                    .ok_or_else(|| BackendError::BadRecord("chat replay".into()))?;
                Ok(redis::from_redis_value(v)?)
            };
            Ok(Replayed {
                last_event_id: num(0)?,
                first_kept: num(1)?,
                events: event_rows(items.get(2..).unwrap_or_default())?,
            })
        }
        .boxed()
    }

    fn event<'a>(
        &'a self,
        user: &'a str,
        id: u64,
        now: ChatNow,
    ) -> ChatResult<'a, Option<EventRow>> {
        async move {
            let mut call = self.call(&self.scripts.event, now);
            call.arg(user).arg(id);
            let reply: redis::Value = self.run(&call).await?;
            let items: Vec<redis::Value> = match reply {
                redis::Value::Int(-1) => {
                    return Err(ChatRepoError::TooManyUsers(self.bounds.max_users))
                }
                other => redis::from_redis_value(&other)?,
            };
            Ok(event_rows(&items)?.into_iter().next())
        }
        .boxed()
    }

    fn sweep(&self, now: ChatNow) -> ChatResult<'_, ()> {
        async move {
            let call = self.call(&self.scripts.sweep, now);
            self.run::<i64>(&call).await?;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_events_decode() {
        assert_eq!(
            decode(b"N 12 1700000000 dlvrd\n{\"chatId\":\"a b\"}"),
            Some(LiveEvent::Numbered(EventRow {
                id: 12,
                timestamp: 1_700_000_000,
                kind: "dlvrd".into(),
                payload: "{\"chatId\":\"a b\"}".into(),
            }))
        );
        assert_eq!(
            decode(b"T\n{\"x\":\"\\n\"}"),
            Some(LiveEvent::Transient("{\"x\":\"\\n\"}".into()))
        );
        assert_eq!(decode(b"N x 1 new\n{}"), None);
        assert_eq!(decode(b"no line"), None);
    }
}
