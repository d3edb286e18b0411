//! The chat wire format, inbound: parsing what a client sends (requests
//! and client events) into the chat's typed requests. Owns shapes and field
//! validation only; it holds no state and sends nothing. The frames the chat
//! sends are built by `chat::events`.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::chat::{ChatError, Mark, MarkReply, Receipt, Request, Target, UserId};

/// One text frame from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A request, answered by a response with the same `id`.
    Request { id: Value, request: Request },
    /// The client event `typing {chatId}`; it gets no response.
    Typing { chat_id: UserId },
    /// The client event `offline {}`; it gets no response.
    Offline,
    /// `{"type":"ack","id":N}`, which clients of the original's later
    /// versions send after each event: nothing to do.
    Ack,
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
struct EditPayload {
    #[serde(flatten)]
    target: Target,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRef {
    event_id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FromEventId {
    from_event_id: u64,
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
            let Some(payload_type) = frame.get("payloadType").and_then(Value::as_str) else {
                return Err(bad(id, "a request needs a payloadType string"));
            };
            let payload_type = payload_type.to_owned();
            let payload = frame.remove("payload").unwrap_or(Value::Null);
            // The original sends client events as requests without an id.
            if is_client_event(&payload_type) {
                return client_event(&payload_type, payload)
                    .map_err(|error| BadFrame { id, error });
            }
            if id.is_null() {
                return Err(bad(id, "a request needs an id (string or number)"));
            }
            match parse_request(&payload_type, payload) {
                Ok(request) => Ok(ClientFrame::Request { id, request }),
                Err(error) => Err(BadFrame { id, error }),
            }
        }
        "event" => {
            let event_type = frame.get("eventType").and_then(Value::as_str).unwrap_or("");
            let event_type = event_type.to_owned();
            let payload = frame.remove("payload").unwrap_or(Value::Null);
            if !is_client_event(&event_type) {
                return Err(BadFrame {
                    id,
                    error: ChatError::UnknownType(format!(
                        "unknown client eventType {event_type:?}; clients may send: typing, offline"
                    )),
                });
            }
            client_event(&event_type, payload).map_err(|error| BadFrame { id, error })
        }
        "ack" => Ok(ClientFrame::Ack),
        other => Err(BadFrame {
            id,
            error: ChatError::UnknownType(format!(
                "unknown frame type {other:?}; send \"request\" or \"event\""
            )),
        }),
    }
}

/// The client events, which clients send as events or as requests.
fn is_client_event(name: &str) -> bool {
    matches!(name, "typing" | "offline")
}

/// A client event (one that [`is_client_event`] names).
fn client_event(name: &str, payload: Value) -> Result<ClientFrame, ChatError> {
    if name == "typing" {
        let r: ChatRef = payload_of(name, payload)?;
        return Ok(ClientFrame::Typing { chat_id: r.chat_id });
    }
    // `offline`: its payload is `{}` or absent; nothing in it is needed.
    Ok(ClientFrame::Offline)
}

fn bad(id: Value, message: &str) -> BadFrame {
    BadFrame {
        id,
        error: ChatError::InvalidRequest(message.into()),
    }
}

fn parse_request(payload_type: &str, payload: Value) -> Result<Request, ChatError> {
    let t = payload_type;
    let mark = |receipt, reply, payload| -> Result<Request, ChatError> {
        Ok(Request::Mark(Mark {
            receipt,
            target: payload_of(t, payload)?,
            reply,
        }))
    };
    Ok(match t {
        "subscribe" => Request::Subscribe {
            last_event_id: payload_of::<LastEventId>(t, payload)?.last_event_id,
        },
        "new" => Request::New(payload_of(t, payload)?),
        "edit" => {
            let p: EditPayload = payload_of(t, payload)?;
            Request::Edit {
                target: p.target,
                message: p.message,
            }
        }
        "delete" => Request::Delete {
            target: payload_of(t, payload)?,
        },
        "dlvrd" => mark(Receipt::Delivered, MarkReply::Nothing, payload)?,
        "delivered" => mark(Receipt::Delivered, MarkReply::MessageId, payload)?,
        "read" => mark(Receipt::Read, MarkReply::Echo, payload)?,
        "getMessage" => Request::GetMessage(payload_of(t, payload)?),
        "getMessages" => Request::GetMessages(payload_of(t, payload)?),
        "history" => Request::History(payload_of(t, payload)?),
        "getChat" => Request::GetChat {
            chat_id: payload_of::<ChatRef>(t, payload)?.chat_id,
        },
        "getChats" => {
            // `{}` or no payload at all.
            if !payload.is_null() {
                payload_of::<serde::de::IgnoredAny>(t, payload)?;
            }
            Request::GetChats
        }
        "getEvent" => Request::GetEvent {
            event_id: payload_of::<EventRef>(t, payload)?.event_id,
        },
        "getEvents" => Request::GetEvents {
            from_event_id: payload_of::<FromEventId>(t, payload)?.from_event_id,
        },
        other => {
            return Err(ChatError::UnknownType(format!(
                "unknown payloadType {other:?}; expected one of subscribe, new, edit, delete, \
                 dlvrd (or delivered), read, getMessage, getMessages (or history), getChat, \
                 getChats, getEvent, getEvents, typing, offline"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::NewMessage;
    use serde_json::json;

    fn parse_err(text: &str) -> (Value, &'static str) {
        let e = parse(text).expect_err(text);
        (e.id, e.error.code().as_str())
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
                    image: None,
                    attachments: Vec::new(),
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
    fn the_originals_names_and_client_events_are_understood() {
        let f = parse(r#"{"type":"request","timestamp":1,"payloadType":"typing","payload":{"chatId":"User2"}}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Typing {
                chat_id: "User2".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"event","timestamp":1,"eventType":"offline"}"#).unwrap(),
            ClientFrame::Offline
        );
        assert_eq!(parse(r#"{"type":"ack","id":1}"#).unwrap(), ClientFrame::Ack);
        let target = Target {
            chat_id: Some("User1".into()),
            message_id: 125,
        };
        for (name, receipt, reply) in [
            ("dlvrd", Receipt::Delivered, MarkReply::Nothing),
            ("delivered", Receipt::Delivered, MarkReply::MessageId),
            ("read", Receipt::Read, MarkReply::Echo),
        ] {
            let text = format!(
                r#"{{"type":"request","id":"1","payloadType":"{name}","payload":{{"chatId":"User1","messageId":125}}}}"#
            );
            assert_eq!(
                parse(&text).unwrap(),
                ClientFrame::Request {
                    id: json!("1"),
                    request: Request::Mark(Mark {
                        receipt,
                        target: target.clone(),
                        reply
                    })
                }
            );
        }
        let f = parse(r#"{"type":"request","id":2,"payloadType":"edit","payload":{"chatId":"User2","messageId":125,"message":"x"}}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Request {
                id: json!(2),
                request: Request::Edit {
                    target: Target {
                        chat_id: Some("User2".into()),
                        message_id: 125
                    },
                    message: "x".into()
                }
            }
        );
        let f =
            parse(r#"{"type":"request","id":3,"payloadType":"getChats","payload":{}}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Request {
                id: json!(3),
                request: Request::GetChats
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
}
