//! The one mapping from errors to JSON answers: `{"error": code, "message": text}`
//! with the status codes of the contract. Every HTTP handler returns `ApiError`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::jobs::JobError;
use crate::pipeline::PipelineError;

/// An HTTP error answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the upload is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: send Authorization: Bearer <key>",
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many uploads from this client, slow down",
        )
    }

    /// The status code for a job or pipeline error code.
    pub fn status_for(err: &JobError) -> StatusCode {
        match err {
            JobError::QueueFull | JobError::ShuttingDown | JobError::BackendUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            JobError::Timeout => StatusCode::UNPROCESSABLE_ENTITY,
            JobError::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
            JobError::Pipeline(p) => match p {
                PipelineError::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                PipelineError::InputTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                PipelineError::FormatUnavailable(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
        }
    }
}

impl From<JobError> for ApiError {
    fn from(err: JobError) -> Self {
        Self::new(Self::status_for(&err), err.code(), err.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        JobError::Pipeline(err).into()
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
