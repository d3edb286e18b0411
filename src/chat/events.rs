//! The chat's vocabulary: users, the requests a client may make, and the
//! events and responses the chat sends, as the frames sockets receive (the
//! store keeps events in this form so a reconnecting client is replayed the
//! same frames). Holds no state and sends nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::attachments::{Attachment, AttachmentInput};
use super::error::ChatError;
use crate::error::Code;

/// A user's id, as given by `?user=` (and as a `chatId`).
pub type UserId = String;

/// Checks a user id (ours or a `chatId`): the one name rule
/// (`auth::is_good_name`), and at most `max_len` bytes.
pub fn validate_user_id(id: &str, max_len: usize, field: &str) -> Result<(), ChatError> {
    if !crate::auth::is_good_name(id) || id.len() > max_len {
        return Err(ChatError::InvalidRequest(format!(
            "{field} must be 1 to {} characters (at most {max_len} bytes) without control characters",
            crate::auth::MAX_NAME_CHARS
        )));
    }
    Ok(())
}

/// What a client may ask, by `payloadType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe { last_event_id: u64 },
    New(NewMessage),
    Edit { target: Target, message: String },
    Delete { target: Target },
    Mark(Mark),
    GetMessage(Target),
    GetMessages(MessagesQuery),
    History(HistoryQuery),
    GetChat { chat_id: UserId },
    GetChats,
    GetEvent { event_id: u64 },
    GetEvents { from_event_id: u64 },
}

/// A message named by its id, and optionally by its chat (the other user):
/// the original payloads carry `chatId`, pixpress's earlier ones do not.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default)]
    pub chat_id: Option<UserId>,
    pub message_id: u64,
}

/// Which mark a recipient sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    Delivered,
    Read,
}

/// What the response to a mark carries, by the name it was asked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkReply {
    /// `dlvrd`: a response without a payload.
    Nothing,
    /// `delivered` (pixpress's earlier name): `{messageId}`.
    MessageId,
    /// `read`: the request's payload, `{chatId?, messageId}`.
    Echo,
}

/// `dlvrd` / `delivered` / `read`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub receipt: Receipt,
    pub target: Target,
    pub reply: MarkReply,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub chat_id: UserId,
    /// Required, as the original documents it; may be empty when the
    /// message has an image or attachments.
    pub message: String,
    /// Base64 bytes of an image, or the md5 of an earlier upload.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
}

/// `getMessages`: the `count` messages up to `endId` (the newest without it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesQuery {
    pub chat_id: UserId,
    #[serde(default)]
    pub end_id: Option<u64>,
    #[serde(default)]
    pub count: Option<usize>,
}

/// `history`, pixpress's earlier page query; `endId` and `count` are
/// understood too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    pub chat_id: UserId,
    /// Only messages with a smaller id (for paging backwards).
    #[serde(default)]
    pub before: Option<u64>,
    /// Only messages with this id or a smaller one.
    #[serde(default)]
    pub end_id: Option<u64>,
    #[serde(default, alias = "count")]
    pub limit: Option<usize>,
}

impl HistoryQuery {
    /// The largest id the page may hold.
    pub fn last_id(&self) -> Option<u64> {
        let before = self.before.map(|b| b.saturating_sub(1));
        match (before, self.end_id) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Seconds since the Unix epoch, the `timestamp` of every server frame.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A successful response; a `null` payload is left out (a response that
/// only acknowledges).
pub fn response(id: &Value, payload: Value) -> String {
    let mut frame = json!({"type": "response", "timestamp": unix_now(), "id": id});
    if !payload.is_null() {
        frame["payload"] = payload;
    }
    frame.to_string()
}

/// A failed request's response: `{"error":"<code>","message":"..."}`.
pub fn error_response(id: &Value, error: &ChatError) -> String {
    coded_error_response(id, error.code(), &error.to_string())
}

/// A failed request's response for an error that is not the chat's own
/// (the socket's in-flight bound).
pub fn coded_error_response(id: &Value, code: Code, message: &str) -> String {
    response(id, json!({"error": code, "message": message}))
}

/// The kinds of event the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    New,
    Edit,
    Delete,
    /// Sent as `dlvrd`, the original's name.
    #[serde(rename = "dlvrd")]
    Delivered,
    Read,
    Typing,
    Online,
    Offline,
}

/// What an event says changed. `chat_id` names the chat as the receiver
/// sees it: the other user.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload {
    pub chat_id: UserId,
    /// Who it is about: the author of `new`, the user of `typing`,
    /// `online` and `offline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<std::sync::Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<std::sync::Arc<[Attachment]>>,
    /// When a mark (`dlvrd`, `read`) was set, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Who did it (pixpress's name, kept beside `userId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<super::ImageRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventFrame<'a> {
    r#type: &'static str,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    event_type: EventType,
    payload: &'a EventPayload,
}

/// A stored (numbered) event as sent: its id, when it happened, what.
pub fn numbered_event(id: u64, timestamp: u64, kind: EventType, payload: &EventPayload) -> String {
    event_frame(Some(id), timestamp, kind, payload)
}

/// A transient event (`typing`, `online`, `offline`): no id, not stored.
pub fn transient_event(kind: EventType, payload: &EventPayload) -> String {
    event_frame(None, unix_now(), kind, payload)
}

/// A stored event as a JSON value (`getEvent`, `getEvents`).
pub fn numbered_event_value(
    id: u64,
    timestamp: u64,
    kind: EventType,
    payload: &EventPayload,
) -> Value {
    let frame = EventFrame {
        r#type: "event",
        timestamp,
        id: Some(id),
        event_type: kind,
        payload,
    };
    serde_json::to_value(&frame).expect("event frames always serialise")
}

fn event_frame(id: Option<u64>, timestamp: u64, kind: EventType, payload: &EventPayload) -> String {
    let frame = EventFrame {
        r#type: "event",
        timestamp,
        id,
        event_type: kind,
        payload,
    };
    serde_json::to_string(&frame).expect("event frames always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_an_id_only_when_stored() {
        let payload = EventPayload {
            chat_id: "u1".into(),
            user_id: Some("u1".into()),
            from: Some("u1".into()),
            ..EventPayload::default()
        };
        let v: Value = serde_json::from_str(&transient_event(EventType::Typing, &payload)).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["eventType"], "typing");
        assert!(v.get("id").is_none());
        assert_eq!(
            v["payload"],
            json!({"chatId":"u1","userId":"u1","from":"u1"})
        );
        let v = numbered_event_value(7, 1, EventType::Delivered, &payload);
        assert_eq!((&v["id"], &v["eventType"]), (&json!(7), &json!("dlvrd")));
    }

    #[test]
    fn a_response_without_payload_has_no_payload_field() {
        let v: Value = serde_json::from_str(&response(&json!("101"), Value::Null)).unwrap();
        assert_eq!(v["id"], "101");
        assert!(v.get("payload").is_none(), "{v}");
    }
}
