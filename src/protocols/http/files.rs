//! `GET /files` and `GET /files/{name}`: the named-file store over HTTP, the
//! same files the TCP protocol's PUT stores. Listing returns names and sizes
//! as JSON; a file is served with the Content-Type sniffed from its bytes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::files::{FileRepo, StorageError};
use crate::pipeline::InputFormat;

/// The routes, with the store as their own state.
pub fn routes(store: Arc<dyn FileRepo>) -> Router {
    Router::new()
        .route("/files", get(list))
        .route("/files/{name}", get(fetch))
        .with_state(store)
}

fn store_error(e: StorageError) -> Response {
    if matches!(
        e,
        StorageError::Io { .. } | StorageError::Interrupted | StorageError::Backend(_)
    ) {
        tracing::error!(error = %e, "file store error");
        return ApiError::of(e.code(), "the file store could not be read").into_response();
    }
    ApiError::of(e.code(), e.to_string()).into_response()
}

async fn list(State(store): State<Arc<dyn FileRepo>>) -> Response {
    match store.list().await {
        Ok(files) => Json(json!({ "files": files })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn fetch(State(store): State<Arc<dyn FileRepo>>, Path(name): Path<String>) -> Response {
    let data = match store.get(&name).await {
        Ok(data) => data,
        Err(e) => return store_error(e),
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
