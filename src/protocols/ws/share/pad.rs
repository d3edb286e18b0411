//! The bounds on one member's updates of a room's shared text pad: a byte
//! limit on the whole text, and a token bucket on how often (a burst of
//! `share.text_pad_burst` updates, one more earned every
//! `share.text_pad_refill`). No sockets here; tests run it on a fake clock.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::ShareSettings;
use crate::error::Code;

/// Why a text-pad update was refused; the text is shown to the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PadError {
    #[error("text of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("too many text updates: at most {burst} at once, then one every {refill:?}")]
    TooFrequent { burst: u32, refill: Duration },
}

impl PadError {
    /// The registry's code for this refusal.
    pub fn code(&self) -> Code {
        match self {
            Self::TooLarge { .. } => Code::MessageTooLong,
            Self::TooFrequent { .. } => Code::TooFrequent,
        }
    }
}

/// The bounds of text-pad updates.
#[derive(Debug, Clone, Copy)]
pub struct PadLimits {
    pub max_bytes: usize,
    pub burst: u32,
    /// One update earned back per this much time; zero means no rate bound.
    pub refill: Duration,
}

impl PadLimits {
    pub fn from_settings(s: &ShareSettings) -> Self {
        Self {
            max_bytes: s.text_pad_max_bytes,
            burst: s.text_pad_burst.max(1),
            refill: s.text_pad_refill,
        }
    }
}

/// One member's allowance of updates: governor's GCRA limiter (as the
/// upload rate limit), on the default clock or a test's fake one.
pub struct PadBucket<C: Clock = DefaultClock> {
    /// `None` when `refill` is zero: no rate bound.
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>>,
}

impl PadBucket {
    /// A full bucket on the default clock.
    pub fn new(limits: &PadLimits) -> Self {
        Self::with_clock(limits, DefaultClock::default())
    }
}

impl<C: Clock> PadBucket<C> {
    /// A full bucket on `clock`.
    pub fn with_clock(limits: &PadLimits, clock: C) -> Self {
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        let limiter = Quota::with_period(limits.refill)
            .map(|quota| RateLimiter::direct_with_clock(quota.allow_burst(burst), clock));
        Self { limiter }
    }

    /// Checks an update of `text`; takes one token when allowed.
    pub fn check(&self, text: &str, limits: &PadLimits) -> Result<(), PadError> {
        if text.len() > limits.max_bytes {
            return Err(PadError::TooLarge {
                len: text.len(),
                max: limits.max_bytes,
            });
        }
        match &self.limiter {
            Some(limiter) if limiter.check().is_err() => Err(PadError::TooFrequent {
                burst: limits.burst,
                refill: limits.refill,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const LIMITS: PadLimits = PadLimits {
        max_bytes: 10,
        burst: 2,
        refill: Duration::from_secs(1),
    };

    #[test]
    fn a_burst_then_one_update_per_refill() {
        let clock = FakeRelativeClock::default();
        let bucket = PadBucket::with_clock(&LIMITS, clock.clone());
        assert_eq!(bucket.check("a", &LIMITS), Ok(()));
        assert_eq!(bucket.check("b", &LIMITS), Ok(()));
        clock.advance(Duration::from_millis(999));
        assert_eq!(
            bucket.check("c", &LIMITS),
            Err(PadError::TooFrequent {
                burst: 2,
                refill: Duration::from_secs(1)
            })
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(bucket.check("d", &LIMITS), Ok(()));
        assert!(bucket.check("e", &LIMITS).is_err());
        // A long pause earns the whole burst back, and no more.
        clock.advance(Duration::from_secs(59));
        assert_eq!(bucket.check("f", &LIMITS), Ok(()));
        assert_eq!(bucket.check("g", &LIMITS), Ok(()));
        assert!(bucket.check("h", &LIMITS).is_err());
    }

    #[test]
    fn too_large_is_refused_without_using_a_token() {
        let bucket = PadBucket::with_clock(&LIMITS, FakeRelativeClock::default());
        let big = "x".repeat(11);
        assert_eq!(
            bucket.check(&big, &LIMITS),
            Err(PadError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(bucket.check(&"x".repeat(10), &LIMITS), Ok(()));
        assert_eq!(bucket.check("", &LIMITS), Ok(()));
    }

    #[test]
    fn a_zero_refill_has_no_rate_bound() {
        let limits = PadLimits {
            refill: Duration::ZERO,
            ..LIMITS
        };
        let bucket = PadBucket::with_clock(&limits, FakeRelativeClock::default());
        for _ in 0..100 {
            assert_eq!(bucket.check("a", &limits), Ok(()));
        }
    }
}
