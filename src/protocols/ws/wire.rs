//! What every WebSocket protocol shares on the wire: JSON frames in and
//! out, frame errors with their registry codes, and clock values.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes};
use axum::http::HeaderMap;
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, HeaderMapExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::Code;
use crate::rooms::Frame as Outgoing;

/// Serialises `value` as a text frame.
pub fn json(value: &impl Serialize) -> Outgoing {
    // Our message types are plain structs of strings and numbers, which
    // always serialise.
    Outgoing::text(serde_json::to_string(value).expect("message serialises"))
}

/// The socket message of a hub frame: the one place frames become
/// WebSocket messages.
pub fn message(frame: Outgoing) -> Message {
    if frame.is_text() {
        let data = frame.into_data();
        // A text frame was made from a string, so this always holds.
        match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(data),
        }
    } else {
        Message::Binary(frame.into_data())
    }
}

/// A text frame that could not be read as the message it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("missing \"type\" field")]
    NoType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {kind} message: {reason}")]
    Invalid { kind: String, reason: String },
}

impl FrameError {
    /// The registry's code for this fault.
    pub fn code(&self) -> Code {
        match self {
            Self::UnknownType(_) => Code::UnknownType,
            Self::NotJson(_) | Self::NoType => Code::InvalidJson,
            Self::Invalid { .. } => Code::InvalidMessage,
        }
    }
}

/// A text frame split into its `type` and the object itself.
pub struct Frame {
    pub kind: String,
    pub body: Value,
}

impl Frame {
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let body: Value =
            serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        if !body.is_object() {
            return Err(FrameError::NotJson("expected an object".into()));
        }
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .ok_or(FrameError::NoType)?
            .to_owned();
        Ok(Self { kind, body })
    }

    /// Reads the frame as message type `T`.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        T::deserialize(&self.body).map_err(|e| FrameError::Invalid {
            kind: self.kind.clone(),
            reason: e.to_string(),
        })
    }

    /// A string field, if present (to name the upload in an error reply).
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    pub fn unknown(&self) -> FrameError {
        FrameError::UnknownType(self.kind.clone())
    }

    /// Passes over a message of a type this protocol does not know, as the
    /// original servers do: logged and counted
    /// (`pixpress_ws_ignored_messages_total`), never answered.
    pub fn ignore(&self, protocol: &'static str) {
        tracing::debug!(protocol, kind = %self.kind, "unknown message type ignored");
        metrics::counter!("pixpress_ws_ignored_messages_total", "protocol" => protocol)
            .increment(1);
    }
}

/// The query of a room protocol's upgrade.
#[derive(Debug, Default, serde::Deserialize)]
pub struct JoinQuery {
    /// The member's display name (when auth is off).
    pub name: Option<String>,
    /// A signed token, for browsers that cannot set `Authorization`.
    pub token: Option<String>,
}

/// The bearer token of an upgrade request: `Authorization: Bearer <token>`,
/// else `?token=` (browsers cannot set headers on a WebSocket).
pub fn bearer_token(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    headers
        .typed_get::<Authorization<Bearer>>()
        .map(|a| a.token().trim().to_owned())
        .or_else(|| query_token.map(|t| t.trim().to_owned()))
}

/// Whole seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the Unix epoch with a fraction (millisecond precision).
pub fn unix_seconds_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_name_their_type_or_say_what_is_wrong() {
        let f = Frame::parse(r#"{"type":"text","text":"hi"}"#).unwrap();
        assert_eq!(f.kind, "text");
        assert!(matches!(Frame::parse("nope"), Err(FrameError::NotJson(_))));
        assert!(matches!(Frame::parse("[1]"), Err(FrameError::NotJson(_))));
        assert!(matches!(
            Frame::parse(r#"{"text":1}"#),
            Err(FrameError::NoType)
        ));
    }

    #[test]
    fn the_header_token_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers, Some("q")).as_deref(), Some("q"));
        headers.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer h".parse().unwrap(),
        );
        assert_eq!(bearer_token(&headers, Some("q")).as_deref(), Some("h"));
        assert_eq!(bearer_token(&HeaderMap::new(), None), None);
    }
}
