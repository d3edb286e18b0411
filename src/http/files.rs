//! `GET /files` and `GET /files/{name}`: the named-file store over HTTP, the
//! same files the TCP protocol's PUT stores. Listing returns names and sizes
//! as JSON; a file is served with the Content-Type sniffed from its bytes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::pipeline::InputFormat;
use crate::storage::{FileStore, StorageError};

/// The routes, with the store as their own state.
pub fn routes(store: Arc<dyn FileStore>) -> Router {
    Router::new()
        .route("/files", get(list))
        .route("/files/{name}", get(fetch))
        .with_state(store)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

fn store_error(e: StorageError) -> Response {
    let status = match e {
        StorageError::NotFound(_) => StatusCode::NOT_FOUND,
        StorageError::InvalidName(_) => StatusCode::BAD_REQUEST,
        StorageError::AlreadyExists(_) => StatusCode::CONFLICT,
        StorageError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
        StorageError::Io { .. } => {
            tracing::error!(error = %e, "file store error");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.code(),
                "the file store could not be read".into(),
            );
        }
    };
    error(status, e.code(), e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error".into(),
        )),
    }
}

async fn list(State(store): State<Arc<dyn FileStore>>) -> Response {
    match blocking(move || store.list()).await {
        Ok(files) => Json(json!({ "files": files })).into_response(),
        Err(response) => response,
    }
}

async fn fetch(State(store): State<Arc<dyn FileStore>>, Path(name): Path<String>) -> Response {
    let data = match blocking(move || store.get(&name)).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let mime = InputFormat::sniff(&data)
        .map(InputFormat::mime)
        .unwrap_or("application/octet-stream");
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
