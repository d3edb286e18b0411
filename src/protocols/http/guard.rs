//! Request guards for the job APIs: API keys (`auth.api_keys`), signed
//! download links (`download.signed_urls`) and per-client upload rate
//! limits (`upload.rate_limit_per_minute`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, HeaderMapExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use crate::error::ApiError;

/// Uploads per client address.
pub type UploadLimiter = DefaultKeyedRateLimiter<IpAddr>;

pub fn upload_limiter(per_minute: u32, burst: u32) -> Option<Arc<UploadLimiter>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    )))
}

/// Requires `Authorization: Bearer <key>` (or `?access_token=<key>`, for
/// browsers' WebSockets) when API keys are configured.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.settings.auth;
    let mut request = request;
    if auth.api_keys.is_empty() {
        request.extensions_mut().insert(crate::auth::Caller::open());
        return next.run(request).await;
    }
    let from_header = request
        .headers()
        .typed_get::<Authorization<Bearer>>()
        .map(|a| a.token().trim().to_owned());
    let from_query = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
        .map(str::to_owned);
    match crate::auth::api_caller(auth, from_header.or(from_query).as_deref()) {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// `GET /download`: with `download.signed_urls` a valid, unexpired signed
/// link is required (403 otherwise, API key or not) and is enough by
/// itself: the server handed it to a caller allowed to see the task, who
/// may pass it on until it expires. Without signed links, the API key rule
/// of the other job routes.
pub async fn download_access(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.links.signed() {
        return require_api_key(State(state), request, next).await;
    }
    let uri = request.uri();
    match state
        .links
        .check(uri.path(), uri.query(), std::time::SystemTime::now())
    {
        Ok(()) => {
            request.extensions_mut().insert(crate::auth::Caller::open());
            next.run(request).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Refuses new work (an upload, a `/ws` connection) with 503
/// `shutting_down` once the server is stopping; statuses and downloads of
/// accepted jobs are still answered while they finish.
pub async fn refuse_when_stopping(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.shutting_down() {
        return refuse_unread(request, ApiError::shutting_down()).await;
    }
    next.run(request).await
}

/// Counts one upload (HTTP or WebSocket connection) against the client.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &state.upload_limiter {
        let ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = ip {
            if limiter.check_key(&ip).is_err() {
                return refuse_unread(request, ApiError::rate_limited()).await;
            }
        }
    }
    next.run(request).await
}

/// Most of a refused request's body that is read and dropped before the
/// answer; a longer body is answered with `Connection: close` instead.
pub const DISCARD_LIMIT: usize = 1024 * 1024;

/// Answers `request` with `error` before its body was used: reads and drops
/// the body first (up to `DISCARD_LIMIT`), because closing a socket with
/// unread data resets it and a keep-alive client would lose the answer.
pub async fn refuse_unread(request: Request, error: ApiError) -> Response {
    let drained = axum::body::to_bytes(request.into_body(), DISCARD_LIMIT).await;
    match drained {
        Ok(_) => error.into_response(),
        Err(_) => refuse_and_close(error),
    }
}

/// Answers with `error` and closes the connection after the answer: for a
/// body too long to read and drop.
pub fn refuse_and_close(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
