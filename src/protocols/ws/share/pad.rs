//! The bounds on one member's updates of a room's shared text pad: a byte
//! limit on the whole text, and a token bucket on how often (a burst of
//! `share.text_pad_burst` updates, one more earned every
//! `share.text_pad_refill`). Pure bookkeeping: no sockets, no clocks read
//! here.

use std::time::{Duration, Instant};

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

/// One member's allowance of updates.
#[derive(Debug)]
pub struct PadBucket {
    tokens: u32,
    /// When the tokens were last counted.
    since: Instant,
}

impl PadBucket {
    /// A full bucket at `now`.
    pub fn new(limits: &PadLimits, now: Instant) -> Self {
        Self {
            tokens: limits.burst,
            since: now,
        }
    }

    /// Checks an update of `text` at `now`; takes one token when allowed.
    pub fn check(&mut self, text: &str, now: Instant, limits: &PadLimits) -> Result<(), PadError> {
        if text.len() > limits.max_bytes {
            return Err(PadError::TooLarge {
                len: text.len(),
                max: limits.max_bytes,
            });
        }
        if limits.refill.is_zero() {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.since);
        let earned = elapsed.as_nanos() / limits.refill.as_nanos();
        let room = u128::from(limits.burst - self.tokens.min(limits.burst));
        if earned >= room {
            self.tokens = limits.burst;
            self.since = now;
        } else if earned > 0 {
            // `earned` < `burst` here, so it fits a u32.
            let earned = earned as u32;
            self.tokens += earned;
            self.since += limits.refill * earned;
        }
        if self.tokens == 0 {
            return Err(PadError::TooFrequent {
                burst: limits.burst,
                refill: limits.refill,
            });
        }
        self.tokens -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PadLimits = PadLimits {
        max_bytes: 10,
        burst: 2,
        refill: Duration::from_secs(1),
    };

    #[test]
    fn a_burst_then_one_update_per_refill() {
        let t0 = Instant::now();
        let mut bucket = PadBucket::new(&LIMITS, t0);
        assert_eq!(bucket.check("a", t0, &LIMITS), Ok(()));
        assert_eq!(bucket.check("b", t0, &LIMITS), Ok(()));
        assert_eq!(
            bucket.check("c", t0 + Duration::from_millis(999), &LIMITS),
            Err(PadError::TooFrequent {
                burst: 2,
                refill: Duration::from_secs(1)
            })
        );
        assert_eq!(
            bucket.check("d", t0 + Duration::from_secs(1), &LIMITS),
            Ok(())
        );
        assert!(bucket
            .check("e", t0 + Duration::from_secs(1), &LIMITS)
            .is_err());
        // A long pause earns the whole burst back, and no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bucket.check("f", later, &LIMITS), Ok(()));
        assert_eq!(bucket.check("g", later, &LIMITS), Ok(()));
        assert!(bucket.check("h", later, &LIMITS).is_err());
    }

    #[test]
    fn too_large_is_refused_without_using_a_token() {
        let t0 = Instant::now();
        let mut bucket = PadBucket::new(&LIMITS, t0);
        let big = "x".repeat(11);
        assert_eq!(
            bucket.check(&big, t0, &LIMITS),
            Err(PadError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(bucket.check(&"x".repeat(10), t0, &LIMITS), Ok(()));
        assert_eq!(bucket.check("", t0, &LIMITS), Ok(()));
    }

    #[test]
    fn a_zero_refill_has_no_rate_bound() {
        let limits = PadLimits {
            refill: Duration::ZERO,
            ..LIMITS
        };
        let t0 = Instant::now();
        let mut bucket = PadBucket::new(&limits, t0);
        for _ in 0..100 {
            assert_eq!(bucket.check("a", t0, &limits), Ok(()));
        }
    }
}
