//! Who is present in each room, told consistently: arrivals and departures
//! are serialised per set of rooms, and each is announced only to the
//! members already present, so every member's count (the list it got on
//! arrival, then the arrivals and departures it is told of) matches the
//! room.
//!
//! A member stays present from [`Presence::arrive`] to
//! [`Presence::depart`], even if the hub dropped it as too slow meanwhile:
//! its departure is announced once, when its connection ends. The list is
//! kept apart from the history, so it never expires while members remain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::hub::{MemberHandle, MemberId};
use crate::backend::Frame;

/// One present member and the label the others see for it.
#[derive(Debug, Clone)]
struct Present {
    id: MemberId,
    label: String,
}

/// The present members of every room of one protocol. Cheap to clone.
#[derive(Clone, Default)]
pub struct Presence {
    rooms: Arc<Mutex<HashMap<String, Vec<Present>>>>,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Present>>> {
        // Nothing panics while holding this lock; recover the data if it did.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `member` as present under `label`, sends `arrival` to the
    /// members present before it, and returns what `greeting` makes of the
    /// labels of everyone present, the arrival last (for the arriving member
    /// to be sent first). The member must already have joined its room.
    pub fn arrive(
        &self,
        member: &MemberHandle,
        label: &str,
        greeting: impl FnOnce(&[&str]) -> Frame,
        arrival: Frame,
    ) -> Frame {
        let mut rooms = self.lock();
        let present = rooms.entry(member.room_name().to_owned()).or_default();
        let others: Vec<MemberId> = present.iter().map(|p| p.id).collect();
        present.push(Present {
            id: member.id(),
            label: label.to_owned(),
        });
        let labels: Vec<&str> = present.iter().map(|p| p.label.as_str()).collect();
        let greeting = greeting(&labels);
        member.send_where(|m| others.contains(&m.id), arrival);
        greeting
    }

    /// Removes `member` and sends `departure` to the members still present.
    /// Does nothing for a member that is not present.
    pub fn depart(&self, member: &MemberHandle, departure: Frame) {
        let mut rooms = self.lock();
        let room = member.room_name();
        let Some(present) = rooms.get_mut(room) else {
            return;
        };
        let Some(at) = present.iter().position(|p| p.id == member.id()) else {
            return;
        };
        present.remove(at);
        let others: Vec<MemberId> = present.iter().map(|p| p.id).collect();
        if others.is_empty() {
            rooms.remove(room);
        } else {
            member.send_where(|m| others.contains(&m.id), departure);
        }
    }

    /// The labels of the members present in `room`, in order of arrival.
    pub fn labels(&self, room: &str) -> Vec<String> {
        self.lock()
            .get(room)
            .map(|present| present.iter().map(|p| p.label.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::hub::{HubLimits, Outbound, RoomHub};

    fn texts(out: &mut Outbound) -> Vec<String> {
        std::iter::from_fn(|| out.try_recv())
            .map(|m| m.as_text().unwrap().to_owned())
            .collect()
    }

    fn list(labels: &[&str]) -> Frame {
        Frame::text(labels.join(","))
    }

    #[test]
    fn arrivals_and_departures_reach_only_those_present() {
        let hub = RoomHub::new(HubLimits {
            max_members: 8,
            member_queue: 8,
        });
        let presence = Presence::new();
        let (a, mut ao) = hub.join("r", "a").unwrap();
        assert_eq!(
            presence.arrive(&a, "a", list, Frame::text("+a")),
            Frame::text("a")
        );
        // b has joined the room but is not present yet: it hears nothing
        // of a departure before its own arrival.
        let (b, mut bo) = hub.join("r", "b").unwrap();
        let (c, mut co) = hub.join("r", "c").unwrap();
        assert_eq!(
            presence.arrive(&c, "c", list, Frame::text("+c")),
            Frame::text("a,c")
        );
        presence.depart(&c, Frame::text("-c"));
        assert_eq!(
            presence.arrive(&b, "b", list, Frame::text("+b")),
            Frame::text("a,b")
        );
        assert_eq!(texts(&mut ao), ["+c", "-c", "+b"]);
        assert!(texts(&mut bo).is_empty());
        assert!(texts(&mut co).is_empty(), "no news of itself");
        assert_eq!(presence.labels("r"), ["a", "b"]);

        presence.depart(&a, Frame::text("-a"));
        presence.depart(&a, Frame::text("-a again"));
        assert_eq!(texts(&mut bo), ["-a"], "a departure is told once");
        presence.depart(&b, Frame::text("-b"));
        assert!(presence.labels("r").is_empty());
    }
}
