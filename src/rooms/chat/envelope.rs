//! The chat wire format: parsing what a client sends (requests and client
//! events) into typed values, and building the frames the server sends
//! (responses and events). Owns shapes and field validation only; it holds
//! no state and sends nothing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ChatError;
use super::store::StoredEvent;

/// A user's id, as given by `?user=` (and as a `chatId`).
pub type UserId = String;

/// Checks a user id (ours or a `chatId`): 1 to `max_len` bytes, no control
/// characters.
pub fn validate_user_id(id: &str, max_len: usize, field: &str) -> Result<(), ChatError> {
    if id.is_empty() || id.len() > max_len || id.chars().any(char::is_control) {
        return Err(ChatError::InvalidRequest(format!(
            "{field} must be 1 to {max_len} bytes without control characters"
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

/// One text frame from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A request, answered by a response with the same `id`.
    Request { id: Value, request: Request },
    /// The client event `typing {chatId}`; it gets no response.
    Typing { chat_id: UserId },
}

/// A frame that could not be understood; answered with an error response
/// carrying the request's `id` when it had one (`null` otherwise).
#[derive(Debug, Clone)]
pub struct BadFrame {
    pub id: Value,
    pub error: ChatError,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastEventId {
    last_event_id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRef {
    message_id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditPayload {
    message_id: u64,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatRef {
    chat_id: UserId,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, BadFrame> {
    let value: Value = serde_json::from_str(text).map_err(|e| BadFrame {
        id: Value::Null,
        error: ChatError::InvalidJson(e.to_string()),
    })?;
    let Value::Object(mut frame) = value else {
        return Err(bad(Value::Null, "a frame must be a JSON object"));
    };
    // Echo the request id whenever there is one, even if the rest is bad.
    let id = match frame.remove("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id,
        Some(_) => return Err(bad(Value::Null, "id must be a string or a number")),
        None => Value::Null,
    };
    let kind = frame.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "request" => {
            if id.is_null() {
                return Err(bad(id, "a request needs an id (string or number)"));
            }
            let Some(payload_type) = frame.get("payloadType").and_then(Value::as_str) else {
                return Err(bad(id, "a request needs a payloadType string"));
            };
            let payload_type = payload_type.to_owned();
            let payload = frame.remove("payload").unwrap_or(Value::Null);
            match parse_request(&payload_type, payload) {
                Ok(request) => Ok(ClientFrame::Request { id, request }),
                Err(error) => Err(BadFrame { id, error }),
            }
        }
        "event" => {
            let event_type = frame.get("eventType").and_then(Value::as_str).unwrap_or("");
            match event_type {
                "typing" => {
                    let payload = frame.remove("payload").unwrap_or(Value::Null);
                    let r: ChatRef = payload_of("typing", payload).map_err(|error| BadFrame {
                        id: id.clone(),
                        error,
                    })?;
                    Ok(ClientFrame::Typing { chat_id: r.chat_id })
                }
                other => Err(BadFrame {
                    id,
                    error: ChatError::UnknownType(format!(
                        "unknown client eventType {other:?}; clients may send: typing"
                    )),
                }),
            }
        }
        other => Err(BadFrame {
            id,
            error: ChatError::UnknownType(format!(
                "unknown frame type {other:?}; send \"request\" or \"event\""
            )),
        }),
    }
}

fn bad(id: Value, message: &str) -> BadFrame {
    BadFrame {
        id,
        error: ChatError::InvalidRequest(message.into()),
    }
}

fn parse_request(payload_type: &str, payload: Value) -> Result<Request, ChatError> {
    let t = payload_type;
    Ok(match t {
        "subscribe" => Request::Subscribe {
            last_event_id: payload_of::<LastEventId>(t, payload)?.last_event_id,
        },
        "new" => Request::New(payload_of(t, payload)?),
        "edit" => {
            let p: EditPayload = payload_of(t, payload)?;
            Request::Edit {
                message_id: p.message_id,
                message: p.message,
            }
        }
        "delete" => Request::Delete {
            message_id: payload_of::<MessageRef>(t, payload)?.message_id,
        },
        "delivered" => Request::Delivered {
            message_id: payload_of::<MessageRef>(t, payload)?.message_id,
        },
        "read" => Request::Read {
            message_id: payload_of::<MessageRef>(t, payload)?.message_id,
        },
        "history" => Request::History(payload_of(t, payload)?),
        other => {
            return Err(ChatError::UnknownType(format!(
                "unknown payloadType {other:?}; expected one of subscribe, new, edit, \
                 delete, delivered, read, history"
            )))
        }
    })
}

fn payload_of<T: DeserializeOwned>(payload_type: &str, payload: Value) -> Result<T, ChatError> {
    if !payload.is_object() {
        return Err(ChatError::InvalidRequest(format!(
            "the payload of {payload_type} must be a JSON object"
        )));
    }
    serde_json::from_value(payload)
        .map_err(|e| ChatError::InvalidRequest(format!("payload of {payload_type}: {e}")))
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
    response(
        id,
        json!({"error": error.code(), "message": error.to_string()}),
    )
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

/// A stored (numbered) event as sent.
pub fn event(e: &StoredEvent) -> String {
    event_frame(Some(e.id), e.timestamp, e.kind, &e.payload)
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

    fn parse_err(text: &str) -> (Value, &'static str) {
        let e = parse(text).expect_err(text);
        (e.id, e.error.code())
    }

    #[test]
    fn a_request_is_parsed_with_its_id() {
        let f = parse(r#"{"type":"request","timestamp":1,"id":"r1","payloadType":"new","payload":{"chatId":"u2","message":"hi"}}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Request {
                id: json!("r1"),
                request: Request::New(NewMessage {
                    chat_id: "u2".into(),
                    message: "hi".into(),
                    image: None
                })
            }
        );
        let f = parse(
            r#"{"type":"request","id":7,"payloadType":"subscribe","payload":{"lastEventId":3}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            ClientFrame::Request {
                id: json!(7),
                request: Request::Subscribe { last_event_id: 3 }
            }
        );
    }

    #[test]
    fn typing_is_a_client_event() {
        let f = parse(
            r#"{"type":"event","timestamp":1,"eventType":"typing","payload":{"chatId":"u2"}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            ClientFrame::Typing {
                chat_id: "u2".into()
            }
        );
    }

    #[test]
    fn bad_frames_name_their_fault_and_keep_the_id() {
        assert_eq!(parse_err("not json").1, "invalid_json");
        assert_eq!(parse_err("[1]").1, "invalid_request");
        assert_eq!(
            parse_err(r#"{"type":"request","id":"a","payloadType":"nope","payload":{}}"#),
            (json!("a"), "unknown_type")
        );
        assert_eq!(
            parse_err(
                r#"{"type":"request","id":"b","payloadType":"new","payload":{"chatId":"u2"}}"#
            ),
            (json!("b"), "invalid_request")
        );
        assert_eq!(
            parse_err(
                r#"{"type":"request","id":"c","payloadType":"delete","payload":{"messageId":"x"}}"#
            ),
            (json!("c"), "invalid_request")
        );
        assert_eq!(
            parse_err(r#"{"type":"request","id":"d","payloadType":"read","payload":[]}"#),
            (json!("d"), "invalid_request")
        );
        assert_eq!(
            parse_err(r#"{"type":"request","payloadType":"read","payload":{"messageId":1}}"#),
            (Value::Null, "invalid_request")
        );
        assert_eq!(
            parse_err(r#"{"type":"hello","id":"e"}"#),
            (json!("e"), "unknown_type")
        );
        assert_eq!(
            parse_err(r#"{"type":"event","eventType":"new","payload":{}}"#).1,
            "unknown_type"
        );
    }

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
