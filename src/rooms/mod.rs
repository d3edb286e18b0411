//! Rooms: named groups of WebSocket members with one fan-out mechanism
//! (`hub`), and the recent history a late joiner is sent (`history`). The
//! share-room, img2img and chat protocols use them; this module knows no
//! protocol.

pub mod history;
pub mod hub;

pub use history::{History, Joined};
pub use hub::{
    Batch, HubLimits, JoinError, KickSignal, MemberHandle, MemberId, MemberInfo, MemberView,
    Membership, Outbound, RoomHub,
};
