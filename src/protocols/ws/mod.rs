//! Every WebSocket protocol: `/ws` (the job API), share rooms (SPEC
//! section 3), img2img (section 4) and chat. They share one socket loop
//! (`socket`), one wire module (`wire`: frames, errors, clocks) and one
//! per-socket in-flight limiter (`limiter`); each protocol module only
//! translates its messages into calls on the services.
//!
//! A new WebSocket protocol is one module here with a `Session` and a
//! `routes` function, and one route line in `protocols::router`.

pub mod chat;
pub mod img2img;
pub mod jobs;
pub mod limiter;
pub mod share;
pub mod socket;
pub mod wire;

use std::sync::Arc;

use axum::Router;

use crate::config::Settings;
use crate::jobs::WorkerPool;
use crate::rooms::{Bus, MemoryBus, MemoryRoomRepos, RoomRepos};

pub use img2img::Img2ImgRooms;
pub use share::ShareRooms;
pub use socket::Session;

/// `GET /ws/share/{room}`, `GET /ws/img2img` and `GET /ws/img2img/{room}`,
/// each protocol with its own rooms on this instance alone; image work
/// goes through `pool`.
pub fn room_routes(pool: WorkerPool, settings: Arc<Settings>) -> Router {
    room_routes_on(pool, settings, Arc::new(MemoryBus::new()), &MemoryRoomRepos)
}

/// [`room_routes`] with rooms spanning every instance on `bus`, their
/// history, text pad and members kept in `repos`.
pub fn room_routes_on(
    pool: WorkerPool,
    settings: Arc<Settings>,
    bus: Arc<dyn Bus>,
    repos: &dyn RoomRepos,
) -> Router {
    share::routes(pool.clone(), &settings, bus.clone(), repos)
        .merge(img2img::routes(pool, &settings, bus, repos))
}
