//! What the room protocols share on the wire: JSON frames in and out, clock
//! values, and the checks on room and member names from the URL.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Longest room or member name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Serialises `value` as a text frame.
pub fn json(value: &impl Serialize) -> Message {
    // Our message types are plain structs of strings and numbers, which
    // always serialise.
    Message::text(serde_json::to_string(value).expect("message serialises"))
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

/// A room name from the URL: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_room(room: &str) -> Result<(), String> {
    let ok_chars = room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if room.is_empty() || room.chars().count() > MAX_NAME_CHARS || !ok_chars {
        return Err(format!(
            "invalid room name {room:?}: use 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// A member's display name: trimmed, 1 to 64 characters, no control
/// characters. `None` or blank gives `fallback`.
pub fn check_member_name(name: Option<&str>, fallback: &str) -> Result<String, String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok(fallback.to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "invalid name {name:?}: use 1 to {MAX_NAME_CHARS} characters without control characters"
        ));
    }
    Ok(name.to_owned())
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
    fn names_are_checked() {
        assert!(check_room("team-1.a_b").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a/b").is_err());
        assert!(check_room(&"x".repeat(65)).is_err());
        assert_eq!(check_member_name(None, "anon").unwrap(), "anon");
        assert_eq!(check_member_name(Some(" Ann "), "anon").unwrap(), "Ann");
        assert!(check_member_name(Some("a\nb"), "anon").is_err());
    }
}
