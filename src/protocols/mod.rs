//! The protocols: each translates its wire messages into calls on the
//! services (`jobs`, `rooms`, `chat`, `files`, `auth`) and their answers
//! and errors (codes from `crate::error`) back. None decides anything a
//! service owns, and none imports another protocol's internals.
//!
//! - `http`: the job API, files, health, metrics, API document, web app.
//! - `ws`: every WebSocket protocol (`/ws`, share rooms, img2img, chat) on
//!   one socket loop, one wire module and one in-flight limiter.
//! - `tcp`: the pickle-framed image-sharing protocol.
//!
//! `job_view` holds the job views HTTP and WebSocket answers share.
//!
//! [`router`] is the one place HTTP and WebSocket routes are put together.

pub mod http;
pub mod job_view;
pub mod per_client;
pub mod tcp;
pub mod ws;

use std::sync::Arc;

use axum::Router;

use crate::chat::ChatService;
use crate::config::Settings;
use crate::error::ApiError;
use crate::files::FileRepo;
use crate::jobs::WorkerPool;
use crate::rooms::{Bus, RoomRepos};

/// What the routes serve: the services of one server.
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub pool: WorkerPool,
    pub app: http::AppState,
    pub files: Arc<dyn FileRepo>,
    pub chat: Arc<ChatService>,
    /// Room fan-out across instances (share and img2img rooms).
    pub bus: Arc<dyn Bus>,
    /// Room history, text pads and members (share and img2img rooms).
    pub room_state: Arc<dyn RoomRepos>,
    /// Ends every WebSocket (close 1001) when the server shuts down.
    pub sockets: ws::socket::Sockets,
}

/// Every HTTP and WebSocket route of the server: one line per protocol.
pub fn router(services: &Services) -> Router {
    Router::new()
        .merge(http::router(services.app.clone()))
        .merge(http::files::routes(services.files.clone()))
        .merge(http::webapp::routes())
        .merge(ws::share::routes(
            services.pool.clone(),
            &services.settings,
            services.bus.clone(),
            &*services.room_state,
        ))
        .merge(ws::img2img::routes(
            services.pool.clone(),
            &services.settings,
            services.bus.clone(),
            &*services.room_state,
        ))
        .merge(ws::chat::routes_for(
            services.chat.clone(),
            services.settings.clone(),
        ))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::Extension(services.sockets.clone()))
}
