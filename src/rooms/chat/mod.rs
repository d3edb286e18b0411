//! Chat over WebSocket (`GET /ws/chat?user=ID`): direct chats between users,
//! with per-user numbered events that a client resumes from after a
//! reconnect, and images in messages. The protocol is described in
//! `docs/chat.md`.
//!
//! This module owns the chat's routes, the user extraction and the
//! [`UploadedImages`] seam through which messages may reference images
//! uploaded over HTTP. Parts: `envelope` (wire shapes), `store` (state and
//! rules), `service` (lock and fan-out through the room hub), `socket` (one
//! connection), `images` (message images), `error` (error codes).

mod envelope;
mod error;
mod images;
mod service;
mod socket;
mod store;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use error::ChatError;

use self::envelope::UserId;
use self::images::ChatImages;
use self::service::ChatService;
use self::store::{ChatStore, StoreLimits};
use crate::config::Settings;
use crate::http::identity::{identify, IdentityError};
use crate::jobs::WorkerPool;
use crate::rooms::hub::{HubLimits, RoomHub};

/// An image a message refers to, as its events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub md5: String,
    /// Where clients fetch the bytes.
    pub url: String,
    pub width: u32,
    pub height: u32,
    /// Bytes.
    pub size: u64,
}

/// Images uploaded earlier (over HTTP), found by the md5 that the upload
/// answered with. A message's `image` may name one of them.
pub trait UploadedImages: Send + Sync {
    fn find(&self, md5: &str) -> Option<ImageRef>;
}

#[derive(Clone)]
struct ChatState {
    service: Arc<ChatService>,
    settings: Arc<Settings>,
}

/// The chat's routes: `GET /ws/chat?user=ID` and `GET /chat/images/{md5}`.
/// Called inside a Tokio runtime, it also starts the retention sweep, which
/// ends when the router is dropped.
pub fn routes(
    pool: WorkerPool,
    settings: Arc<Settings>,
    uploads: Arc<dyn UploadedImages>,
) -> Router {
    let chat = &settings.chat;
    let hub = RoomHub::new(HubLimits {
        max_members: chat.max_sockets_per_user.max(1),
        member_queue: chat
            .max_events_per_user
            .saturating_add(chat.socket_queue)
            .saturating_add(1),
    });
    let images = ChatImages::new(pool, uploads, &settings);
    let store = ChatStore::new(StoreLimits::from(chat));
    let service = Arc::new(ChatService::new(store, hub, images));
    start_sweep(Arc::downgrade(&service), chat.retention);
    let state = ChatState { service, settings };
    Router::new()
        .route("/ws/chat", get(open_socket))
        .route("/chat/images/{md5}", get(image))
        .with_state(state)
}

#[derive(Deserialize)]
struct UserParams {
    user: Option<String>,
    token: Option<String>,
}

/// Who is connecting: `?user=`, or a signed token's `sub` when
/// `auth.jwt_secret` is set.
fn user_of(
    params: &UserParams,
    headers: &HeaderMap,
    settings: &Settings,
) -> Result<UserId, (StatusCode, ChatError)> {
    let user = identify(
        &settings.auth,
        headers,
        params.token.as_deref(),
        params.user.as_deref(),
    )
    .map_err(|e| match e {
        IdentityError::MissingName => (
            StatusCode::BAD_REQUEST,
            ChatError::InvalidRequest(
                "the user query parameter is required: /ws/chat?user=ID".into(),
            ),
        ),
        IdentityError::MissingToken | IdentityError::BadToken(_) => (
            StatusCode::UNAUTHORIZED,
            ChatError::Unauthorized(e.to_string()),
        ),
        IdentityError::BadName => (
            StatusCode::BAD_REQUEST,
            ChatError::InvalidRequest(e.to_string()),
        ),
    })?;
    envelope::validate_user_id(&user, settings.chat.max_user_id_len, "user")
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    Ok(user)
}

async fn open_socket(
    State(state): State<ChatState>,
    Query(params): Query<UserParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let user = match user_of(&params, &headers, &state.settings) {
        Ok(user) => user,
        Err((status, e)) => return error_reply(status, &e),
    };
    let max_frame = usize::try_from(state.settings.chat.max_frame_bytes).unwrap_or(usize::MAX);
    let max_pending = state.settings.chat.max_pending_requests;
    upgrade
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| socket::run(socket, state.service, user, max_pending))
}

async fn image(State(state): State<ChatState>, Path(md5): Path<String>) -> Response {
    match state.service.images.bytes(&md5.to_ascii_lowercase()).await {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, "image/webp"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        None => {
            let body = serde_json::json!({
                "error": "not_found",
                "message": format!("no chat image with md5 {md5}"),
            });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

fn error_reply(status: StatusCode, error: &ChatError) -> Response {
    let body = serde_json::json!({"error": error.code(), "message": error.to_string()});
    (status, Json(body)).into_response()
}

/// Drops expired events and messages regularly, while the chat exists.
fn start_sweep(service: Weak<ChatService>, retention: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let every = (retention / 8).clamp(Duration::from_secs(1), Duration::from_secs(60));
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(service) = service.upgrade() else {
                return;
            };
            service.sweep();
        }
    });
}
