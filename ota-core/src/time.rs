//! Time as the core sees it: [`UnixMs`], milliseconds since the Unix epoch, always passed in.
//!
//! The core never reads a clock. Every state machine takes `now: UnixMs` with each input and
//! answers `poll_timeout() -> Option<UnixMs>` in the same sense everywhere: the earliest
//! instant at which the host should feed it a tick; `None` when it waits on nothing but
//! input. A deadline already past means "tick now".

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// An instant: milliseconds since 1970-01-01T00:00:00Z. Serialized as a plain integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMs(pub u64);

impl UnixMs {
    /// The epoch itself (also "never set" where a record keeps a zero).
    pub const ZERO: UnixMs = UnixMs(0);

    /// The milliseconds since the epoch.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating at the end of time.
    pub const fn saturating_add_ms(self, ms: u64) -> UnixMs {
        UnixMs(self.0.saturating_add(ms))
    }

    /// The milliseconds from `earlier` to `self`, or 0 if `earlier` is later.
    pub const fn saturating_ms_since(self, earlier: UnixMs) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for UnixMs {
    fn from(ms: u64) -> Self {
        UnixMs(ms)
    }
}

impl From<UnixMs> for u64 {
    fn from(t: UnixMs) -> Self {
        t.0
    }
}

/// `instant + milliseconds`, saturating.
impl Add<u64> for UnixMs {
    type Output = UnixMs;
    fn add(self, ms: u64) -> UnixMs {
        self.saturating_add_ms(ms)
    }
}

/// `later - earlier` in milliseconds, saturating at 0.
impl Sub for UnixMs {
    type Output = u64;
    fn sub(self, earlier: UnixMs) -> u64 {
        self.saturating_ms_since(earlier)
    }
}

impl fmt::Display for UnixMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixMs(u64::MAX) + 5, UnixMs(u64::MAX));
        assert_eq!(UnixMs(3) - UnixMs(5), 0);
        assert_eq!(UnixMs(5) - UnixMs(3), 2);
    }

    #[test]
    fn serializes_as_a_plain_integer() {
        assert_eq!(serde_json::to_string(&UnixMs(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<UnixMs>("42").unwrap(), UnixMs(42));
    }
}
