//! Carries out chat requests: applies the rules, asks the repo (memory or
//! Redis, `backend::ChatRepo`) for each change with the events it causes,
//! and answers the socket. Events reach sockets through the repo's live
//! feed and `delivery`, on every instance; the socket that made a request
//! gets its response before its own copy of the events.

use std::sync::Arc;

use serde_json::{json, Value};

use super::attachments::{self, Attachment};
use super::delivery::{self, After, Link, Links};
use super::error::ChatError;
use super::events::{self, EventPayload, EventType, Mark, MarkReply, NewMessage, Receipt, Request};
use super::images::ChatImages;
use super::records::{self, Content};
use super::rules::{Rules, MAX_EVENTS_PER_ANSWER};
use super::views::HistoryPage;
use super::ImageRef;
use crate::backend::{ChatNow, ChatRepo, EventDraft, MarkKind, MessageRow, Replayed};
use crate::rooms::{Frame, MemberHandle, RoomHub};

/// Shared by every chat socket of one router.
pub struct ChatService {
    repo: Arc<dyn ChatRepo>,
    links: Arc<Links>,
    rules: Rules,
    hub: RoomHub,
    images: ChatImages,
}

impl ChatService {
    /// Starts delivering the repo's live feed to this instance's sockets
    /// (must be called within a Tokio runtime).
    pub fn new(repo: Arc<dyn ChatRepo>, rules: Rules, hub: RoomHub, images: ChatImages) -> Self {
        let links = Arc::new(Links::default());
        tokio::spawn(delivery::deliver(
            repo.listen(),
            Arc::downgrade(&links),
            Arc::downgrade(&repo),
        ));
        Self {
            repo,
            links,
            rules,
            hub,
            images,
        }
    }

    pub fn hub(&self) -> &RoomHub {
        &self.hub
    }

    /// `memory` or `redis`: where the chat is kept.
    pub fn repo_kind(&self) -> &'static str {
        self.repo.kind()
    }

    /// The WebP bytes of a processed chat image, while kept.
    pub async fn image_bytes(&self, md5: &str) -> Option<bytes::Bytes> {
        self.images.bytes(md5).await
    }

    /// Runs the periodic retention sweep.
    pub async fn sweep(&self) {
        if let Err(e) = self.repo.sweep(ChatNow::current()).await {
            tracing::warn!(error = %e, "chat sweep");
        }
    }

    /// How often presence must be renewed ([`ChatService::reap`]), when
    /// the chat spans instances.
    pub fn reap_every(&self) -> Option<std::time::Duration> {
        self.repo.reap_every()
    }

    /// Renews this instance's presence and tells the contacts of users
    /// whose sockets were all on instances that died that they are
    /// offline.
    pub async fn reap(&self) {
        match self.repo.reap().await {
            Ok(gone) => {
                for user in gone {
                    self.presence(&user, EventType::Offline).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "chat presence renewal"),
        }
    }

    /// A socket of `user` opened (its member `handle` in the hub); tells
    /// the user's contacts when it is the first.
    pub async fn connect(&self, user: &str, handle: MemberHandle) -> Result<Arc<Link>, ChatError> {
        if self.repo.connect(user, ChatNow::current()).await? {
            self.presence(user, EventType::Online).await;
        }
        Ok(self.links.attach(user, handle, self.rules.socket_queue))
    }

    /// A socket closed; tells the contacts when it was the user's last.
    pub async fn disconnect(&self, link: &Arc<Link>) {
        self.links.detach(link);
        match self.repo.disconnect(link.user()).await {
            Ok(true) => self.presence(link.user(), EventType::Offline).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "chat disconnect"),
        }
    }

    /// The client event `offline`: the user shows offline to its contacts
    /// while its sockets stay open, until it subscribes again.
    pub async fn offline(&self, user: &str) {
        match self.repo.go_offline(user).await {
            Ok(true) => self.presence(user, EventType::Offline).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "chat offline"),
        }
    }

    /// `online {userId}` / `offline {userId}` to the user's contacts
    /// (`chatId`, pixpress's earlier field, names the user too).
    async fn presence(&self, user: &str, kind: EventType) {
        let payload = EventPayload {
            chat_id: user.to_owned(),
            user_id: Some(user.to_owned()),
            ..EventPayload::default()
        };
        let frame = events::transient_event(kind, &payload);
        let contacts = match self.repo.contacts(user, ChatNow::current()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "chat presence");
                return;
            }
        };
        for contact in contacts {
            if let Err(e) = self.repo.send_transient(&contact, &frame).await {
                tracing::warn!(error = %e, "chat presence");
            }
        }
    }

    /// The client event `typing {chatId}`: passed on to the other user's
    /// live sockets, not stored.
    pub async fn typing(&self, user: &str, chat_id: &str) -> Result<(), ChatError> {
        self.rules.check_chat_id(user, chat_id)?;
        let payload = EventPayload {
            chat_id: user.to_owned(),
            user_id: Some(user.to_owned()),
            from: Some(user.to_owned()),
            ..EventPayload::default()
        };
        let frame = events::transient_event(EventType::Typing, &payload);
        self.repo.send_transient(chat_id, &frame).await?;
        Ok(())
    }

    /// Carries out one request of the socket `link` and queues its
    /// response, followed by the socket's copy of the events it caused.
    pub async fn handle(&self, link: &Arc<Link>, id: &Value, request: Request) {
        let user = link.user();
        let result = match request {
            Request::Subscribe { last_event_id } => {
                return self.subscribe(link, id, last_event_id).await;
            }
            Request::New(new) => {
                // The image is resolved (and processed) before anything is held.
                let content = self.resolve_content(user, &new).await;
                link.hold();
                match content {
                    Ok(content) => self.new_message(user, new, content).await,
                    Err(e) => Err(e),
                }
            }
            other => {
                link.hold();
                self.change_or_query(user, other).await
            }
        };
        self.answer(link, id, result);
    }

    async fn change_or_query(&self, user: &str, request: Request) -> Result<Value, ChatError> {
        let now = ChatNow::current();
        let ack = |message_id: u64| json!({ "messageId": message_id });
        match request {
            // Carried out by `handle` itself.
            Request::Subscribe { .. } | Request::New(_) => Err(ChatError::InvalidRequest(
                "subscribe and new are not carried out here".into(),
            )),
            Request::Edit { target, message } => self
                .edit(user, target.chat_id.as_deref(), target.message_id, message)
                .await
                .map(|()| ack(target.message_id)),
            Request::Delete { target } => self
                .delete(user, target.chat_id.as_deref(), target.message_id)
                .await
                .map(|()| ack(target.message_id)),
            Request::Mark(mark) => self.mark(user, mark).await,
            Request::GetMessage(target) => {
                let m = self
                    .repo
                    .message(target.message_id, now)
                    .await?
                    .filter(|m| m.from == user || m.to == user)
                    .filter(|m| {
                        target
                            .chat_id
                            .as_deref()
                            .is_none_or(|c| c == other(m, user))
                    })
                    .ok_or(ChatError::UnknownMessage(target.message_id))?;
                Ok(to_payload(&records::message_record(&m)))
            }
            Request::GetMessages(query) => {
                let count = self.rules.messages_count(&query)?;
                self.rules.check_chat_id(user, &query.chat_id)?;
                let (rows, _) = self
                    .repo
                    .page(user, &query.chat_id, query.end_id, count, now)
                    .await?;
                let list: Vec<_> = rows.iter().map(records::message_record).collect();
                Ok(to_payload(&list))
            }
            Request::History(query) => {
                let limit = self.rules.history_limit(&query)?;
                self.rules.check_chat_id(user, &query.chat_id)?;
                let (rows, has_more) = self
                    .repo
                    .page(user, &query.chat_id, query.last_id(), limit, now)
                    .await?;
                let page = HistoryPage {
                    chat_id: query.chat_id.clone(),
                    messages: rows
                        .iter()
                        .map(|m| records::message_view(m, &query.chat_id))
                        .collect(),
                    has_more,
                };
                Ok(to_payload(&page))
            }
            Request::GetChat { chat_id } => {
                self.rules.check_chat_id(user, &chat_id)?;
                let row = self.repo.chat(user, &chat_id, now).await?;
                Ok(to_payload(&records::chat_summary(&chat_id, &row)))
            }
            Request::GetChats => {
                let mut list = Vec::new();
                for other in self.repo.contacts(user, now).await? {
                    let row = self.repo.chat(user, &other, now).await?;
                    list.push(records::chat_summary(&other, &row));
                }
                list.sort_by_key(|c| std::cmp::Reverse(c.last_id));
                Ok(to_payload(&list))
            }
            Request::GetEvent { event_id } => self
                .repo
                .event(user, event_id, now)
                .await?
                .map(|e| records::event_value(&e))
                .ok_or(ChatError::UnknownEvent(event_id)),
            Request::GetEvents { from_event_id } => {
                let replay = self.repo.replay(user, from_event_id, now).await?;
                if is_truncated(&replay, from_event_id) {
                    return Err(ChatError::EventsGone(from_event_id));
                }
                if replay.events.len() > MAX_EVENTS_PER_ANSWER {
                    return Err(ChatError::TooManyEvents {
                        count: replay.events.len(),
                        limit: MAX_EVENTS_PER_ANSWER,
                    });
                }
                Ok(Value::Array(
                    replay.events.iter().map(records::event_value).collect(),
                ))
            }
        }
    }

    /// The image and attachments of a new message, as its events carry them.
    async fn resolve_content(&self, user: &str, new: &NewMessage) -> Result<Content, ChatError> {
        // Check what can be checked before spending a worker on an image.
        self.rules.check_chat_id(user, &new.chat_id)?;
        let image: Option<ImageRef> = match new.image.as_deref() {
            None => None,
            Some(image) => Some(self.images.resolve(image).await?),
        };
        let attachments: Vec<Attachment> =
            attachments::resolve(&self.images, new.attachments.clone()).await?;
        Ok(Content::new(image, attachments))
    }

    /// `new`: stores the message with a `new` event for the recipient, then
    /// for the author's own log.
    async fn new_message(
        &self,
        from: &str,
        new: NewMessage,
        content: Content,
    ) -> Result<Value, ChatError> {
        let to = new.chat_id.as_str();
        self.rules
            .check_new(from, to, &new.message, !content.is_empty())?;
        let now = ChatNow::current();
        let id = self.repo.next_message_id().await?;
        let text: Arc<str> = Arc::from(new.message.as_str());
        let payload = |chat_id: &str| EventPayload {
            user_id: Some(from.to_owned()),
            ..message_payload(chat_id, from, id, &text, &content)
        };
        let drafts = [
            records::draft(to, EventType::New, &payload(from)),
            records::draft(from, EventType::New, &payload(to)),
        ];
        let row = MessageRow {
            id,
            from: from.to_owned(),
            to: to.to_owned(),
            text: new.message,
            content: content.to_stored(),
            created: now.unix,
            updated: None,
            delivered: None,
            read: None,
        };
        self.repo.add_message(&row, &drafts, now).await?;
        Ok(json!({ "messageId": id }))
    }

    /// Replaces a message's text; only its author may.
    async fn edit(
        &self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
        text: String,
    ) -> Result<(), ChatError> {
        self.rules.check_text(&text)?;
        let now = ChatNow::current();
        let m = self.kept(message_id, now).await?;
        self.rules.check_author(
            user,
            chat_id,
            &m,
            "only the author of a message may edit it",
        )?;
        self.rules.check_edit(&text, &m)?;
        let content = Content::of(&m);
        let text_arc: Arc<str> = Arc::from(text.as_str());
        let payload =
            |chat_id: &str| message_payload(chat_id, user, message_id, &text_arc, &content);
        let drafts = [
            records::draft(&m.to, EventType::Edit, &payload(user)),
            records::draft(user, EventType::Edit, &payload(&m.to)),
        ];
        if !self.repo.edit(message_id, &text, &drafts, now).await? {
            return Err(ChatError::UnknownMessage(message_id));
        }
        Ok(())
    }

    /// Deletes a message; only its author may.
    async fn delete(
        &self,
        user: &str,
        chat_id: Option<&str>,
        message_id: u64,
    ) -> Result<(), ChatError> {
        let now = ChatNow::current();
        let m = self.kept(message_id, now).await?;
        self.rules.check_author(
            user,
            chat_id,
            &m,
            "only the author of a message may delete it",
        )?;
        let drafts = both(EventType::Delete, message_id, user, &m.to, None);
        if !self.repo.delete(message_id, &drafts, now).await? {
            return Err(ChatError::UnknownMessage(message_id));
        }
        Ok(())
    }

    /// Marks delivered or read every message of the chat from the other
    /// user up to `messageId` that is not marked yet; each mark is one event
    /// for the author and one for the marking user's own log.
    async fn mark(&self, user: &str, mark: Mark) -> Result<Value, ChatError> {
        let Mark {
            receipt,
            target,
            reply,
        } = mark;
        let now = ChatNow::current();
        let chat_id = target.chat_id.as_deref();
        let kept = self.repo.message(target.message_id, now).await?;
        let author = self
            .rules
            .mark_author(user, chat_id, target.message_id, kept.as_ref())?;
        let (kind, event) = match receipt {
            Receipt::Delivered => (MarkKind::Delivered, EventType::Delivered),
            Receipt::Read => (MarkKind::Read, EventType::Read),
        };
        let ids = self
            .repo
            .unmarked(user, &author, target.message_id, kind, now)
            .await?;
        if !ids.is_empty() {
            let marks: Vec<(u64, Vec<_>)> = ids
                .iter()
                .map(|&id| (id, both(event, id, user, &author, Some(now.unix)).to_vec()))
                .collect();
            self.repo.mark(user, &author, kind, &marks, now).await?;
        }
        Ok(match reply {
            MarkReply::Nothing => Value::Null,
            MarkReply::MessageId => json!({ "messageId": target.message_id }),
            MarkReply::Echo => {
                let mut echo = json!({ "messageId": target.message_id });
                if let Some(chat_id) = target.chat_id {
                    echo["chatId"] = Value::String(chat_id);
                }
                echo
            }
        })
    }

    async fn kept(&self, message_id: u64, now: ChatNow) -> Result<MessageRow, ChatError> {
        self.repo
            .message(message_id, now)
            .await?
            .ok_or(ChatError::UnknownMessage(message_id))
    }

    /// Queues the response (or error), then what was held for the socket.
    fn answer(&self, link: &Arc<Link>, id: &Value, result: Result<Value, ChatError>) {
        let frame = match result {
            Ok(payload) => events::response(id, payload),
            Err(error) => events::error_response(id, &error),
        };
        let after = link.release(vec![Frame::text(frame)], None, &[]);
        self.catch_up_if(link, after);
    }

    fn catch_up_if(&self, link: &Arc<Link>, after: After) {
        if after == After::CatchUp {
            let (repo, link) = (self.repo.clone(), link.clone());
            tokio::spawn(async move { delivery::catch_up(repo.as_ref(), &link).await });
        }
    }

    /// Queues the response and the missed events, then live events: what
    /// arrives while the log is read is held and follows the replay, so no
    /// event is missed or sent twice.
    async fn subscribe(&self, link: &Arc<Link>, id: &Value, last_event_id: u64) {
        link.hold_from(last_event_id);
        let user = link.user();
        let replay = match self
            .repo
            .replay(user, last_event_id, ChatNow::current())
            .await
        {
            Ok(r) => r,
            Err(error) => {
                let error = ChatError::from(error);
                link.abandon(Frame::text(events::error_response(id, &error)));
                return;
            }
        };
        let mut payload = json!({
            "lastEventId": replay.last_event_id,
            "count": replay.events.len(),
        });
        if is_truncated(&replay, last_event_id) {
            payload["truncated"] = Value::Bool(true);
        }
        let response = Frame::text(events::response(id, payload));
        let floor = last_event_id.min(replay.last_event_id);
        let after = link.release(vec![response], Some(floor), &replay.events);
        self.catch_up_if(link, after);
        match self.repo.go_online(user).await {
            Ok(true) => self.presence(user, EventType::Online).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "chat online"),
        }
    }
}

/// Some events after `after` are gone, or `after` is above the user's last.
fn is_truncated(replay: &Replayed, after: u64) -> bool {
    after > replay.last_event_id || after + 1 < replay.first_kept
}

/// The other user of a message's chat, as `user` sees it.
fn other<'a>(m: &'a MessageRow, user: &str) -> &'a str {
    if m.from == user {
        &m.to
    } else {
        &m.from
    }
}

/// The same event to both users of a chat: `actor` did it, `other` is the
/// other party, whose copy comes first.
fn both(
    kind: EventType,
    message_id: u64,
    actor: &str,
    other: &str,
    timestamp: Option<u64>,
) -> [EventDraft; 2] {
    let payload = |chat_id: &str| EventPayload {
        chat_id: chat_id.to_owned(),
        message_id: Some(message_id),
        timestamp,
        from: Some(actor.to_owned()),
        ..EventPayload::default()
    };
    [
        records::draft(other, kind, &payload(actor)),
        records::draft(actor, kind, &payload(other)),
    ]
}

/// A response payload from a view type (plain data: it always serialises).
fn to_payload<T: serde::Serialize>(view: &T) -> Value {
    serde_json::to_value(view).expect("chat views serialise")
}

/// The payload of a message's `new` or `edit` event, as `chat_id`'s side
/// of the chat sees it.
fn message_payload(
    chat_id: &str,
    from: &str,
    message_id: u64,
    text: &Arc<str>,
    content: &Content,
) -> EventPayload {
    EventPayload {
        chat_id: chat_id.to_owned(),
        message_id: Some(message_id),
        message: Some(text.clone()),
        attachments: content.attachments.clone(),
        from: Some(from.to_owned()),
        image: content.image.clone(),
        ..EventPayload::default()
    }
}
