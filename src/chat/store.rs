//! The chat's state: messages, per-user event logs with their ids, contacts
//! and presence counts. Owns every rule of who may do what to a message,
//! retention and the count bounds. It is plain data behind the caller's
//! lock: no sockets, no I/O, no clock (callers pass `now`), so every rule is
//! unit-tested here. Each state change returns the events it produced, in
//! the order the caller must deliver them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::attachments::Attachment;
use super::error::ChatError;
use super::events::{
    EventPayload, EventType, HistoryQuery, MessagesQuery, Receipt, Target, UserId,
};
use super::views::{ChatSummary, MessageRecord, MessageStatus};
use super::ImageRef;
use crate::config::ChatSettings;

/// Most messages one `getMessages` answers with.
pub const MAX_MESSAGES_PER_ANSWER: usize = 100;
/// Most events one `getEvents` answers with.
pub const MAX_EVENTS_PER_ANSWER: usize = 100;

/// A point in time, as the store needs it: monotonic for retention, Unix
/// seconds for the wire.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}

impl Now {
    pub fn current() -> Self {
        Self {
            at: Instant::now(),
            unix: super::events::unix_now(),
        }
    }
}

/// A numbered event in one user's log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// This user's event id: 1, 2, 3... with no gaps.
    pub id: u64,
    pub kind: EventType,
    pub timestamp: u64,
    pub payload: EventPayload,
    at: Instant,
}

impl StoredEvent {
    /// The event as sent.
    pub fn frame(&self) -> String {
        super::events::numbered_event(self.id, self.timestamp, self.kind, &self.payload)
    }

    /// The event as a JSON value, as `getEvent` and `getEvents` answer it.
    pub fn value(&self) -> serde_json::Value {
        super::events::numbered_event_value(self.id, self.timestamp, self.kind, &self.payload)
    }
}

/// An event to hand to a user's live sockets.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub user: UserId,
    pub event: Arc<StoredEvent>,
}

/// What `subscribe` answers and replays.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The user's latest event id.
    pub last_event_id: u64,
    /// Kept events after the client's `lastEventId`, in order.
    pub events: Vec<Arc<StoredEvent>>,
    /// Some events the client missed are gone (retention or count bound),
    /// or the client's id is unknown here: it should reload history.
    pub truncated: bool,
}

/// A message as `history` returns it, from the asker's point of view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: u64,
    pub chat_id: UserId,
    pub from: UserId,
    pub message: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    pub timestamp: u64,
    pub edited: bool,
    pub delivered: bool,
    pub read: bool,
}

/// A page of `history`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub chat_id: UserId,
    pub messages: Vec<MessageView>,
    /// Older messages exist (ask again with `before` = the first id here).
    pub has_more: bool,
}

/// The bounds the store enforces, from `chat.*` settings.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub retention: Duration,
    pub max_events_per_user: usize,
    pub max_messages_per_chat: usize,
    pub max_messages: usize,
    pub max_message_len: usize,
    pub max_users: usize,
    pub max_user_id_len: usize,
    pub default_history_limit: usize,
    pub max_history_limit: usize,
}

impl From<&ChatSettings> for StoreLimits {
    fn from(s: &ChatSettings) -> Self {
        Self {
            retention: s.retention,
            max_events_per_user: s.max_events_per_user.max(1),
            max_messages_per_chat: s.max_messages_per_chat.max(1),
            max_messages: s.max_messages.max(1),
            max_message_len: s.max_message_len,
            max_users: s.max_users.max(1),
            max_user_id_len: s.max_user_id_len.max(1),
            default_history_limit: s.default_history_limit.clamp(1, s.max_history_limit.max(1)),
            max_history_limit: s.max_history_limit.max(1),
        }
    }
}

#[derive(Debug)]
struct Message {
    from: UserId,
    to: UserId,
    text: Arc<str>,
    image: Option<ImageRef>,
    attachments: Option<Arc<[Attachment]>>,
    at: Instant,
    /// Created, in Unix seconds.
    timestamp: u64,
    /// Last edited.
    updated: Option<u64>,
    /// Marked delivered by the recipient.
    delivered: Option<u64>,
    /// Marked read by the recipient.
    read: Option<u64>,
}

impl Message {
    /// The other user of the message's chat, as `user` sees it.
    fn other(&self, user: &str) -> &str {
        if self.from == user {
            &self.to
        } else {
            &self.from
        }
    }

    fn record(&self, id: u64) -> MessageRecord {
        MessageRecord {
            message_id: id,
            message: (!self.text.is_empty()).then(|| self.text.clone()),
            sender: self.from.clone(),
            attachments: self.attachments.clone(),
            image: self.image.clone(),
            dlvrd: self.delivered,
            read: self.read,
            created_at: self.timestamp,
            updated_at: self.updated,
        }
    }
}

/// A direct chat's key: its two users, ordered.
type ChatKey = (UserId, UserId);

fn chat_key(a: &str, b: &str) -> ChatKey {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

#[derive(Debug, Default)]
struct UserLog {
    last_event_id: u64,
    events: VecDeque<Arc<StoredEvent>>,
    /// Users with a chat (kept messages) with this one.
    contacts: HashSet<UserId>,
    /// Open sockets.
    connections: usize,
    /// Shown online to contacts: from a socket opening (or a `subscribe`)
    /// until the last socket closes or the client says `offline`.
    online: bool,
}

/// All chat state. Callers hold it behind one lock so that event ids and
/// delivery order agree.
#[derive(Debug)]
pub struct ChatStore {
    limits: StoreLimits,
    users: HashMap<UserId, UserLog>,
    /// Every kept message by id; ids grow with time, so the first is the oldest.
    messages: BTreeMap<u64, Message>,
    chats: HashMap<ChatKey, BTreeSet<u64>>,
    last_message_id: u64,
}

impl ChatStore {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            users: HashMap::new(),
            messages: BTreeMap::new(),
            chats: HashMap::new(),
            last_message_id: 0,
        }
    }

    /// A socket of `user` opened. True when the user comes online with it
    /// (its first socket, or the first since it said it went offline).
    pub fn connect(&mut self, user: &str) -> Result<bool, ChatError> {
        let log = self.user_mut(user)?;
        log.connections += 1;
        Ok(!std::mem::replace(&mut log.online, true))
    }

    /// A socket of `user` closed. True when it was the last and the user
    /// was online (the user goes offline).
    pub fn disconnect(&mut self, user: &str) -> bool {
        match self.users.get_mut(user) {
            Some(log) if log.connections > 0 => {
                log.connections -= 1;
                log.connections == 0 && std::mem::replace(&mut log.online, false)
            }
            _ => false,
        }
    }

    /// The client event `offline`: the user shows offline while its sockets
    /// stay open. True when it was online.
    pub fn go_offline(&mut self, user: &str) -> bool {
        self.users
            .get_mut(user)
            .is_some_and(|log| std::mem::replace(&mut log.online, false))
    }

    /// `subscribe` makes a connected user online again. True when it was not.
    pub fn go_online(&mut self, user: &str) -> bool {
        self.users
            .get_mut(user)
            .is_some_and(|log| log.connections > 0 && !std::mem::replace(&mut log.online, true))
    }

    /// The users `user` has a chat with, sorted.
    pub fn contacts(&self, user: &str) -> Vec<UserId> {
        let mut list: Vec<UserId> = self
            .users
            .get(user)
            .map(|u| u.contacts.iter().cloned().collect())
            .unwrap_or_default();
        list.sort();
        list
    }

    /// The user's events after `last_event_id`.
    pub fn replay(
        &mut self,
        user: &str,
        last_event_id: u64,
        now: Now,
    ) -> Result<Replay, ChatError> {
        let retention = self.limits.retention;
        let log = self.user_mut(user)?;
        prune_events(log, now.at, retention);
        let events: Vec<Arc<StoredEvent>> = log
            .events
            .iter()
            .filter(|e| e.id > last_event_id)
            .cloned()
            .collect();
        let first_kept = log.events.front().map_or(log.last_event_id + 1, |e| e.id);
        Ok(Replay {
            last_event_id: log.last_event_id,
            truncated: last_event_id > log.last_event_id || last_event_id + 1 < first_kept,
            events,
        })
    }

    /// Stores a new message from `from`; returns its id and the `new`
    /// events (to the recipient, then to the author's own log).
    pub fn new_message(
        &mut self,
        from: &str,
        to: &str,
        text: String,
        image: Option<ImageRef>,
        attachments: Vec<Attachment>,
        now: Now,
    ) -> Result<(u64, Vec<Delivery>), ChatError> {
        self.check_chat_id(from, to)?;
        self.check_text(&text)?;
        if text.is_empty() && image.is_none() && attachments.is_empty() {
            return Err(ChatError::InvalidRequest(
                "a message needs a non-empty message text, an image or attachments".into(),
            ));
        }
        let attachments: Option<Arc<[Attachment]>> =
            (!attachments.is_empty()).then(|| attachments.into());
        self.user_mut(from)?;
        self.user_mut(to)?;
        self.prune_messages(now.at);
        self.last_message_id += 1;
        let id = self.last_message_id;
        let text: Arc<str> = text.into();
        self.messages.insert(
            id,
            Message {
                from: from.to_owned(),
                to: to.to_owned(),
                text: text.clone(),
                image: image.clone(),
                attachments: attachments.clone(),
                at: now.at,
                timestamp: now.unix,
                updated: None,
                delivered: None,
                read: None,
            },
        );
        let key = chat_key(from, to);
        let ids = self.chats.entry(key).or_default();
        ids.insert(id);
        let over = ids.len().saturating_sub(self.limits.max_messages_per_chat);
        let evicted: Vec<u64> = ids.iter().take(over).copied().collect();
        for old in evicted {
            self.remove_message(old);
        }
        self.trim_to_max_messages();
        self.link(from, to);
        let payload = |chat_id: &str| EventPayload {
            chat_id: chat_id.to_owned(),
            user_id: Some(from.to_owned()),
            message_id: Some(id),
            message: Some(text.clone()),
            attachments: attachments.clone(),
            from: Some(from.to_owned()),
            image: image.clone(),
            ..EventPayload::default()
        };
        let out = vec![
            self.push_event(to, EventType::New, payload(from), now),
            self.push_event(from, EventType::New, payload(to), now),
        ];
        Ok((id, out))
    }

    /// Replaces a message's text; only its author may. `chat_id`, when
    /// given, must be the message's chat.
    pub fn edit(
        &mut self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
        text: String,
        now: Now,
    ) -> Result<Vec<Delivery>, ChatError> {
        self.check_text(&text)?;
        let m = self.message_mut(message_id, now.at)?;
        if m.from != user {
            return Err(ChatError::Forbidden(
                "only the author of a message may edit it",
            ));
        }
        if chat_id.is_some_and(|c| c != m.to) {
            return Err(ChatError::UnknownMessage(message_id));
        }
        if text.is_empty() && m.image.is_none() && m.attachments.is_none() {
            return Err(ChatError::InvalidRequest(
                "a message without an image or attachments needs a non-empty message text".into(),
            ));
        }
        m.text = text.into();
        m.updated = Some(now.unix);
        let (to, text, image, attachments) = (
            m.to.clone(),
            m.text.clone(),
            m.image.clone(),
            m.attachments.clone(),
        );
        let payload = |chat_id: &str| EventPayload {
            chat_id: chat_id.to_owned(),
            message_id: Some(message_id),
            message: Some(text.clone()),
            attachments: attachments.clone(),
            from: Some(user.to_owned()),
            image: image.clone(),
            ..EventPayload::default()
        };
        Ok(vec![
            self.push_event(&to, EventType::Edit, payload(user), now),
            self.push_event(user, EventType::Edit, payload(&to), now),
        ])
    }

    /// Deletes a message; only its author may. `chat_id`, when given, must
    /// be the message's chat.
    pub fn delete(
        &mut self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
        now: Now,
    ) -> Result<Vec<Delivery>, ChatError> {
        let m = self.message_mut(message_id, now.at)?;
        if m.from != user {
            return Err(ChatError::Forbidden(
                "only the author of a message may delete it",
            ));
        }
        if chat_id.is_some_and(|c| c != m.to) {
            return Err(ChatError::UnknownMessage(message_id));
        }
        let to = m.to.clone();
        self.remove_message(message_id);
        Ok(self.both(EventType::Delete, message_id, user, &to, None, now))
    }

    /// Marks delivered or read every message of the chat from the other
    /// user up to `message_id` that is not marked yet; each mark is one
    /// event for the author (and one for the marking user's own log). Only
    /// the recipient may mark a message: `message_id`, when kept, must be
    /// one the user received (in chat `chat_id`, when given); without
    /// `chat_id` it must be kept. Read implies delivered.
    pub fn mark(
        &mut self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
        receipt: Receipt,
        now: Now,
    ) -> Result<Vec<Delivery>, ChatError> {
        self.prune_messages(now.at);
        let author = match (self.messages.get(&message_id), chat_id) {
            (Some(m), _) if m.to != user => {
                return Err(ChatError::Forbidden(
                    "only the recipient of a message may mark it delivered or read",
                ))
            }
            (Some(m), Some(c)) if c != m.from => return Err(ChatError::UnknownMessage(message_id)),
            (Some(m), _) => m.from.clone(),
            (None, Some(c)) => {
                self.check_chat_id(user, c)?;
                c.to_owned()
            }
            (None, None) => return Err(ChatError::UnknownMessage(message_id)),
        };
        let candidates: Vec<u64> = self
            .chats
            .get(&chat_key(user, &author))
            .map(|ids| ids.range(..=message_id).copied().collect())
            .unwrap_or_default();
        let mut marked = Vec::new();
        for id in candidates {
            let Some(m) = self.messages.get_mut(&id) else {
                continue;
            };
            if m.from != author {
                continue;
            }
            let slot = match receipt {
                Receipt::Delivered => &mut m.delivered,
                Receipt::Read => &mut m.read,
            };
            if slot.is_some() {
                continue;
            }
            *slot = Some(now.unix);
            m.delivered.get_or_insert(now.unix);
            marked.push(id);
        }
        let kind = match receipt {
            Receipt::Delivered => EventType::Delivered,
            Receipt::Read => EventType::Read,
        };
        let mut out = Vec::with_capacity(marked.len() * 2);
        for id in marked {
            out.extend(self.both(kind, id, user, &author, Some(now.unix), now));
        }
        Ok(out)
    }

    /// A page of the chat between `user` and `query.chat_id`, oldest first.
    pub fn history(
        &mut self,
        user: &str,
        query: &HistoryQuery,
        now: Now,
    ) -> Result<HistoryPage, ChatError> {
        let limit = match query.limit {
            None => self.limits.default_history_limit,
            Some(0) => return Err(ChatError::InvalidRequest("limit must be at least 1".into())),
            Some(n) => n.min(self.limits.max_history_limit),
        };
        let (page, has_more) = self.page(user, &query.chat_id, query.last_id(), limit, now)?;
        let messages = page
            .into_iter()
            .filter_map(|id| self.messages.get(&id).map(|m| (id, m)))
            .map(|(id, m)| MessageView {
                message_id: id,
                chat_id: query.chat_id.clone(),
                from: m.from.clone(),
                message: m.text.clone(),
                image: m.image.clone(),
                timestamp: m.timestamp,
                edited: m.updated.is_some(),
                delivered: m.delivered.is_some(),
                read: m.read.is_some(),
            })
            .collect();
        Ok(HistoryPage {
            chat_id: query.chat_id.clone(),
            messages,
            has_more,
        })
    }

    /// `getMessages`: the last `count` messages (1 to
    /// [`MAX_MESSAGES_PER_ANSWER`]; `chat.default_history_limit` when not
    /// given) with ids up to `endId`, oldest first.
    pub fn messages(
        &mut self,
        user: &str,
        query: &MessagesQuery,
        now: Now,
    ) -> Result<Vec<MessageRecord>, ChatError> {
        let count = match query.count {
            None => self
                .limits
                .default_history_limit
                .min(MAX_MESSAGES_PER_ANSWER),
            Some(n @ 1..=MAX_MESSAGES_PER_ANSWER) => n,
            Some(n) => {
                return Err(ChatError::InvalidRequest(format!(
                    "count must be 1 to {MAX_MESSAGES_PER_ANSWER}, not {n}"
                )))
            }
        };
        let (page, _) = self.page(user, &query.chat_id, query.end_id, count, now)?;
        Ok(page
            .into_iter()
            .filter_map(|id| self.messages.get(&id).map(|m| m.record(id)))
            .collect())
    }

    /// `getMessage`: one message of a chat of `user`'s.
    pub fn message(
        &mut self,
        user: &str,
        target: &Target,
        now: Now,
    ) -> Result<MessageRecord, ChatError> {
        self.prune_messages(now.at);
        let id = target.message_id;
        let m = self
            .messages
            .get(&id)
            .filter(|m| m.from == user || m.to == user)
            .filter(|m| target.chat_id.as_deref().is_none_or(|c| c == m.other(user)))
            .ok_or(ChatError::UnknownMessage(id))?;
        Ok(m.record(id))
    }

    /// `getChat`: the chat of `user` with `chat_id` (empty when no message
    /// is kept).
    pub fn chat(&mut self, user: &str, chat_id: &str, now: Now) -> Result<ChatSummary, ChatError> {
        self.check_chat_id(user, chat_id)?;
        self.prune_messages(now.at);
        Ok(self.summary(user, chat_id))
    }

    /// `getChats`: every chat of `user` with a kept message, the one with
    /// the newest message first.
    pub fn chats(&mut self, user: &str, now: Now) -> Vec<ChatSummary> {
        self.prune_messages(now.at);
        let mut list: Vec<ChatSummary> = self
            .contacts(user)
            .iter()
            .map(|other| self.summary(user, other))
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.last_id));
        list
    }

    /// `getEvent`: one kept event of `user`'s.
    pub fn event(
        &mut self,
        user: &str,
        event_id: u64,
        now: Now,
    ) -> Result<Arc<StoredEvent>, ChatError> {
        let retention = self.limits.retention;
        let log = self.user_mut(user)?;
        prune_events(log, now.at, retention);
        log.events
            .iter()
            .find(|e| e.id == event_id)
            .cloned()
            .ok_or(ChatError::UnknownEvent(event_id))
    }

    /// `getEvents`: the user's events after `from_event_id`, at most
    /// [`MAX_EVENTS_PER_ANSWER`], and only when none of them is gone.
    pub fn events_after(
        &mut self,
        user: &str,
        from_event_id: u64,
        now: Now,
    ) -> Result<Vec<Arc<StoredEvent>>, ChatError> {
        let replay = self.replay(user, from_event_id, now)?;
        if replay.truncated {
            return Err(ChatError::EventsGone(from_event_id));
        }
        if replay.events.len() > MAX_EVENTS_PER_ANSWER {
            return Err(ChatError::TooManyEvents {
                count: replay.events.len(),
                limit: MAX_EVENTS_PER_ANSWER,
            });
        }
        Ok(replay.events)
    }

    /// Checks that `user` may address `chat_id` (typing, history, new).
    pub fn check_chat_id(&self, user: &str, chat_id: &str) -> Result<(), ChatError> {
        super::events::validate_user_id(chat_id, self.limits.max_user_id_len, "chatId")?;
        if chat_id == user {
            return Err(ChatError::InvalidRequest(
                "chatId names the other user of a direct chat, not yourself".into(),
            ));
        }
        Ok(())
    }

    /// Drops expired events and messages, and forgets users with nothing
    /// kept and no socket. Run periodically so idle users do not hold memory.
    pub fn sweep(&mut self, now: Instant) {
        let retention = self.limits.retention;
        self.prune_messages(now);
        for log in self.users.values_mut() {
            prune_events(log, now, retention);
        }
        self.users
            .retain(|_, u| u.connections > 0 || !u.events.is_empty() || !u.contacts.is_empty());
    }

    /// Users currently tracked.
    #[cfg(test)]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Messages currently kept.
    #[cfg(test)]
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// The ids of the last `count` messages between `user` and `chat_id`
    /// up to `last` (inclusive), oldest first, and whether older ones exist.
    fn page(
        &mut self,
        user: &str,
        chat_id: &str,
        last: Option<u64>,
        count: usize,
        now: Now,
    ) -> Result<(Vec<u64>, bool), ChatError> {
        self.check_chat_id(user, chat_id)?;
        self.prune_messages(now.at);
        let Some(ids) = self.chats.get(&chat_key(user, chat_id)) else {
            return Ok((Vec::new(), false));
        };
        let mut older = ids.range(..=last.unwrap_or(u64::MAX)).rev();
        let mut page: Vec<u64> = older.by_ref().take(count).copied().collect();
        let has_more = older.next().is_some();
        page.reverse();
        Ok((page, has_more))
    }

    /// The chat of `user` with `other` as a Chat.
    fn summary(&self, user: &str, other: &str) -> ChatSummary {
        let mut summary = ChatSummary::empty(other);
        let Some(ids) = self.chats.get(&chat_key(user, other)) else {
            return summary;
        };
        let last = ids
            .last()
            .and_then(|id| self.messages.get(id).map(|m| (*id, m)));
        if let Some((id, m)) = last {
            summary.last_id = Some(id);
            summary.last_message_text = (!m.text.is_empty()).then(|| m.text.clone());
            summary.last_message_time = Some(m.timestamp);
            summary.last_message_author = Some(m.from.clone());
            summary.last_message_status = Some(match (m.delivered, m.read) {
                (_, Some(_)) => MessageStatus::Read,
                (Some(_), None) => MessageStatus::Unread,
                (None, None) => MessageStatus::Undelivered,
            });
        }
        summary.unread_count = ids
            .iter()
            .filter_map(|id| self.messages.get(id))
            .filter(|m| m.to == user && m.read.is_none())
            .count();
        summary
    }

    fn check_text(&self, text: &str) -> Result<(), ChatError> {
        if text.len() > self.limits.max_message_len {
            return Err(ChatError::MessageTooLong {
                len: text.len(),
                limit: self.limits.max_message_len,
            });
        }
        Ok(())
    }

    fn user_mut(&mut self, user: &str) -> Result<&mut UserLog, ChatError> {
        let (known, max) = (self.users.len(), self.limits.max_users);
        match self.users.entry(user.to_owned()) {
            Entry::Occupied(log) => Ok(log.into_mut()),
            Entry::Vacant(_) if known >= max => Err(ChatError::TooManyUsers(max)),
            Entry::Vacant(slot) => Ok(slot.insert(UserLog::default())),
        }
    }

    fn message_mut(&mut self, id: u64, now: Instant) -> Result<&mut Message, ChatError> {
        self.prune_messages(now);
        self.messages
            .get_mut(&id)
            .ok_or(ChatError::UnknownMessage(id))
    }

    /// The same event to both users of a chat: `actor` did it, `other` is
    /// the other party. The other party's copy comes first.
    fn both(
        &mut self,
        kind: EventType,
        message_id: u64,
        actor: &str,
        other: &str,
        timestamp: Option<u64>,
        now: Now,
    ) -> Vec<Delivery> {
        let payload = |chat_id: &str| EventPayload {
            chat_id: chat_id.to_owned(),
            message_id: Some(message_id),
            timestamp,
            from: Some(actor.to_owned()),
            ..EventPayload::default()
        };
        vec![
            self.push_event(other, kind, payload(actor), now),
            self.push_event(actor, kind, payload(other), now),
        ]
    }

    /// Appends to a user's log (the user exists: every caller made sure).
    fn push_event(
        &mut self,
        user: &str,
        kind: EventType,
        payload: EventPayload,
        now: Now,
    ) -> Delivery {
        let retention = self.limits.retention;
        let max = self.limits.max_events_per_user;
        let log = self.users.entry(user.to_owned()).or_default();
        log.last_event_id += 1;
        let event = Arc::new(StoredEvent {
            id: log.last_event_id,
            kind,
            timestamp: now.unix,
            payload,
            at: now.at,
        });
        log.events.push_back(event.clone());
        while log.events.len() > max {
            log.events.pop_front();
        }
        prune_events(log, now.at, retention);
        Delivery {
            user: user.to_owned(),
            event,
        }
    }

    fn link(&mut self, a: &str, b: &str) {
        if let Some(u) = self.users.get_mut(a) {
            u.contacts.insert(b.to_owned());
        }
        if let Some(u) = self.users.get_mut(b) {
            u.contacts.insert(a.to_owned());
        }
    }

    fn prune_messages(&mut self, now: Instant) {
        while let Some((&id, m)) = self.messages.first_key_value() {
            if now.saturating_duration_since(m.at) <= self.limits.retention {
                break;
            }
            self.remove_message(id);
        }
    }

    fn trim_to_max_messages(&mut self) {
        while self.messages.len() > self.limits.max_messages {
            let Some((&id, _)) = self.messages.first_key_value() else {
                break;
            };
            self.remove_message(id);
        }
    }

    /// Removes a message; a chat left empty unlinks its two users.
    fn remove_message(&mut self, id: u64) {
        let Some(m) = self.messages.remove(&id) else {
            return;
        };
        let key = chat_key(&m.from, &m.to);
        let Some(ids) = self.chats.get_mut(&key) else {
            return;
        };
        ids.remove(&id);
        if ids.is_empty() {
            self.chats.remove(&key);
            if let Some(u) = self.users.get_mut(&m.from) {
                u.contacts.remove(&m.to);
            }
            if let Some(u) = self.users.get_mut(&m.to) {
                u.contacts.remove(&m.from);
            }
        }
    }
}

fn prune_events(log: &mut UserLog, now: Instant, retention: Duration) {
    while log
        .events
        .front()
        .is_some_and(|e| now.saturating_duration_since(e.at) > retention)
    {
        log.events.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StoreLimits {
        StoreLimits::from(&ChatSettings::default())
    }

    fn at(base: Instant, secs: u64) -> Now {
        Now {
            at: base + Duration::from_secs(secs),
            unix: 1_700_000_000 + secs,
        }
    }

    fn ids(d: &[Delivery]) -> Vec<(&str, u64, EventType)> {
        d.iter()
            .map(|d| (d.user.as_str(), d.event.id, d.event.kind))
            .collect()
    }

    #[test]
    fn a_new_message_numbers_an_event_for_each_user_of_the_chat() {
        let mut s = ChatStore::new(limits());
        let t = Instant::now();
        let (m1, out) = s
            .new_message("a", "b", "hi".into(), None, vec![], at(t, 0))
            .unwrap();
        assert_eq!(
            ids(&out),
            [("b", 1, EventType::New), ("a", 1, EventType::New)]
        );
        assert_eq!(out[0].event.payload.chat_id, "a", "b sees the chat as a");
        assert_eq!(out[1].event.payload.chat_id, "b", "a sees the chat as b");
        assert_eq!(out[0].event.payload.from.as_deref(), Some("a"));
        let (m2, out) = s
            .new_message("b", "a", "yo".into(), None, vec![], at(t, 1))
            .unwrap();
        assert!(m2 > m1);
        assert_eq!(
            ids(&out),
            [("a", 2, EventType::New), ("b", 2, EventType::New)]
        );
        assert_eq!(s.contacts("a"), ["b"]);
    }

    #[test]
    fn only_the_author_edits_or_deletes_and_only_the_recipient_marks() {
        let mut s = ChatStore::new(limits());
        let t = Instant::now();
        let (m, _) = s
            .new_message("a", "b", "hi".into(), None, vec![], at(t, 0))
            .unwrap();
        let code = |r: Result<Vec<Delivery>, ChatError>| r.unwrap_err().code();
        assert_eq!(
            code(s.edit("b", None, m, "x".into(), at(t, 1))),
            "forbidden"
        );
        assert_eq!(code(s.delete("b", None, m, at(t, 1))), "forbidden");
        assert_eq!(
            code(s.mark("a", None, m, Receipt::Read, at(t, 1))),
            "forbidden"
        );
        assert_eq!(
            code(s.mark("c", None, m, Receipt::Delivered, at(t, 1))),
            "forbidden"
        );
        assert_eq!(
            code(s.edit("a", None, 999, "x".into(), at(t, 1))),
            "unknown_message"
        );

        let out = s.mark("b", None, m, Receipt::Delivered, at(t, 1)).unwrap();
        assert_eq!(
            ids(&out),
            [
                ("a", 2, EventType::Delivered),
                ("b", 2, EventType::Delivered)
            ]
        );
        assert!(
            s.mark("b", None, m, Receipt::Delivered, at(t, 2))
                .unwrap()
                .is_empty(),
            "no change, no event"
        );
        let out = s.edit("a", None, m, "hello".into(), at(t, 3)).unwrap();
        assert_eq!(out[0].event.payload.message.as_deref(), Some("hello"));
        let out = s.delete("a", None, m, at(t, 4)).unwrap();
        assert_eq!(
            ids(&out),
            [("b", 4, EventType::Delete), ("a", 4, EventType::Delete)]
        );
        assert_eq!(
            code(s.mark("b", None, m, Receipt::Read, at(t, 5))),
            "unknown_message"
        );
        assert!(
            s.contacts("a").is_empty(),
            "an emptied chat unlinks its users"
        );
    }

    #[test]
    fn replay_returns_what_follows_the_given_id_and_flags_what_is_gone() {
        let mut l = limits();
        l.max_events_per_user = 3;
        let mut s = ChatStore::new(l);
        let t = Instant::now();
        for i in 0..5 {
            s.new_message("a", "b", format!("m{i}"), None, vec![], at(t, i))
                .unwrap();
        }
        let r = s.replay("b", 3, at(t, 5)).unwrap();
        assert_eq!(r.last_event_id, 5);
        assert_eq!(r.events.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 5]);
        assert!(!r.truncated);
        let r = s.replay("b", 1, at(t, 5)).unwrap();
        assert_eq!(r.events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(r.truncated, "event 2 was dropped by the count bound");
        assert!(
            s.replay("b", 9, at(t, 5)).unwrap().truncated,
            "an id from the future"
        );
        let r = s.replay("b", 5, at(t, 5)).unwrap();
        assert!(r.events.is_empty() && !r.truncated);
    }

    #[test]
    fn retention_drops_old_events_and_messages_and_forgets_idle_users() {
        let mut l = limits();
        l.retention = Duration::from_secs(60);
        let mut s = ChatStore::new(l);
        let t = Instant::now();
        let (old, _) = s
            .new_message("a", "b", "old".into(), None, vec![], at(t, 0))
            .unwrap();
        let (new, _) = s
            .new_message("a", "b", "new".into(), None, vec![], at(t, 50))
            .unwrap();
        let r = s.replay("b", 0, at(t, 100)).unwrap();
        assert_eq!(r.events.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
        assert!(r.truncated);
        let q = HistoryQuery {
            chat_id: "a".into(),
            before: None,
            end_id: None,
            limit: None,
        };
        let page = s.history("b", &q, at(t, 100)).unwrap();
        assert_eq!(
            page.messages
                .iter()
                .map(|m| m.message_id)
                .collect::<Vec<_>>(),
            [new]
        );
        assert_eq!(
            s.delete("a", None, old, at(t, 100)).unwrap_err().code(),
            "unknown_message"
        );
        s.sweep(t + Duration::from_secs(200));
        assert_eq!((s.message_count(), s.user_count()), (0, 0));
    }

    #[test]
    fn counts_are_bounded_per_chat_overall_and_in_users() {
        let mut l = limits();
        l.max_messages_per_chat = 2;
        l.max_messages = 3;
        l.max_users = 3;
        let mut s = ChatStore::new(l);
        let t = Instant::now();
        for i in 0..4 {
            s.new_message("a", "b", format!("{i}"), None, vec![], at(t, i))
                .unwrap();
        }
        let q = |c: &str| HistoryQuery {
            chat_id: c.into(),
            before: None,
            end_id: None,
            limit: None,
        };
        let texts = |p: HistoryPage| {
            p.messages
                .iter()
                .map(|m| m.message.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            texts(s.history("a", &q("b"), at(t, 5)).unwrap()),
            ["2", "3"]
        );
        s.new_message("a", "c", "x".into(), None, vec![], at(t, 6))
            .unwrap();
        s.new_message("a", "c", "y".into(), None, vec![], at(t, 7))
            .unwrap();
        assert_eq!(s.message_count(), 3);
        assert_eq!(texts(s.history("a", &q("b"), at(t, 8)).unwrap()), ["3"]);
        let err = s
            .new_message("a", "d", "z".into(), None, vec![], at(t, 9))
            .unwrap_err();
        assert_eq!(err.code(), "too_many_users");
    }

    #[test]
    fn history_pages_backwards_oldest_first() {
        let mut s = ChatStore::new(limits());
        let t = Instant::now();
        let ids: Vec<u64> = (0..5)
            .map(|i| {
                s.new_message("a", "b", format!("{i}"), None, vec![], at(t, i))
                    .unwrap()
                    .0
            })
            .collect();
        let q = HistoryQuery {
            chat_id: "b".into(),
            before: None,
            end_id: None,
            limit: Some(2),
        };
        let page = s.history("a", &q, at(t, 9)).unwrap();
        assert_eq!(
            page.messages
                .iter()
                .map(|m| m.message_id)
                .collect::<Vec<_>>(),
            ids[3..]
        );
        assert!(page.has_more);
        let q = HistoryQuery {
            before: Some(ids[3]),
            limit: Some(10),
            ..q
        };
        let page = s.history("a", &q, at(t, 9)).unwrap();
        assert_eq!(
            page.messages
                .iter()
                .map(|m| m.message_id)
                .collect::<Vec<_>>(),
            ids[..3]
        );
        assert!(!page.has_more);
        let q = HistoryQuery {
            limit: Some(0),
            ..q
        };
        assert_eq!(
            s.history("a", &q, at(t, 9)).unwrap_err().code(),
            "invalid_request"
        );
    }

    #[test]
    fn bad_messages_are_refused() {
        let mut l = limits();
        l.max_message_len = 4;
        let mut s = ChatStore::new(l);
        let t = at(Instant::now(), 0);
        let code = |r: Result<(u64, Vec<Delivery>), ChatError>| r.unwrap_err().code();
        assert_eq!(
            code(s.new_message("a", "b", "12345".into(), None, vec![], t)),
            "message_too_long"
        );
        assert_eq!(
            code(s.new_message("a", "a", "hi".into(), None, vec![], t)),
            "invalid_request"
        );
        assert_eq!(
            code(s.new_message("a", "", "hi".into(), None, vec![], t)),
            "invalid_request"
        );
        assert_eq!(
            code(s.new_message("a", "b", "".into(), None, vec![], t)),
            "invalid_request"
        );
    }

    #[test]
    fn a_mark_covers_every_earlier_unmarked_message_from_the_other_user() {
        let mut s = ChatStore::new(limits());
        let t = Instant::now();
        let mut say = |from: &str, to: &str, i| {
            s.new_message(from, to, format!("{i}"), None, vec![], at(t, i))
                .unwrap()
                .0
        };
        let a1 = say("a", "b", 0);
        let b1 = say("b", "a", 1);
        let a2 = say("a", "b", 2);
        let a3 = say("a", "b", 3);
        let marked = |d: &[Delivery]| -> Vec<(String, u64)> {
            d.iter()
                .map(|d| (d.user.clone(), d.event.payload.message_id.unwrap()))
                .collect()
        };
        let out = s
            .mark("b", Some("a"), a2, Receipt::Delivered, at(t, 4))
            .unwrap();
        assert_eq!(
            marked(&out),
            [
                ("a".to_owned(), a1),
                ("b".to_owned(), a1),
                ("a".to_owned(), a2),
                ("b".to_owned(), a2)
            ],
            "b's own message and later ones are not marked"
        );
        assert_eq!(out[0].event.payload.timestamp, Some(1_700_000_004));
        let out = s.mark("b", None, a3, Receipt::Read, at(t, 5)).unwrap();
        assert_eq!(out.len(), 6, "read covers a1, a2, a3");
        let page = s
            .messages(
                "b",
                &MessagesQuery {
                    chat_id: "a".into(),
                    end_id: None,
                    count: None,
                },
                at(t, 6),
            )
            .unwrap();
        let marks: Vec<_> = page.iter().map(|m| (m.dlvrd, m.read)).collect();
        let (d, r) = (Some(1_700_000_004), Some(1_700_000_005));
        assert_eq!(marks, [(d, r), (None, None), (d, r), (r, r)]);
        assert_eq!(
            s.mark("a", Some("b"), b1 + 100, Receipt::Read, at(t, 7))
                .unwrap()
                .len(),
            2,
            "a missing id with chatId marks what is below it"
        );
        assert_eq!(
            s.mark("b", Some("c"), a1, Receipt::Read, at(t, 8))
                .unwrap_err()
                .code(),
            "unknown_message"
        );
        let summary = s.chat("b", "a", at(t, 9)).unwrap();
        assert_eq!((summary.last_id, summary.unread_count), (Some(a3), 0));
        assert_eq!(s.chat("a", "b", at(t, 9)).unwrap().unread_count, 0);
    }

    #[test]
    fn get_events_answers_what_follows_within_its_bound() {
        let mut s = ChatStore::new(limits());
        let t = Instant::now();
        for i in 0..=MAX_EVENTS_PER_ANSWER as u64 {
            s.new_message("a", "b", format!("{i}"), None, vec![], at(t, 0))
                .unwrap();
        }
        let code = |r: Result<Vec<Arc<StoredEvent>>, ChatError>| r.unwrap_err().code();
        assert_eq!(code(s.events_after("b", 0, at(t, 1))), "too_many_events");
        assert_eq!(s.events_after("b", 1, at(t, 1)).unwrap().len(), 100);
        assert_eq!(code(s.events_after("b", 500, at(t, 1))), "unknown_event");
        assert_eq!(s.event("b", 3, at(t, 1)).unwrap().id, 3);
        assert_eq!(
            s.event("b", 500, at(t, 1)).unwrap_err().code(),
            "unknown_event"
        );
    }

    #[test]
    fn offline_lasts_until_a_subscribe_or_a_new_socket() {
        let mut s = ChatStore::new(limits());
        assert!(s.connect("a").unwrap());
        assert!(s.go_offline("a"));
        assert!(!s.go_offline("a"), "once");
        assert!(s.go_online("a"));
        assert!(!s.go_online("a"));
        assert!(s.go_offline("a"));
        assert!(s.connect("a").unwrap(), "a new socket is online again");
        s.go_offline("a");
        assert!(!s.disconnect("a"));
        assert!(!s.disconnect("a"), "already shown offline");
        assert!(!s.go_online("a"), "no socket, no presence");
    }

    #[test]
    fn presence_counts_sockets() {
        let mut s = ChatStore::new(limits());
        assert!(s.connect("a").unwrap());
        assert!(!s.connect("a").unwrap());
        assert!(!s.disconnect("a"));
        assert!(s.disconnect("a"));
        assert!(!s.disconnect("a"), "never below zero");
    }
}
