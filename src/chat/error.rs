//! Why a chat request failed, with the stable code sent to the client in
//! `{"error":"<code>","message":"..."}`. Owns the codes only; it sends nothing.

use crate::error::Code;
use crate::jobs::JobError;

/// A chat request (or client event) that could not be carried out. The
/// socket stays open after any of these.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatError {
    /// A text frame that is not JSON.
    #[error("the frame is not valid JSON: {0}")]
    InvalidJson(String),
    /// A binary frame: chat speaks JSON text frames only.
    #[error("binary frames are not part of the chat protocol; send JSON text frames")]
    BinaryFrame,
    /// `type`, `payloadType` or `eventType` names nothing we know.
    #[error("{0}")]
    UnknownType(String),
    /// A field is missing, has the wrong type, or an invalid value.
    #[error("{0}")]
    InvalidRequest(String),
    /// No valid signed token while `auth.jwt_secret` is set.
    #[error("{0}")]
    Unauthorized(String),
    /// The message text is longer than `chat.max_message_len` bytes.
    #[error("the message is {len} bytes long; the limit is {limit} bytes")]
    MessageTooLong { len: usize, limit: usize },
    /// No message with this id exists (any more).
    #[error("message {0} does not exist")]
    UnknownMessage(u64),
    /// Acting on a message in a way only its author or recipient may.
    #[error("{0}")]
    Forbidden(&'static str),
    /// `getEvent` names an event that is not kept (or never was).
    #[error("event {0} is not kept; reload with getMessages")]
    UnknownEvent(u64),
    /// `getEvents` from an id whose following events are not all kept (or
    /// an id above the user's last).
    #[error("the events after {0} are not all kept; subscribe again or reload with getMessages")]
    EventsGone(u64),
    /// `getEvents` would answer with more events than it may.
    #[error("{count} events follow; getEvents answers at most {limit}: subscribe instead")]
    TooManyEvents { count: usize, limit: usize },
    /// An `image` given as an md5 names no earlier upload.
    #[error("no uploaded image has md5 {0}")]
    UnknownImage(String),
    /// An `image` given as base64 does not decode.
    #[error("the image is neither the md5 of an upload nor valid base64: {0}")]
    InvalidBase64(String),
    /// The image is larger than the chat accepts before processing.
    #[error("the image is {size} bytes; the limit is {limit} bytes")]
    ImageTooLarge { size: usize, limit: u64 },
    /// The pipeline (or its pool) failed on the image.
    #[error(transparent)]
    Image(#[from] JobError),
    /// The user has `chat.max_sockets_per_user` sockets open already.
    #[error("{0}")]
    TooManySockets(String),
    /// A frame over `chat.max_frame_bytes`; the connection is closed.
    #[error("the frame is larger than the chat accepts; the connection is closed")]
    FrameTooLarge,
    /// The server already tracks `chat.max_users` users.
    #[error("the chat has reached its limit of {0} users")]
    TooManyUsers(usize),
    /// The shared chat store (Redis) did not answer.
    #[error("the chat store is unavailable: {0}")]
    BackendUnavailable(String),
}

impl From<crate::backend::ChatRepoError> for ChatError {
    fn from(e: crate::backend::ChatRepoError) -> Self {
        match e {
            crate::backend::ChatRepoError::TooManyUsers(max) => Self::TooManyUsers(max),
            crate::backend::ChatRepoError::Backend(e) => {
                tracing::warn!(error = %e, "chat store");
                Self::BackendUnavailable(e.to_string())
            }
        }
    }
}

impl ChatError {
    /// Stable machine-readable code.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidJson(_) => Code::InvalidJson,
            Self::BinaryFrame => Code::BinaryNotSupported,
            Self::UnknownType(_) => Code::UnknownType,
            Self::InvalidRequest(_) => Code::InvalidRequest,
            Self::Unauthorized(_) => Code::Unauthorized,
            Self::MessageTooLong { .. } => Code::MessageTooLong,
            Self::UnknownMessage(_) => Code::UnknownMessage,
            Self::UnknownEvent(_) | Self::EventsGone(_) => Code::UnknownEvent,
            Self::TooManyEvents { .. } => Code::TooManyEvents,
            Self::Forbidden(_) => Code::Forbidden,
            Self::UnknownImage(_) => Code::UnknownImage,
            Self::InvalidBase64(_) => Code::InvalidBase64,
            Self::ImageTooLarge { .. } => Code::TooLarge,
            Self::Image(e) => e.code(),
            Self::TooManyUsers(_) => Code::TooManyUsers,
            Self::TooManySockets(_) => Code::TooManySockets,
            Self::FrameTooLarge => Code::FrameTooLarge,
            Self::BackendUnavailable(_) => Code::BackendUnavailable,
        }
    }
}
