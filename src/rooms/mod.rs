//! Real-time rooms over WebSocket: the room hub with its per-socket
//! plumbing and wire helpers, shared by the share-room, img2img and chat
//! protocols.

pub mod hub;
pub mod socket;
pub mod wire;

pub use hub::{
    Batch, HubLimits, JoinError, MemberHandle, MemberId, MemberView, Membership, Outbound, RoomHub,
};
pub use socket::Session;
