//! Between the chat's types and the repo's plain records: a message's
//! image and attachments as its stored content, a row as the Message and
//! history views, an event as the draft the repo appends and a kept event
//! as the frame sockets receive.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::attachments::Attachment;
use super::events::{EventPayload, EventType};
use super::views::{ChatSummary, MessageRecord, MessageStatus, MessageView};
use super::ImageRef;
use crate::backend::{ChatRow, EventDraft, EventRow, MessageRow};

/// What a message carries beside its text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Arc<[Attachment]>>,
}

impl Content {
    pub fn new(image: Option<ImageRef>, attachments: Vec<Attachment>) -> Self {
        Self {
            image,
            attachments: (!attachments.is_empty()).then(|| attachments.into()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.attachments.is_none()
    }

    /// As stored: empty when there is nothing.
    pub fn to_stored(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From what was stored (nothing when unreadable).
    pub fn of(row: &MessageRow) -> Self {
        if row.content.is_empty() {
            return Self::default();
        }
        serde_json::from_str(&row.content).unwrap_or_else(|e| {
            tracing::warn!(error = %e, message = row.id, "unreadable message content");
            Self::default()
        })
    }
}

/// A row as the Message type clients read.
pub fn message_record(row: &MessageRow) -> MessageRecord {
    let content = Content::of(row);
    MessageRecord {
        message_id: row.id,
        message: (!row.text.is_empty()).then(|| Arc::from(row.text.as_str())),
        sender: row.from.clone(),
        attachments: content.attachments,
        image: content.image,
        dlvrd: row.delivered,
        read: row.read,
        created_at: row.created,
        updated_at: row.updated,
    }
}

/// A row as `history` lists it in chat `chat_id`.
pub fn message_view(row: &MessageRow, chat_id: &str) -> MessageView {
    MessageView {
        message_id: row.id,
        chat_id: chat_id.to_owned(),
        from: row.from.clone(),
        message: Arc::from(row.text.as_str()),
        image: Content::of(row).image,
        timestamp: row.created,
        edited: row.updated.is_some(),
        delivered: row.delivered.is_some(),
        read: row.read.is_some(),
    }
}

/// The chat with `other` as the Chat type clients read.
pub fn chat_summary(other: &str, row: &ChatRow) -> ChatSummary {
    let mut summary = ChatSummary::empty(other);
    if let Some(m) = &row.last {
        summary.last_id = Some(m.id);
        summary.last_message_text = (!m.text.is_empty()).then(|| Arc::from(m.text.as_str()));
        summary.last_message_time = Some(m.created);
        summary.last_message_author = Some(m.from.clone());
        summary.last_message_status = Some(match (m.delivered, m.read) {
            (_, Some(_)) => MessageStatus::Read,
            (Some(_), None) => MessageStatus::Unread,
            (None, None) => MessageStatus::Undelivered,
        });
    }
    summary.unread_count = row.unread;
    summary
}

/// An event for `user`'s log.
pub fn draft(user: &str, kind: EventType, payload: &EventPayload) -> EventDraft {
    EventDraft {
        user: user.to_owned(),
        kind: kind_name(kind),
        payload: serde_json::to_string(payload).unwrap_or_else(|_| "{}".into()),
    }
}

fn kind_name(kind: EventType) -> String {
    match serde_json::to_value(kind) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A kept event as sent: `{"type":"event","timestamp","id","eventType","payload"}`,
/// the same frame the event was sent as.
pub fn event_frame(row: &EventRow) -> String {
    let kind = serde_json::to_string(&row.kind).unwrap_or_else(|_| "\"\"".into());
    let payload = if serde_json::from_str::<serde::de::IgnoredAny>(&row.payload).is_ok() {
        row.payload.as_str()
    } else {
        tracing::warn!(event = row.id, "unreadable event payload");
        "{}"
    };
    format!(
        r#"{{"type":"event","timestamp":{},"id":{},"eventType":{kind},"payload":{payload}}}"#,
        row.timestamp, row.id
    )
}

/// A kept event as a JSON value (`getEvent`, `getEvents`).
pub fn event_value(row: &EventRow) -> Value {
    serde_json::from_str(&event_frame(row)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::events::numbered_event;

    #[test]
    fn a_kept_event_is_the_frame_it_was_sent_as() {
        let payload = EventPayload {
            chat_id: "u1".into(),
            message_id: Some(4),
            message: Some("hi \"there\"".into()),
            from: Some("u1".into()),
            ..EventPayload::default()
        };
        let d = draft("u2", EventType::Delivered, &payload);
        assert_eq!(d.kind, "dlvrd");
        let row = EventRow {
            id: 9,
            timestamp: 1_700_000_000,
            kind: d.kind,
            payload: d.payload,
        };
        assert_eq!(
            event_frame(&row),
            numbered_event(9, 1_700_000_000, EventType::Delivered, &payload)
        );
    }

    #[test]
    fn content_survives_the_store() {
        let content = Content::new(
            Some(ImageRef {
                md5: "0".repeat(32),
                url: "/chat/images/x".into(),
                width: 1,
                height: 2,
                size: 3,
            }),
            vec![Attachment {
                kind: super::super::AttachmentKind::File,
                id: "f".into(),
                filename: "a.txt".into(),
                url: "https://example.com/a.txt".into(),
                meta: serde_json::json!({"size": 3}),
            }],
        );
        let row = MessageRow {
            id: 1,
            from: "a".into(),
            to: "b".into(),
            text: String::new(),
            content: content.to_stored(),
            created: 1,
            updated: None,
            delivered: None,
            read: None,
        };
        assert_eq!(Content::of(&row), content);
        assert_eq!(Content::new(None, vec![]).to_stored(), "");
    }
}
