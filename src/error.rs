//! The one registry of stable error codes. Every error a client can see
//! (a JSON body over HTTP, an error message over a WebSocket, the DETAILS of
//! a TCP ERROR reply) carries one of these codes; each protocol's error type
//! names its code here and nowhere else. `docs/errors.md` lists them all (a
//! test keeps the two in step).
//!
//! It also owns the one JSON shape of an HTTP error,
//! `{"error": code, "message": text}`, used by every route and by WebSocket
//! upgrade refusals alike.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

macro_rules! codes {
    ($($variant:ident = $text:literal, $status:literal, $doc:literal;)*) => {
        /// A stable machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }

        impl Code {
            /// Every code, in the registry's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The HTTP status an answer with this code has.
            pub fn status(self) -> StatusCode {
                let status = match self {
                    $(Code::$variant => $status,)*
                };
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// What the code means, for people.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Code::$variant => $doc,)*
                }
            }

            /// The code named `text`, if the registry has it.
            pub fn parse(text: &str) -> Option<Code> {
                match text {
                    $($text => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // Requests
    BadRequest = "bad_request", 400, "A request field is missing or invalid (the message names it).";
    InvalidRequest = "invalid_request", 400, "A chat request or its payload is missing a field or has a wrong value.";
    InvalidJson = "invalid_json", 400, "A text frame is not a JSON object, or has no `type`.";
    InvalidMessage = "invalid_message", 400, "A message of a known type has missing or wrong fields.";
    UnknownType = "unknown_type", 400, "A message, payload or event type the protocol does not know.";
    InvalidClientType = "invalid_client_type", 400, "img2img `register` with a client_type other than producer or consumer.";
    InvalidBase64 = "invalid_base64", 400, "Image data that is not valid base64 (plain or a `data:` URL).";
    BinaryNotSupported = "binary_not_supported", 400, "A binary frame on a protocol that speaks JSON text frames only.";
    MetadataTimeout = "metadata_timeout", 400, "`img2img_binary` metadata whose binary frame did not follow in time.";
    UploadTimeout = "upload_timeout", 408, "A share-room upload got no chunk within `share.upload_timeout` and was dropped.";
    MessageTooLarge = "message_too_large", 413, "A WebSocket message over the protocol's size limit; the socket closes.";
    FrameTooLarge = "frame_too_large", 413, "A chat frame over `chat.max_frame_bytes`; the socket closes.";
    MessageTooLong = "message_too_long", 400, "A chat message text over `chat.max_message_len`.";
    NotFound = "not_found", 404, "No such route, task, variant, file or image.";
    NotReady = "not_ready", 409, "The variant is still queued or processing.";
    NotAcceptable = "not_acceptable", 406, "`GET /download?format=auto`: the auto variant is done, but in a format the `Accept` header does not allow.";
    // Who may ask
    Unauthorized = "unauthorized", 401, "A valid API key or signed token is required.";
    Forbidden = "forbidden", 403, "Only the author (or recipient) of a message may do this.";
    SignatureRequired = "signature_required", 403, "`GET /download` without a signature while `download.signed_urls` is on: use the signed `url` the server handed out.";
    SignatureInvalid = "signature_invalid", 403, "A download link whose signature does not match it (changed, appended to, or signed with another secret).";
    LinkExpired = "link_expired", 403, "A signed download link past its `expires` (`download.link_lifetime`); a status request hands out a fresh one.";
    RateLimited = "rate_limited", 429, "Too many uploads from this client; slow down.";
    TooManyRequests = "too_many_requests", 429, "Too many requests in flight on this socket; wait for an answer first.";
    TooFrequent = "too_frequent", 429, "Shared text-pad updates faster than `share.text_pad_burst` and `share.text_pad_refill` allow.";
    TooManySockets = "too_many_sockets", 503, "The user has `chat.max_sockets_per_user` sockets open already.";
    TooManyUsers = "too_many_users", 503, "The chat tracks `chat.max_users` users already.";
    RoomFull = "room_full", 503, "The room has its maximum of members.";
    // Images
    TooLarge = "too_large", 413, "The upload or image is over the size limit.";
    UnsupportedFormat = "unsupported_format", 415, "Not an image format the pipeline decodes.";
    TooManyPixels = "too_many_pixels", 422, "The image's header states a size over `limits.*`.";
    InvalidImage = "invalid_image", 422, "Corrupt, truncated or otherwise undecodable image data.";
    InvalidOperation = "invalid_operation", 422, "An edit step does not fit the image (e.g. a crop outside it).";
    EncodeFailed = "encode_failed", 422, "The encoder failed on this image.";
    BudgetNotMet = "budget_not_met", 422, "The image could not be compressed below the byte budget.";
    InvalidTarget = "invalid_target", 400, "A perceptual score target outside 30-100.";
    FormatUnavailable = "format_unavailable", 400, "The output format was compiled out of this build.";
    UnknownImage = "unknown_image", 404, "A chat message names an image md5 that no upload has.";
    UnknownMessage = "unknown_message", 404, "A chat message id that does not exist (any more).";
    UnknownEvent = "unknown_event", 404, "A chat event id that is not kept (any more), or events after it that are gone.";
    TooManyEvents = "too_many_events", 400, "More chat events follow than `getEvents` answers with (100); subscribe instead.";
    // The job service
    QueueFull = "queue_full", 503, "The processing queue is full; retry in a moment.";
    ProcessingTimeout = "processing_timeout", 422, "Processing passed its deadline and was stopped.";
    ShuttingDown = "shutting_down", 503, "The server is shutting down and takes no new work.";
    TooManyConnections = "too_many_connections", 503, "The client address has `server.max_connections_per_client` connections open (HTTP, WebSocket and TCP together).";
    BackendUnavailable = "backend_unavailable", 503, "The shared backend (Redis) did not answer: jobs, room state, or a chat request with `backend.kind: redis`.";
    JobFailedRepeatedly = "job_failed_repeatedly", 422, "The job stopped its worker `backend.max_attempts` times (the instance died running it) and was set aside; it is not tried again.";
    InternalError = "internal_error", 500, "Something failed unexpectedly; only this request is affected.";
    // Named files
    InvalidName = "invalid_name", 400, "A file name with a path, a hidden or control character, or too long.";
    AlreadyExists = "already_exists", 409, "A file with this name is stored already; stores never overwrite.";
    StoreFull = "store_full", 507, "The file store holds its maximum of files or bytes.";
    StorageError = "storage_error", 500, "The file store could not be read or written.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The registry's code for a pipeline error (an unknown one reads as
/// `internal_error`).
pub fn pipeline_code(e: &crate::pipeline::PipelineError) -> Code {
    Code::parse(e.code()).unwrap_or(Code::InternalError)
}

/// An HTTP error answer: `{"error": code, "message": text}` with the code's
/// status (or another one the route chooses).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

impl ApiError {
    /// An answer with `code`'s own status.
    pub fn of(code: Code, message: impl Into<String>) -> Self {
        Self::new(code.status(), code, message)
    }

    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::of(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(Code::NotFound, message)
    }

    pub fn too_large(limit: u64) -> Self {
        Self::of(
            Code::TooLarge,
            format!("the upload is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::of(
            Code::Unauthorized,
            "a valid API key is required: send Authorization: Bearer <key>",
        )
    }

    pub fn rate_limited() -> Self {
        Self::of(
            Code::RateLimited,
            "too many uploads from this client, slow down",
        )
    }

    pub fn too_many_connections(max: usize) -> Self {
        Self::of(
            Code::TooManyConnections,
            format!(
                "too many connections from this address (at most {max}); close one and try again"
            ),
        )
    }

    pub fn shutting_down() -> Self {
        Self::of(
            Code::ShuttingDown,
            "the server is shutting down and takes no new work; try again shortly",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::of(Code::InternalError, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            assert!(!code.describe().is_empty());
        }
    }

    #[test]
    fn every_pipeline_error_has_a_registered_code() {
        use crate::pipeline::PipelineError as P;
        let errors = [
            P::UnsupportedFormat,
            P::InputTooLarge { size: 2, limit: 1 },
            P::TooManyPixels {
                width: 2,
                height: 2,
                max_dimension: 1,
                max_pixels: 1,
            },
            P::InvalidImage("x".into()),
            P::InvalidOperation("x".into()),
            P::BudgetNotMet { max_bytes: 1 },
            P::Encode("x".into()),
            P::FormatUnavailable("avif"),
            P::InvalidTarget("101".into()),
            P::Timeout,
        ];
        for e in errors {
            assert_eq!(pipeline_code(&e), e.code(), "{e}");
        }
    }

    #[test]
    fn docs_list_every_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
        let text = std::fs::read_to_string(path).expect("docs/errors.md");
        let missing: Vec<_> = Code::ALL
            .iter()
            .filter(|c| !text.contains(&format!("| `{}` |", c.as_str())))
            .collect();
        assert!(missing.is_empty(), "docs/errors.md misses {missing:?}");
    }
}
