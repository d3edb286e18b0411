//! The one per-socket bound on requests in flight, shared by every
//! WebSocket protocol that runs work for a client (`/ws`, img2img, chat,
//! share uploads). A request takes a permit before it starts and gives it
//! back when answered; past the bound it is refused at once with
//! `too_many_requests`, and the socket stays open.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Code;

/// A socket's places for requests in flight.
#[derive(Clone)]
pub struct InFlight {
    places: Arc<Semaphore>,
    max: usize,
}

/// A request's place; dropping it frees the place.
pub type InFlightPermit = OwnedSemaphorePermit;

/// The socket has its maximum of requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests in flight on this socket (at most {max}); wait for an answer first")]
pub struct TooManyInFlight {
    pub max: usize,
}

impl TooManyInFlight {
    pub fn code(&self) -> Code {
        Code::TooManyRequests
    }
}

impl InFlight {
    /// At most `max` (at least 1) requests in flight.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Takes a place at once, or says the socket is at its bound.
    pub fn try_take(&self) -> Result<InFlightPermit, TooManyInFlight> {
        self.places
            .clone()
            .try_acquire_owned()
            .map_err(|_| TooManyInFlight { max: self.max })
    }

    /// Requests in flight now.
    pub fn in_use(&self) -> usize {
        self.max - self.places.available_permits()
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let limiter = InFlight::new(2);
        let a = limiter.try_take().unwrap();
        let _b = limiter.try_take().unwrap();
        assert_eq!(limiter.in_use(), 2);
        let err = limiter.try_take().unwrap_err();
        assert_eq!(err.code(), "too_many_requests");
        drop(a);
        assert!(limiter.try_take().is_ok());
    }
}
