//! Rooms: named groups of WebSocket members with one fan-out mechanism
//! (`hub`), the recent history and state a late joiner is sent
//! (`history`), and who is present (`presence`), both kept by the room
//! repo of the backend (this process, or Redis for every instance) in the
//! order `ordered` runs them. The share-room, img2img
//! and chat protocols use them; this module knows no protocol.

pub mod history;
pub mod hub;
pub mod ordered;
pub mod presence;

pub use crate::backend::{Bus, Frame, MemoryBus, MemoryRoomRepos, RoomRepos};
pub use history::{History, Joined};
pub use hub::{
    Batch, HubLimits, JoinError, KickSignal, MemberHandle, MemberId, MemberInfo, MemberView,
    Membership, Outbound, RoomHub,
};
pub use presence::{ArriveError, Presence};
