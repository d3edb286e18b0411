//! Carries out chat requests: the store behind its one lock, and the room
//! hub for delivery (a user is a hub room whose members are that user's
//! sockets). Events are queued to sockets while the lock is held, so every
//! socket sees a user's events in id order, after any replay it asked for.
//! Owns that ordering; the rules live in the store, the wire shapes in the
//! events module.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};

use super::attachments::{self, Attachment, AttachmentInput};
use super::error::ChatError;
use super::events::{self, EventPayload, EventType, Mark, MarkReply, NewMessage, Request};
use super::images::ChatImages;
use super::store::{ChatStore, Delivery, Now};
use super::ImageRef;
use crate::rooms::{Frame, MemberHandle, MemberView, RoomHub};

/// The role of a socket that has subscribed and receives live events.
const LIVE: &str = "live";

fn is_live(m: &MemberView<'_>) -> bool {
    m.role == Some(LIVE)
}

/// A request's response payload and the events it caused, or its error.
type Outcome = Result<(Value, Vec<Delivery>), ChatError>;

/// Shared by every chat socket of one router.
pub struct ChatService {
    store: Mutex<ChatStore>,
    hub: RoomHub,
    images: ChatImages,
}

impl ChatService {
    pub fn new(store: ChatStore, hub: RoomHub, images: ChatImages) -> Self {
        Self {
            store: Mutex::new(store),
            hub,
            images,
        }
    }

    pub fn hub(&self) -> &RoomHub {
        &self.hub
    }

    /// The WebP bytes of a processed chat image, while kept.
    pub async fn image_bytes(&self, md5: &str) -> Option<bytes::Bytes> {
        self.images.bytes(md5).await
    }

    fn store(&self) -> MutexGuard<'_, ChatStore> {
        // The store never panics half-way through a change; recover if it did.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the periodic retention sweep.
    pub fn sweep(&self) {
        self.store().sweep(std::time::Instant::now());
    }

    /// A socket of `user` opened; tells the user's contacts when it is the
    /// first.
    pub fn connect(&self, user: &str) -> Result<(), ChatError> {
        let mut store = self.store();
        if store.connect(user)? {
            self.presence(&store, user, EventType::Online);
        }
        Ok(())
    }

    /// A socket of `user` closed; tells the contacts when it was the last.
    pub fn disconnect(&self, user: &str) {
        let mut store = self.store();
        if store.disconnect(user) {
            self.presence(&store, user, EventType::Offline);
        }
    }

    /// The client event `offline`: the user shows offline to its contacts
    /// while its sockets stay open, until it subscribes again.
    pub fn offline(&self, user: &str) {
        let mut store = self.store();
        if store.go_offline(user) {
            self.presence(&store, user, EventType::Offline);
        }
    }

    /// `online {userId}` / `offline {userId}` to the user's contacts
    /// (`chatId`, pixpress's earlier field, names the user too).
    fn presence(&self, store: &ChatStore, user: &str, kind: EventType) {
        let payload = EventPayload {
            chat_id: user.to_owned(),
            user_id: Some(user.to_owned()),
            ..EventPayload::default()
        };
        let frame = events::transient_event(kind, &payload);
        for contact in store.contacts(user) {
            self.hub
                .send_to_room(&contact, is_live, Frame::text(frame.clone()));
        }
    }

    /// The client event `typing {chatId}`: passed on to the other user's
    /// live sockets, not stored.
    pub fn typing(&self, user: &str, chat_id: &str) -> Result<(), ChatError> {
        self.store().check_chat_id(user, chat_id)?;
        let payload = EventPayload {
            chat_id: user.to_owned(),
            user_id: Some(user.to_owned()),
            from: Some(user.to_owned()),
            ..EventPayload::default()
        };
        let frame = events::transient_event(EventType::Typing, &payload);
        self.hub.send_to_room(chat_id, is_live, Frame::text(frame));
        Ok(())
    }

    /// Carries out one request of `user` and queues its response to `me`,
    /// followed by the events it caused.
    pub async fn handle(&self, me: &MemberHandle, user: &str, id: &Value, request: Request) {
        let ack = |message_id: u64| move |out| (json!({ "messageId": message_id }), out);
        match request {
            Request::New(new) => self.new_message(me, user, id, new).await,
            Request::Subscribe { last_event_id } => self.subscribe(me, user, id, last_event_id),
            Request::Edit { target, message } => self.apply(me, id, |store, now| {
                let chat = target.chat_id.as_deref();
                store
                    .edit(user, chat, target.message_id, message, now)
                    .map(ack(target.message_id))
            }),
            Request::Delete { target } => self.apply(me, id, |store, now| {
                let chat = target.chat_id.as_deref();
                store
                    .delete(user, chat, target.message_id, now)
                    .map(ack(target.message_id))
            }),
            Request::Mark(mark) => self.apply(me, id, |store, now| {
                let Mark {
                    receipt,
                    target,
                    reply,
                } = mark;
                let out = store.mark(
                    user,
                    target.chat_id.as_deref(),
                    target.message_id,
                    receipt,
                    now,
                )?;
                let payload = match reply {
                    MarkReply::Nothing => Value::Null,
                    MarkReply::MessageId => json!({ "messageId": target.message_id }),
                    MarkReply::Echo => {
                        let mut echo = json!({ "messageId": target.message_id });
                        if let Some(chat_id) = target.chat_id {
                            echo["chatId"] = Value::String(chat_id);
                        }
                        echo
                    }
                };
                Ok((payload, out))
            }),
            Request::GetMessage(target) => self.query(me, id, |store, now| {
                store.message(user, &target, now).map(|m| to_payload(&m))
            }),
            Request::GetMessages(query) => self.query(me, id, |store, now| {
                store.messages(user, &query, now).map(|m| to_payload(&m))
            }),
            Request::History(query) => self.query(me, id, |store, now| {
                store.history(user, &query, now).map(|p| to_payload(&p))
            }),
            Request::GetChat { chat_id } => self.query(me, id, |store, now| {
                store.chat(user, &chat_id, now).map(|c| to_payload(&c))
            }),
            Request::GetChats => {
                self.query(me, id, |store, now| Ok(to_payload(&store.chats(user, now))))
            }
            Request::GetEvent { event_id } => self.query(me, id, |store, now| {
                store.event(user, event_id, now).map(|e| e.value())
            }),
            Request::GetEvents { from_event_id } => self.query(me, id, |store, now| {
                let events = store.events_after(user, from_event_id, now)?;
                Ok(Value::Array(events.iter().map(|e| e.value()).collect()))
            }),
        }
    }

    /// Answers a request that changes nothing.
    fn query(
        &self,
        me: &MemberHandle,
        id: &Value,
        read: impl FnOnce(&mut ChatStore, Now) -> Result<Value, ChatError>,
    ) {
        self.apply(me, id, |store, now| {
            read(store, now).map(|payload| (payload, Vec::new()))
        });
    }

    /// Runs one change under the lock and answers it.
    fn apply(
        &self,
        me: &MemberHandle,
        id: &Value,
        change: impl FnOnce(&mut ChatStore, Now) -> Outcome,
    ) {
        let mut store = self.store();
        let result = change(&mut store, Now::current());
        self.answer(me, id, result);
    }

    /// `new`: the image and attachments are resolved (and processed) without
    /// the lock held, then the message is stored.
    async fn new_message(&self, me: &MemberHandle, user: &str, id: &Value, new: NewMessage) {
        let NewMessage {
            chat_id,
            message,
            image,
            attachments,
        } = new;
        let content = self
            .resolve_content(user, &chat_id, image.as_deref(), attachments)
            .await;
        self.apply(me, id, |store, now| {
            let (image, attachments) = content?;
            let (message_id, out) =
                store.new_message(user, &chat_id, message, image, attachments, now)?;
            Ok((json!({ "messageId": message_id }), out))
        });
    }

    /// The image and attachments of a new message, as its events carry them.
    async fn resolve_content(
        &self,
        user: &str,
        chat_id: &str,
        image: Option<&str>,
        inputs: Vec<AttachmentInput>,
    ) -> Result<(Option<ImageRef>, Vec<Attachment>), ChatError> {
        // Check what can be checked before spending a worker on an image.
        self.store().check_chat_id(user, chat_id)?;
        let image = match image {
            None => None,
            Some(image) => Some(self.images.resolve(image).await?),
        };
        let attachments = attachments::resolve(&self.images, inputs).await?;
        Ok((image, attachments))
    }

    /// Queues the response, then the events (the caller holds the lock).
    fn answer(&self, me: &MemberHandle, id: &Value, result: Outcome) {
        match result {
            Ok((payload, deliveries)) => {
                me.send_self(Frame::text(events::response(id, payload)));
                for d in deliveries {
                    self.hub
                        .send_to_room(&d.user, is_live, Frame::text(d.event.frame()));
                }
            }
            Err(error) => {
                me.send_self(Frame::text(events::error_response(id, &error)));
            }
        }
    }

    /// Queues the response and the missed events, then marks the socket
    /// live, all under the lock: no event is missed or sent twice.
    fn subscribe(&self, me: &MemberHandle, user: &str, id: &Value, last_event_id: u64) {
        let mut store = self.store();
        let replay = match store.replay(user, last_event_id, Now::current()) {
            Ok(r) => r,
            Err(error) => {
                me.send_self(Frame::text(events::error_response(id, &error)));
                return;
            }
        };
        let mut payload = json!({
            "lastEventId": replay.last_event_id,
            "count": replay.events.len(),
        });
        if replay.truncated {
            payload["truncated"] = Value::Bool(true);
        }
        let mut batch = Vec::with_capacity(replay.events.len() + 1);
        batch.push(Frame::text(events::response(id, payload)));
        batch.extend(replay.events.iter().map(|e| Frame::text(e.frame())));
        me.send_self(batch);
        me.set_role(LIVE);
        if store.go_online(user) {
            self.presence(&store, user, EventType::Online);
        }
    }
}

/// A response payload from a view type (plain data: it always serialises).
fn to_payload<T: serde::Serialize>(view: &T) -> Value {
    serde_json::to_value(view).expect("chat views serialise")
}
