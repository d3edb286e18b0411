//! The chat's state in this process (`backend.kind: memory`): messages,
//! per-user event logs, contacts and presence counts behind one lock. The
//! live feed is handed every event under that lock, so each user's events
//! reach it in id order.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::chat::{
    ChatBounds, ChatNow, ChatRepo, ChatRepoError, ChatResult, ChatRow, EventDraft, EventRow,
    LiveEvent, LiveFeed, MarkKind, MessageRow, Replayed,
};

#[derive(Debug)]
struct Kept {
    row: MessageRow,
    at: Instant,
}

#[derive(Debug)]
struct KeptEvent {
    row: EventRow,
    at: Instant,
}

#[derive(Debug, Default)]
struct UserLog {
    last_event_id: u64,
    events: VecDeque<KeptEvent>,
    /// Users with a chat (kept messages) with this one.
    contacts: HashSet<String>,
    /// Open sockets.
    connections: usize,
    /// Shown online to contacts.
    online: bool,
}

/// A direct chat's key: its two users, ordered.
type ChatKey = (String, String);

fn chat_key(a: &str, b: &str) -> ChatKey {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

#[derive(Default)]
struct State {
    users: HashMap<String, UserLog>,
    /// Every kept message by id; ids grow with time, so the first is the oldest.
    messages: BTreeMap<u64, Kept>,
    chats: HashMap<ChatKey, BTreeSet<u64>>,
    last_message_id: u64,
    listeners: Vec<mpsc::UnboundedSender<(String, LiveEvent)>>,
}

/// The chat of one instance.
pub struct MemoryChat {
    bounds: ChatBounds,
    state: Mutex<State>,
}

impl MemoryChat {
    pub fn new(bounds: ChatBounds) -> Self {
        Self {
            bounds,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; recover the data if it did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a message (see [`ChatRepo::add_message`]).
    fn add_now(
        &self,
        row: &MessageRow,
        events: &[EventDraft],
        now: ChatNow,
    ) -> Result<(), ChatRepoError> {
        let bounds = self.bounds;
        let mut state = self.state();
        state.user_mut(&row.from, bounds.max_users)?;
        state.user_mut(&row.to, bounds.max_users)?;
        state.prune_messages(now.at, bounds.retention);
        state.messages.insert(
            row.id,
            Kept {
                row: row.clone(),
                at: now.at,
            },
        );
        let ids = state.chats.entry(chat_key(&row.from, &row.to)).or_default();
        ids.insert(row.id);
        let over = ids.len().saturating_sub(bounds.max_messages_per_chat);
        let evicted: Vec<u64> = ids.iter().take(over).copied().collect();
        for old in evicted {
            state.remove_message(old);
        }
        while state.messages.len() > bounds.max_messages {
            let Some((&id, _)) = state.messages.first_key_value() else {
                break;
            };
            state.remove_message(id);
        }
        if let Some(u) = state.users.get_mut(&row.from) {
            u.contacts.insert(row.to.clone());
        }
        if let Some(u) = state.users.get_mut(&row.to) {
            u.contacts.insert(row.from.clone());
        }
        state.push_events(events, now, &bounds);
        Ok(())
    }

    /// Users currently tracked.
    pub fn user_count(&self) -> usize {
        self.state().users.len()
    }

    /// Messages currently kept.
    pub fn message_count(&self) -> usize {
        self.state().messages.len()
    }
}

impl State {
    fn user_mut(&mut self, user: &str, max: usize) -> Result<&mut UserLog, ChatRepoError> {
        let known = self.users.len();
        match self.users.entry(user.to_owned()) {
            Entry::Occupied(log) => Ok(log.into_mut()),
            Entry::Vacant(_) if known >= max => Err(ChatRepoError::TooManyUsers(max)),
            Entry::Vacant(slot) => Ok(slot.insert(UserLog::default())),
        }
    }

    fn prune_messages(&mut self, now: Instant, retention: Duration) {
        while let Some((&id, m)) = self.messages.first_key_value() {
            if now.saturating_duration_since(m.at) <= retention {
                break;
            }
            self.remove_message(id);
        }
    }

    /// Removes a message; a chat left empty unlinks its two users.
    fn remove_message(&mut self, id: u64) {
        let Some(m) = self.messages.remove(&id) else {
            return;
        };
        let key = chat_key(&m.row.from, &m.row.to);
        let Some(ids) = self.chats.get_mut(&key) else {
            return;
        };
        ids.remove(&id);
        if ids.is_empty() {
            self.chats.remove(&key);
            if let Some(u) = self.users.get_mut(&m.row.from) {
                u.contacts.remove(&m.row.to);
            }
            if let Some(u) = self.users.get_mut(&m.row.to) {
                u.contacts.remove(&m.row.from);
            }
        }
    }

    /// Appends to a user's log and hands the event to the live feed.
    fn push_event(&mut self, draft: &EventDraft, now: ChatNow, bounds: &ChatBounds) {
        let log = self.users.entry(draft.user.clone()).or_default();
        log.last_event_id += 1;
        let row = EventRow {
            id: log.last_event_id,
            timestamp: now.unix,
            kind: draft.kind.clone(),
            payload: draft.payload.clone(),
        };
        log.events.push_back(KeptEvent {
            row: row.clone(),
            at: now.at,
        });
        while log.events.len() > bounds.max_events_per_user {
            log.events.pop_front();
        }
        prune_events(log, now.at, bounds.retention);
        let live = LiveEvent::Numbered(row);
        self.listeners
            .retain(|l| l.send((draft.user.clone(), live.clone())).is_ok());
    }

    fn push_events(&mut self, drafts: &[EventDraft], now: ChatNow, bounds: &ChatBounds) {
        for d in drafts {
            self.push_event(d, now, bounds);
        }
    }

    fn kept(&mut self, id: u64, now: ChatNow, retention: Duration) -> Option<&mut Kept> {
        self.prune_messages(now.at, retention);
        self.messages.get_mut(&id)
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

fn ready<'a, T: Send + 'a>(value: Result<T, ChatRepoError>) -> ChatResult<'a, T> {
    futures_util::future::ready(value).boxed()
}

impl ChatRepo for MemoryChat {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn listen(&self) -> LiveFeed {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state().listeners.push(tx);
        rx
    }

    fn connect<'a>(&'a self, user: &'a str, _now: ChatNow) -> ChatResult<'a, bool> {
        let mut state = self.state();
        let result = state.user_mut(user, self.bounds.max_users).map(|log| {
            log.connections += 1;
            !std::mem::replace(&mut log.online, true)
        });
        ready(result)
    }

    fn disconnect<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        let mut state = self.state();
        let went = match state.users.get_mut(user) {
            Some(log) if log.connections > 0 => {
                log.connections -= 1;
                log.connections == 0 && std::mem::replace(&mut log.online, false)
            }
            _ => false,
        };
        ready(Ok(went))
    }

    fn go_offline<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        let went = self
            .state()
            .users
            .get_mut(user)
            .is_some_and(|log| std::mem::replace(&mut log.online, false));
        ready(Ok(went))
    }

    fn go_online<'a>(&'a self, user: &'a str) -> ChatResult<'a, bool> {
        let came =
            self.state().users.get_mut(user).is_some_and(|log| {
                log.connections > 0 && !std::mem::replace(&mut log.online, true)
            });
        ready(Ok(came))
    }

    fn contacts<'a>(&'a self, user: &'a str, now: ChatNow) -> ChatResult<'a, Vec<String>> {
        let mut state = self.state();
        state.prune_messages(now.at, self.bounds.retention);
        let mut list: Vec<String> = state
            .users
            .get(user)
            .map(|u| u.contacts.iter().cloned().collect())
            .unwrap_or_default();
        list.sort();
        ready(Ok(list))
    }

    fn send_transient<'a>(&'a self, user: &'a str, frame: &'a str) -> ChatResult<'a, ()> {
        let live = LiveEvent::Transient(frame.to_owned());
        self.state()
            .listeners
            .retain(|l| l.send((user.to_owned(), live.clone())).is_ok());
        ready(Ok(()))
    }

    fn next_message_id(&self) -> ChatResult<'_, u64> {
        let mut state = self.state();
        state.last_message_id += 1;
        ready(Ok(state.last_message_id))
    }

    fn add_message<'a>(
        &'a self,
        row: &'a MessageRow,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, ()> {
        ready(self.add_now(row, events, now))
    }

    fn message(&self, id: u64, now: ChatNow) -> ChatResult<'_, Option<MessageRow>> {
        let mut state = self.state();
        let row = state
            .kept(id, now, self.bounds.retention)
            .map(|m| m.row.clone());
        ready(Ok(row))
    }

    fn edit<'a>(
        &'a self,
        id: u64,
        text: &'a str,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool> {
        let mut state = self.state();
        let Some(m) = state.kept(id, now, self.bounds.retention) else {
            return ready(Ok(false));
        };
        m.row.text = text.to_owned();
        m.row.updated = Some(now.unix);
        state.push_events(events, now, &self.bounds);
        ready(Ok(true))
    }

    fn delete<'a>(
        &'a self,
        id: u64,
        events: &'a [EventDraft],
        now: ChatNow,
    ) -> ChatResult<'a, bool> {
        let mut state = self.state();
        if state.kept(id, now, self.bounds.retention).is_none() {
            return ready(Ok(false));
        }
        state.remove_message(id);
        state.push_events(events, now, &self.bounds);
        ready(Ok(true))
    }

    fn unmarked<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        upto: u64,
        kind: MarkKind,
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>> {
        let mut state = self.state();
        state.prune_messages(now.at, self.bounds.retention);
        let ids: Vec<u64> = state
            .chats
            .get(&chat_key(reader, author))
            .map(|ids| ids.range(..=upto).copied().collect())
            .unwrap_or_default();
        let out = ids
            .into_iter()
            .filter(|id| {
                state
                    .messages
                    .get(id)
                    .is_some_and(|m| unmarked_from(&m.row, reader, author, kind))
            })
            .collect();
        ready(Ok(out))
    }

    fn mark<'a>(
        &'a self,
        reader: &'a str,
        author: &'a str,
        kind: MarkKind,
        marks: &'a [(u64, Vec<EventDraft>)],
        now: ChatNow,
    ) -> ChatResult<'a, Vec<u64>> {
        let mut state = self.state();
        state.prune_messages(now.at, self.bounds.retention);
        let mut marked = Vec::new();
        for (id, drafts) in marks {
            let Some(m) = state.messages.get_mut(id) else {
                continue;
            };
            if !unmarked_from(&m.row, reader, author, kind) {
                continue;
            }
            if kind == MarkKind::Read {
                m.row.read = Some(now.unix);
            }
            m.row.delivered.get_or_insert(now.unix);
            marked.push(*id);
            state.push_events(drafts, now, &self.bounds);
        }
        ready(Ok(marked))
    }

    fn page<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        last: Option<u64>,
        count: usize,
        now: ChatNow,
    ) -> ChatResult<'a, (Vec<MessageRow>, bool)> {
        let mut state = self.state();
        state.prune_messages(now.at, self.bounds.retention);
        let Some(ids) = state.chats.get(&chat_key(a, b)) else {
            return ready(Ok((Vec::new(), false)));
        };
        let mut older = ids.range(..=last.unwrap_or(u64::MAX)).rev();
        let mut page: Vec<u64> = older.by_ref().take(count).copied().collect();
        let has_more = older.next().is_some();
        page.reverse();
        let rows = page
            .iter()
            .filter_map(|id| state.messages.get(id).map(|m| m.row.clone()))
            .collect();
        ready(Ok((rows, has_more)))
    }

    fn chat<'a>(&'a self, user: &'a str, other: &'a str, now: ChatNow) -> ChatResult<'a, ChatRow> {
        let mut state = self.state();
        state.prune_messages(now.at, self.bounds.retention);
        let Some(ids) = state.chats.get(&chat_key(user, other)) else {
            return ready(Ok(ChatRow::default()));
        };
        let last = ids
            .last()
            .and_then(|id| state.messages.get(id))
            .map(|m| m.row.clone());
        let unread = ids
            .iter()
            .filter_map(|id| state.messages.get(id))
            .filter(|m| m.row.to == user && m.row.read.is_none())
            .count();
        ready(Ok(ChatRow { last, unread }))
    }

    fn replay<'a>(&'a self, user: &'a str, after: u64, now: ChatNow) -> ChatResult<'a, Replayed> {
        let mut state = self.state();
        let result = state.user_mut(user, self.bounds.max_users).map(|log| {
            prune_events(log, now.at, self.bounds.retention);
            Replayed {
                last_event_id: log.last_event_id,
                first_kept: log
                    .events
                    .front()
                    .map_or(log.last_event_id + 1, |e| e.row.id),
                events: log
                    .events
                    .iter()
                    .filter(|e| e.row.id > after)
                    .map(|e| e.row.clone())
                    .collect(),
            }
        });
        ready(result)
    }

    fn event<'a>(
        &'a self,
        user: &'a str,
        id: u64,
        now: ChatNow,
    ) -> ChatResult<'a, Option<EventRow>> {
        let mut state = self.state();
        let result = state.user_mut(user, self.bounds.max_users).map(|log| {
            prune_events(log, now.at, self.bounds.retention);
            log.events
                .iter()
                .find(|e| e.row.id == id)
                .map(|e| e.row.clone())
        });
        ready(result)
    }

    fn sweep(&self, now: ChatNow) -> ChatResult<'_, ()> {
        let retention = self.bounds.retention;
        let mut state = self.state();
        state.prune_messages(now.at, retention);
        for log in state.users.values_mut() {
            prune_events(log, now.at, retention);
        }
        state
            .users
            .retain(|_, u| u.connections > 0 || !u.events.is_empty() || !u.contacts.is_empty());
        ready(Ok(()))
    }
}

/// Whether `m` is from `author` to `reader` and lacks mark `kind`.
fn unmarked_from(m: &MessageRow, reader: &str, author: &str, kind: MarkKind) -> bool {
    m.from == author
        && m.to == reader
        && match kind {
            MarkKind::Delivered => m.delivered.is_none(),
            MarkKind::Read => m.read.is_none(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn bounds() -> ChatBounds {
        ChatBounds::from(&crate::config::ChatSettings::default())
    }

    fn at(base: Instant, secs: u64) -> ChatNow {
        ChatNow {
            at: base + Duration::from_secs(secs),
            unix: 1_700_000_000 + secs,
            unix_ms: (1_700_000_000 + secs) * 1000,
        }
    }

    /// The memory repo answers at once.
    fn now_or_never<T>(f: ChatResult<'_, T>) -> T {
        f.now_or_never()
            .expect("answers at once")
            .expect("no error")
    }

    fn draft(user: &str, kind: &str) -> EventDraft {
        EventDraft {
            user: user.into(),
            kind: kind.into(),
            payload: "{}".into(),
        }
    }

    fn say(s: &MemoryChat, from: &str, to: &str, now: ChatNow) -> u64 {
        let id = now_or_never(s.next_message_id());
        let row = MessageRow {
            id,
            from: from.into(),
            to: to.into(),
            text: "hi".into(),
            content: String::new(),
            created: now.unix,
            updated: None,
            delivered: None,
            read: None,
        };
        now_or_never(s.add_message(&row, &[draft(to, "new"), draft(from, "new")], now));
        id
    }

    #[test]
    fn events_are_numbered_per_user_and_reach_the_feed_in_order() {
        let s = MemoryChat::new(bounds());
        let mut feed = s.listen();
        let t = Instant::now();
        say(&s, "a", "b", at(t, 0));
        say(&s, "b", "a", at(t, 1));
        let mut heard = Vec::new();
        while let Ok((user, LiveEvent::Numbered(e))) = feed.try_recv() {
            heard.push((user, e.id));
        }
        assert_eq!(
            heard,
            [
                ("b".into(), 1),
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 2)
            ]
        );
        assert_eq!(now_or_never(s.contacts("a", at(t, 2))), ["b"]);
    }

    #[test]
    fn the_log_is_bounded_by_count_and_retention() {
        let mut b = bounds();
        b.max_events_per_user = 3;
        b.retention = Duration::from_secs(60);
        let s = MemoryChat::new(b);
        let t = Instant::now();
        for i in 0..5 {
            say(&s, "a", "b", at(t, i));
        }
        let r = now_or_never(s.replay("b", 1, at(t, 5)));
        assert_eq!(r.events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!((r.last_event_id, r.first_kept), (5, 3));
        let r = now_or_never(s.replay("b", 0, at(t, 63)));
        assert_eq!(r.events.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 5]);
        now_or_never(s.sweep(at(t, 200)));
        assert_eq!((s.message_count(), s.user_count()), (0, 0));
    }

    #[test]
    fn a_mark_sets_only_unmarked_messages_from_the_author() {
        let s = MemoryChat::new(bounds());
        let t = Instant::now();
        let a1 = say(&s, "a", "b", at(t, 0));
        let b1 = say(&s, "b", "a", at(t, 1));
        let a2 = say(&s, "a", "b", at(t, 2));
        let ids = now_or_never(s.unmarked("b", "a", a2, MarkKind::Read, at(t, 3)));
        assert_eq!(ids, [a1, a2]);
        let marks = vec![
            (a1, vec![draft("a", "read")]),
            (b1, vec![draft("a", "read")]),
        ];
        let done = now_or_never(s.mark("b", "a", MarkKind::Read, &marks, at(t, 4)));
        assert_eq!(done, [a1], "b's own message is not marked");
        let m = now_or_never(s.message(a1, at(t, 5))).unwrap();
        assert_eq!(
            (m.delivered, m.read),
            (Some(1_700_000_004), Some(1_700_000_004))
        );
        assert_eq!(now_or_never(s.chat("b", "a", at(t, 5))).unread, 1);
        assert!(now_or_never(s.delete(a1, &[], at(t, 6))));
        assert!(!now_or_never(s.delete(a1, &[], at(t, 6))), "once");
    }

    #[test]
    fn users_are_bounded_and_an_emptied_chat_unlinks() {
        let mut b = bounds();
        b.max_users = 2;
        let s = MemoryChat::new(b);
        let t = Instant::now();
        let m = say(&s, "a", "b", at(t, 0));
        let err = now_or_never_err(s.connect("c", at(t, 1)));
        assert!(matches!(err, ChatRepoError::TooManyUsers(2)));
        now_or_never(s.delete(m, &[], at(t, 2)));
        assert!(now_or_never(s.contacts("a", at(t, 2))).is_empty());
    }

    fn now_or_never_err<T>(f: ChatResult<'_, T>) -> ChatRepoError {
        match f.now_or_never().expect("answers at once") {
            Ok(_) => panic!("an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn presence_counts_sockets() {
        let s = MemoryChat::new(bounds());
        let now = at(Instant::now(), 0);
        assert!(now_or_never(s.connect("a", now)));
        assert!(!now_or_never(s.connect("a", now)));
        assert!(!now_or_never(s.disconnect("a")));
        assert!(now_or_never(s.disconnect("a")));
        assert!(!now_or_never(s.disconnect("a")), "never below zero");
        assert!(now_or_never(s.connect("a", now)));
        assert!(now_or_never(s.go_offline("a")));
        assert!(!now_or_never(s.go_offline("a")), "once");
        assert!(now_or_never(s.go_online("a")));
    }
}
