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

/// An instant written as RFC 3339 text (`2027-01-31T00:00:00Z`) in a signed document: the
/// text as signed, and its instant. Serialized as the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp {
    text: String,
    at: UnixMs,
}

/// Text that is not an RFC 3339 instant at or after the epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not an RFC 3339 time at or after 1970 (like 2027-01-31T00:00:00Z)")]
pub struct TimestampError {
    /// The text.
    pub found: String,
}

impl Timestamp {
    /// The instant.
    pub fn at(&self) -> UnixMs {
        self.at
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Parses RFC 3339 text (`2027-01-31T00:00:00Z`, `2027-01-31T01:00:00+01:00`) into the
/// instant it names; `None` when it is not RFC 3339 or before the epoch.
pub fn parse_rfc3339(text: &str) -> Option<UnixMs> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(UnixMs)
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let at = parse_rfc3339(s).ok_or_else(|| TimestampError {
            found: s.to_string(),
        })?;
        Ok(Timestamp {
            text: s.to_string(),
            at,
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

crate::version::serde_via_str!(Timestamp);

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
    fn timestamps_keep_their_text_and_instant() {
        let t: Timestamp = "1970-01-01T00:00:01.5Z".parse().unwrap();
        assert_eq!(
            (t.at(), t.as_str()),
            (UnixMs(1_500), "1970-01-01T00:00:01.5Z")
        );
        let t: Timestamp = "1970-01-01T01:00:02+01:00".parse().unwrap();
        assert_eq!(t.at(), UnixMs(2_000));
        for bad in ["1969-12-31T23:59:59Z", "2027-01-31", "tomorrow", ""] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-01T01:00:02+01:00\""
        );
    }

    #[test]
    fn serializes_as_a_plain_integer() {
        assert_eq!(serde_json::to_string(&UnixMs(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<UnixMs>("42").unwrap(), UnixMs(42));
    }
}
