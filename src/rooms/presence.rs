//! Who is present in each room, told consistently: arrivals and departures
//! are run one after another per protocol on each instance, and each is
//! announced only to the members already present, so every member's count
//! (the list it got on arrival, then the arrivals and departures it is
//! told of) matches the room.
//!
//! The roster lives in the room repo ([`RoomRepo`]): in this process, or in
//! Redis, where it counts the members of every instance and a room's
//! member bound is checked against it. Members of this instance are told
//! of an arrival or departure directly; those of other instances through
//! the bus, where only the members marked present (the role [`PRESENT`])
//! take it. Across instances two arrivals at the same moment may be told
//! in different orders (see docs/distributed.md).
//!
//! A member stays present from [`Presence::arrive`] to
//! [`Presence::depart`], even if the hub dropped it as too slow meanwhile:
//! its departure is announced once, when its connection ends. The roster is
//! kept apart from the history, so it never expires while members remain.

use std::sync::Arc;

use super::hub::{JoinError, MemberHandle};
use super::ordered::Ordered;
use crate::backend::Frame;
use crate::backend::{
    BackendError, Entered, HistoryBounds, MemoryRoomRepos, RoomRepo, RoomRepos, RosterEntry,
};
use crate::error::Code;

/// The role of members who have arrived (told of later arrivals).
pub const PRESENT: &str = "present";

/// Why an arrival was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArriveError {
    #[error(transparent)]
    Full(#[from] JoinError),
    #[error("the room's member list is unavailable: {0}")]
    Backend(#[from] BackendError),
    #[error("too many arrivals and departures waiting; try again")]
    Busy,
}

impl ArriveError {
    /// The registry code a refused joiner is told, and the close reason.
    pub fn refusal(&self) -> (Code, &'static str) {
        match self {
            Self::Full(_) => (Code::RoomFull, "room is full"),
            Self::Backend(_) | Self::Busy => (Code::BackendUnavailable, "room state unavailable"),
        }
    }
}

/// The present members of every room of one protocol. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    repo: Arc<dyn RoomRepo>,
    ordered: Ordered,
    /// The member bound counted on the roster (when other instances share
    /// it); a hub alone counts its own members.
    max_members: Option<usize>,
}

impl Presence {
    /// A roster in this process. Must be called within a Tokio runtime.
    pub fn new() -> Self {
        let bounds = HistoryBounds {
            keep: 0,
            ttl: std::time::Duration::from_secs(1),
            max_bytes: 0,
        };
        Self::on(MemoryRoomRepos.open("presence", bounds), 4096, usize::MAX)
    }

    /// A roster kept by `repo`, with at most `queue` arrivals and
    /// departures waiting. A repo that other instances share bounds each
    /// room at `max_members`. Must be called within a Tokio runtime.
    pub fn on(repo: Arc<dyn RoomRepo>, queue: usize, max_members: usize) -> Self {
        Self {
            max_members: repo.shared().then_some(max_members),
            repo,
            ordered: Ordered::new(queue),
        }
    }

    /// Records `member` as present under `label`, sends `arrival` to the
    /// members present before it, and returns what `greeting` makes of the
    /// labels of everyone present, the arrival last (for the arriving member
    /// to be sent first). The member must already have joined its room.
    /// Refused when the room is at its bound (counted across instances).
    pub async fn arrive(
        &self,
        member: &MemberHandle,
        label: &str,
        greeting: impl FnOnce(&[&str]) -> Frame + Send + 'static,
        arrival: Frame,
    ) -> Result<Frame, ArriveError> {
        let roster = self.enter(member, label, Some(arrival)).await?;
        let labels: Vec<&str> = roster.iter().map(|e| e.label.as_str()).collect();
        Ok(greeting(&labels))
    }

    /// Records `member` as present under `label` without telling anyone:
    /// it counts towards the room's bound (img2img rooms).
    pub async fn enter_quietly(
        &self,
        member: &MemberHandle,
        label: &str,
    ) -> Result<(), ArriveError> {
        self.enter(member, label, None).await.map(drop)
    }

    async fn enter(
        &self,
        member: &MemberHandle,
        label: &str,
        arrival: Option<Frame>,
    ) -> Result<Vec<RosterEntry>, ArriveError> {
        let (repo, max) = (self.repo.clone(), self.max_members);
        let (member, label) = (member.clone(), label.to_owned());
        let answer = self
            .ordered
            .call(async move {
                let me = member.key();
                let room = member.room_name().to_owned();
                let roster = match repo.enter(&room, &me, &label, max).await? {
                    Entered::In(roster) => roster,
                    Entered::Full => {
                        return Err(ArriveError::Full(JoinError::RoomFull {
                            room,
                            max: max.unwrap_or_default(),
                        }))
                    }
                };
                if let Some(arrival) = arrival {
                    let before: Vec<&RosterEntry> =
                        roster.iter().filter(|e| e.member != me).collect();
                    tell(&member, &before, arrival);
                    member.set_role(PRESENT);
                }
                Ok(roster)
            })
            .map_err(|_| ArriveError::Busy)?;
        answer.await.map_err(|_| ArriveError::Busy)?
    }

    /// Removes `member` and sends `departure` to the members still present.
    /// Does nothing for a member that is not present.
    pub fn depart(&self, member: &MemberHandle, departure: Frame) {
        self.remove(member, Some(departure));
    }

    /// Removes `member` without telling anyone (see [`Self::enter_quietly`]).
    pub fn leave_quietly(&self, member: &MemberHandle) {
        self.remove(member, None);
    }

    fn remove(&self, member: &MemberHandle, departure: Option<Frame>) {
        let repo = self.repo.clone();
        let member = member.clone();
        let queued = self.ordered.run(async move {
            let room = member.room_name().to_owned();
            match repo.leave(&room, &member.key()).await {
                Ok(Some(rest)) => {
                    if let Some(departure) = departure {
                        tell(&member, &rest.iter().collect::<Vec<_>>(), departure);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, room, "a departure could not be recorded"),
            }
        });
        if !queued {
            tracing::warn!("room state queue is full: a departure was not recorded");
        }
    }

    /// The labels of the members present in `room`, in order of arrival.
    pub async fn labels(&self, room: &str) -> Result<Vec<String>, ArriveError> {
        let repo = self.repo.clone();
        let room = room.to_owned();
        let answer = self
            .ordered
            .call(async move { repo.roster(&room).await })
            .map_err(|_| ArriveError::Busy)?;
        let roster = answer.await.map_err(|_| ArriveError::Busy)??;
        Ok(roster.into_iter().map(|e| e.label).collect())
    }
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends `msg` to the `present` members: those of this hub directly, those
/// of other instances through the bus (only when there are any).
fn tell(member: &MemberHandle, present: &[&RosterEntry], msg: Frame) {
    let local: Vec<u64> = present
        .iter()
        .filter_map(|e| member.local_id(&e.member))
        .collect();
    if local.len() < present.len() {
        member.send_elsewhere(Some(PRESENT), msg.clone());
    }
    if !local.is_empty() {
        member.send_where(|m| local.contains(&m.id), msg);
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

    async fn arrive(p: &Presence, m: &MemberHandle, label: &str, arrival: &str) -> Frame {
        p.arrive(m, label, list, Frame::text(arrival))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn arrivals_and_departures_reach_only_those_present() {
        let hub = RoomHub::new(HubLimits {
            max_members: 8,
            member_queue: 8,
        });
        let presence = Presence::new();
        let (a, mut ao) = hub.join("r", "a").unwrap();
        assert_eq!(arrive(&presence, &a, "a", "+a").await, Frame::text("a"));
        // b has joined the room but is not present yet: it hears nothing
        // of a departure before its own arrival.
        let (b, mut bo) = hub.join("r", "b").unwrap();
        let (c, mut co) = hub.join("r", "c").unwrap();
        assert_eq!(arrive(&presence, &c, "c", "+c").await, Frame::text("a,c"));
        presence.depart(&c, Frame::text("-c"));
        assert_eq!(arrive(&presence, &b, "b", "+b").await, Frame::text("a,b"));
        assert_eq!(texts(&mut ao), ["+c", "-c", "+b"]);
        assert!(texts(&mut bo).is_empty());
        assert!(texts(&mut co).is_empty(), "no news of itself");
        assert_eq!(presence.labels("r").await.unwrap(), ["a", "b"]);

        presence.depart(&a, Frame::text("-a"));
        presence.depart(&a, Frame::text("-a again"));
        presence.labels("r").await.unwrap(); // both departures have run
        assert_eq!(texts(&mut bo), ["-a"], "a departure is told once");
        presence.depart(&b, Frame::text("-b"));
        assert!(presence.labels("r").await.unwrap().is_empty());
    }
}
