//! Live delivery to this instance's chat sockets: every event of the
//! repo's live feed goes to the subscribed sockets of its user, each
//! socket receiving a user's events in id order with no gap and no
//! duplicate.
//!
//! Each socket ([`Link`]) remembers the last event id it was sent (its
//! floor). A numbered event at or below the floor is skipped (already
//! sent, e.g. in a replay); one above `floor + 1` reveals a gap (the feed
//! lost something, e.g. while a subscription was made again) and the
//! socket catches up from the repo's log. While a socket waits for a
//! replay or for the answer to its own request, what arrives for it is
//! held, in order, and sent after: so the response to a request comes
//! before the socket's own copy of the events it caused, and a replay is
//! never overtaken by a live event. At most `chat.socket_queue` frames are
//! held; past that the socket catches up from the log instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::events::UserId;
use super::records::event_frame;
use crate::backend::{ChatNow, ChatRepo, EventRow, LiveEvent, LiveFeed};
use crate::rooms::{Frame, MemberHandle};

/// How many times a socket re-reads the log before it accepts a hole.
const CATCH_UP_TRIES: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data if it did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One chat socket, as delivery sees it.
pub struct Link {
    user: UserId,
    handle: MemberHandle,
    state: Mutex<LinkState>,
    max_held: usize,
}

#[derive(Default)]
struct LinkState {
    /// Subscribed: receives live events.
    live: bool,
    /// The last event id sent.
    floor: u64,
    /// Frames held while the socket waits.
    held: Option<Held>,
    /// Requests of this socket holding it until they are answered: while
    /// any is, a catch-up sends nothing (the log may hold a request's own
    /// event, which must follow its response).
    requests: u32,
}

#[derive(Default)]
struct Held {
    frames: Vec<(Option<u64>, Frame)>,
    /// More arrived than may be held: catch up from the log.
    overflowed: bool,
    /// Whether the socket was live before it was held.
    was_live: bool,
}

/// Who releases what a socket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// A request's answer (its response first).
    Request,
    /// A catch-up read of the log; a hole may remain for another try.
    CatchUp,
    /// The last catch-up try: a hole the log cannot fill is accepted.
    CatchUpLast,
}

/// Whether a socket must read the log to close a gap.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Done,
    CatchUp,
}

impl Link {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn handle(&self) -> &MemberHandle {
        &self.handle
    }

    /// Holds what arrives for a live socket until [`Self::release`]
    /// (around a request of its own). A socket not subscribed is not held.
    pub fn hold(&self) {
        let mut state = lock(&self.state);
        if !state.live {
            return;
        }
        state.requests += 1;
        if state.held.is_none() {
            state.held = Some(Held {
                was_live: true,
                ..Held::default()
            });
        }
    }

    /// `subscribe`: the socket is live from `floor` on, holding what
    /// arrives until its replay is released.
    pub fn hold_from(&self, floor: u64) {
        let mut state = lock(&self.state);
        let was_live = state.live;
        state.live = true;
        state.requests += 1;
        state.floor = floor;
        state.held = Some(Held {
            was_live,
            ..Held::default()
        });
    }

    /// Sends `first` (a response), then `replay`'s events above the floor
    /// (`floor`, when given, replaces it first), then what was held, in
    /// order, and stops holding. `CatchUp` when a gap remains.
    pub fn release(&self, first: Vec<Frame>, floor: Option<u64>, replay: &[EventRow]) -> After {
        self.release_as(first, floor, replay, Release::Request)
    }

    /// A failed `subscribe`: sends `first` and goes back to how it was.
    pub fn abandon(&self, first: Frame) {
        let mut state = lock(&self.state);
        state.requests = state.requests.saturating_sub(1);
        if let Some(held) = state.held.take() {
            state.live = held.was_live;
        }
        self.handle.send_self(first);
    }

    fn release_as(
        &self,
        first: Vec<Frame>,
        floor: Option<u64>,
        replay: &[EventRow],
        how: Release,
    ) -> After {
        let mut state = lock(&self.state);
        if how == Release::Request {
            state.requests = state.requests.saturating_sub(1);
        } else if state.requests > 0 {
            // The request's own release sends what is held, and catches up
            // again if a gap remains.
            return After::Done;
        }
        let accept_holes = how == Release::CatchUpLast;
        let mut batch = first;
        if let Some(floor) = floor {
            state.floor = floor;
        }
        for e in replay {
            if e.id > state.floor {
                batch.push(Frame::text(event_frame(e)));
                state.floor = e.id;
            }
        }
        let mut after = After::Done;
        if state.requests > 0 {
            // Another request still waits for its response: keep holding.
            if !batch.is_empty() {
                self.handle.send_self(batch);
            }
            return after;
        }
        if let Some(held) = state.held.take() {
            if held.overflowed {
                state.held = Some(Held {
                    was_live: held.was_live,
                    ..Held::default()
                });
                after = After::CatchUp;
            } else {
                let mut frames = held.frames.into_iter();
                for (id, frame) in frames.by_ref() {
                    match id {
                        Some(id) if id <= state.floor => {}
                        Some(id) if id > state.floor + 1 && !accept_holes => {
                            // Keep the rest held: the log fills the hole.
                            let mut rest = vec![(Some(id), frame)];
                            rest.extend(frames.by_ref());
                            state.held = Some(Held {
                                frames: rest,
                                overflowed: false,
                                was_live: held.was_live,
                            });
                            after = After::CatchUp;
                            break;
                        }
                        Some(id) => {
                            state.floor = id;
                            batch.push(frame);
                        }
                        None => batch.push(frame),
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.handle.send_self(batch);
        }
        after
    }

    /// Offers a live event; `CatchUp` when it reveals a gap.
    fn offer(&self, event: &LiveEvent) -> After {
        let mut state = lock(&self.state);
        let (id, frame) = match event {
            LiveEvent::Numbered(e) => (Some(e.id), Frame::text(event_frame(e))),
            LiveEvent::Transient(text) => (None, Frame::text(text.clone())),
        };
        if let Some(held) = state.held.as_mut() {
            if held.overflowed {
                return After::Done;
            }
            if held.frames.len() >= self.max_held {
                held.frames.clear();
                held.overflowed = true;
            } else {
                held.frames.push((id, frame));
            }
            return After::Done;
        }
        if !state.live {
            return After::Done;
        }
        match id {
            Some(id) if id <= state.floor => After::Done,
            Some(id) if id > state.floor + 1 => {
                state.held = Some(Held {
                    frames: vec![(Some(id), frame)],
                    overflowed: false,
                    was_live: true,
                });
                After::CatchUp
            }
            Some(id) => {
                state.floor = id;
                self.handle.send_self(frame);
                After::Done
            }
            None => {
                self.handle.send_self(frame);
                After::Done
            }
        }
    }

    fn floor(&self) -> u64 {
        lock(&self.state).floor
    }
}

/// Reads the log after the socket's floor until no gap remains (a few
/// tries; then a hole the log cannot fill is accepted).
pub async fn catch_up(repo: &dyn ChatRepo, link: &Link) {
    for attempt in 1..=CATCH_UP_TRIES {
        let floor = link.floor();
        match repo.replay(&link.user, floor, ChatNow::current()).await {
            Ok(r) => {
                let how = if attempt == CATCH_UP_TRIES {
                    Release::CatchUpLast
                } else {
                    Release::CatchUp
                };
                if link.release_as(Vec::new(), None, &r.events, how) == After::Done {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %link.user, "chat socket cannot catch up");
                let _ = link.release_as(Vec::new(), None, &[], Release::CatchUpLast);
                return;
            }
        }
    }
}

/// The sockets of this instance, by user.
#[derive(Default)]
pub struct Links {
    users: Mutex<HashMap<UserId, Vec<Arc<Link>>>>,
}

impl Links {
    /// Registers a socket of `user`.
    pub fn attach(&self, user: &str, handle: MemberHandle, max_held: usize) -> Arc<Link> {
        let link = Arc::new(Link {
            user: user.to_owned(),
            handle,
            state: Mutex::new(LinkState::default()),
            max_held: max_held.max(1),
        });
        lock(&self.users)
            .entry(user.to_owned())
            .or_default()
            .push(link.clone());
        link
    }

    /// Forgets a socket.
    pub fn detach(&self, link: &Arc<Link>) {
        let mut users = lock(&self.users);
        if let Some(list) = users.get_mut(&link.user) {
            list.retain(|l| !Arc::ptr_eq(l, link));
            if list.is_empty() {
                users.remove(&link.user);
            }
        }
    }

    fn of(&self, user: &str) -> Vec<Arc<Link>> {
        lock(&self.users).get(user).cloned().unwrap_or_default()
    }
}

/// Hands every event of `feed` to its user's sockets here, until the feed
/// or the repo ends.
pub async fn deliver(mut feed: LiveFeed, links: Weak<Links>, repo: Weak<dyn ChatRepo>) {
    while let Some((user, event)) = feed.recv().await {
        let Some(links) = links.upgrade() else { return };
        for link in links.of(&user) {
            if link.offer(&event) == After::CatchUp {
                let Some(repo) = repo.upgrade() else { return };
                tokio::spawn(async move { catch_up(repo.as_ref(), &link).await });
            }
        }
    }
}
