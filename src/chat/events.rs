//! The chat's vocabulary: users, the requests a client may make, and the
//! events and responses the chat sends, as the frames sockets receive (the
//! store keeps events in this form so a reconnecting client is replayed the
//! same frames). Holds no state and sends nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
    Edit { message_id: u64, message: String },
    Delete { message_id: u64 },
    Delivered { message_id: u64 },
    Read { message_id: u64 },
    History(HistoryQuery),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub chat_id: UserId,
    pub message: String,
    /// Base64 bytes of an image, or the md5 of an earlier upload.
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    pub chat_id: UserId,
    /// Only messages with a smaller id (for paging backwards).
    #[serde(default)]
    pub before: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Seconds since the Unix epoch, the `timestamp` of every server frame.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A successful response.
pub fn response(id: &Value, payload: Value) -> String {
    json!({"type": "response", "timestamp": unix_now(), "id": id, "payload": payload}).to_string()
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
    Delivered,
    Read,
    Typing,
    Online,
    Offline,
}

/// What an event says changed. `chat_id` names the chat as the receiver
/// sees it: the other user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPayload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<u64>,
    pub chat_id: UserId,
    /// Who did it (absent on `online` / `offline`, where `chatId` says who).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<std::sync::Arc<str>>,
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
            message_id: None,
            chat_id: "u1".into(),
            from: Some("u1".into()),
            message: None,
            image: None,
        };
        let v: Value = serde_json::from_str(&transient_event(EventType::Typing, &payload)).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["eventType"], "typing");
        assert!(v.get("id").is_none());
        assert_eq!(v["payload"], json!({"chatId":"u1","from":"u1"}));
    }
}
