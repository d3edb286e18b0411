//! Real-time rooms over WebSocket: the room hub with its per-socket
//! plumbing and wire helpers, shared by the share-room (SPEC section 3),
//! img2img (section 4) and chat protocols, and the routes that serve them.

pub mod chat;
pub mod hub;
pub mod img2img;
pub mod share;
pub mod socket;
pub mod wire;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::config::Settings;
use crate::jobs::WorkerPool;

pub use hub::{
    Batch, HubLimits, JoinError, KickSignal, MemberHandle, MemberId, MemberView, Membership,
    Outbound, RoomHub,
};
pub use img2img::Img2ImgRooms;
pub use share::ShareRooms;
pub use socket::Session;

/// `GET /ws/share/{room}`, `GET /ws/img2img` and `GET /ws/img2img/{room}`,
/// each protocol with its own rooms; image work goes through `pool`.
pub fn routes(pool: WorkerPool, settings: Arc<Settings>) -> Router {
    let share = ShareRooms::new(pool.clone(), &settings);
    let img2img = Img2ImgRooms::new(pool, &settings);
    let share_routes = Router::new()
        .route("/ws/share/{room}", get(share::upgrade))
        .with_state(share);
    let img2img_routes = Router::new()
        .route("/ws/img2img", get(img2img::upgrade_default))
        .route("/ws/img2img/{room}", get(img2img::upgrade))
        .with_state(img2img);
    share_routes.merge(img2img_routes)
}
