//! Chat over WebSocket (`GET /ws/chat?user=ID`) and its image route
//! (`GET /chat/images/{md5}`): the protocol of the chat service
//! (`crate::chat`), described in `docs/chat.md`.
//!
//! This module owns the routes and the user extraction; `envelope` parses
//! client frames, `socket` runs one connection.

pub mod envelope;
mod socket;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::wire;
use crate::auth::{self, IdentityError};
use crate::backend::{ChatBounds, ChatRepo, MemoryChat};
use crate::chat::{self, ChatError, ChatService, UploadedImages, UserId};
use crate::config::Settings;
use crate::error::ApiError;
use crate::jobs::{JobStore, StoreSettings, WorkerPool};

#[derive(Clone)]
struct ChatState {
    service: Arc<ChatService>,
    settings: Arc<Settings>,
}

/// A chat of its own in memory on `pool` (for serving the chat alone),
/// with a job store of its own for its images; messages may name images
/// that `uploads` knows.
pub fn routes(
    pool: WorkerPool,
    settings: Arc<Settings>,
    uploads: Arc<dyn UploadedImages>,
) -> Router {
    let repo = Arc::new(MemoryChat::new(ChatBounds::from(&settings.chat)));
    routes_with(pool, settings, uploads, repo)
}

/// The same on `repo`: e.g. one instance of several on the Redis chat
/// (`chat::connect_repo`).
pub fn routes_with(
    pool: WorkerPool,
    settings: Arc<Settings>,
    uploads: Arc<dyn UploadedImages>,
    repo: Arc<dyn ChatRepo>,
) -> Router {
    let images = JobStore::new(StoreSettings::of(&settings), pool.clone());
    let service = chat::start(pool, &settings, uploads, images, repo);
    routes_for(service, settings)
}

/// `GET /ws/chat?user=ID` and `GET /chat/images/{md5}` over `service`.
pub fn routes_for(service: Arc<ChatService>, settings: Arc<Settings>) -> Router {
    Router::new()
        .route("/ws/chat", get(open_socket))
        .route("/chat/images/{md5}", get(image))
        .with_state(ChatState { service, settings })
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
) -> Result<UserId, ChatError> {
    let token = wire::bearer_token(headers, params.token.as_deref());
    let user =
        auth::identify(&settings.auth, token.as_deref(), params.user.as_deref()).map_err(|e| {
            match e {
                IdentityError::MissingName => ChatError::InvalidRequest(
                    "the user query parameter is required: /ws/chat?user=ID".into(),
                ),
                IdentityError::MissingToken | IdentityError::BadToken(_) => {
                    ChatError::Unauthorized(e.to_string())
                }
                IdentityError::BadName => ChatError::InvalidRequest(e.to_string()),
            }
        })?;
    chat::validate_user_id(&user, settings.chat.max_user_id_len, "user")?;
    Ok(user)
}

async fn open_socket(
    State(state): State<ChatState>,
    Query(params): Query<UserParams>,
    headers: HeaderMap,
    upgrade: super::socket::Upgrade,
) -> Response {
    let user = match user_of(&params, &headers, &state.settings) {
        Ok(user) => user,
        Err(e) => return ApiError::of(e.code(), e.to_string()).into_response(),
    };
    let max_frame = usize::try_from(state.settings.chat.max_frame_bytes).unwrap_or(usize::MAX);
    let max_pending = state.settings.chat.max_pending_requests;
    super::socket::accept(upgrade, max_frame, move |socket| {
        socket::run(socket, state.service, user, max_pending)
    })
}

async fn image(State(state): State<ChatState>, Path(md5): Path<String>) -> Response {
    match state.service.image_bytes(&md5.to_ascii_lowercase()).await {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, "image/webp"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::not_found(format!("no chat image with md5 {md5}")).into_response(),
    }
}
