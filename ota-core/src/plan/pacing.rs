//! How fast and when commands go out: pacing, ramps, and time windows.

use serde::{Deserialize, Serialize};

use crate::time::UnixMs;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// How fast commands go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// At most this many devices in flight (sent or in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// At most this many sends in any 60-second window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    /// Start slower and double.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
}

/// An exponential ramp of the send rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// The rate at the start (sends per minute).
    pub initial_per_minute: u64,
    /// The rate doubles this often, up to `per_minute`.
    pub double_every_ms: u64,
}

/// When commands may go out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Not before (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<UnixMs>,
    /// Not after (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<UnixMs>,
    /// Recurring maintenance windows; when any is given, only inside one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<Maintenance>,
}

/// A recurring maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// The days it starts on.
    pub days: Vec<Weekday>,
    /// When it starts, local time, `HH:MM`.
    pub start: String,
    /// How long it lasts (1 to 10 080 minutes).
    pub duration_minutes: u32,
    /// The local time's offset from UTC, in minutes (−840 to 840).
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Maintenance {
    pub(super) fn start_minute(&self) -> Option<u32> {
        // Exactly `HH:MM`, two digits each (not `+1:00`, not `1:000`).
        let b = self.start.as_bytes();
        let digit = |i: usize| {
            b.get(i)
                .filter(|c| c.is_ascii_digit())
                .map(|c| u32::from(c - b'0'))
        };
        if b.len() != 5 || b[2] != b':' {
            return None;
        }
        let (h, m) = (digit(0)? * 10 + digit(1)?, digit(3)? * 10 + digit(4)?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    }

    /// The first instant at or after `now` inside this window (`now` itself when inside);
    /// `None` when it never opens (no day, or a start that is not `HH:MM`).
    pub fn next_open(&self, now: UnixMs) -> Option<UnixMs> {
        if self.contains(now) {
            return Some(now);
        }
        let start = i64::from(self.start_minute()?) * MINUTE_MS;
        let into_week = self.week_position_ms(now);
        self.days
            .iter()
            .map(|d| {
                let opens = *d as i64 * DAY_MS + start;
                now + (opens - into_week).rem_euclid(WEEK_MS) as u64
            })
            .min()
    }

    /// Whether `now` is inside this window.
    pub fn contains(&self, now: UnixMs) -> bool {
        let Some(start) = self.start_minute() else {
            return false;
        };
        let minute_of_week = self.week_position_ms(now) / MINUTE_MS;
        self.days.iter().any(|d| {
            let day_start = *d as i64 * 24 * 60 + i64::from(start);
            let into = (minute_of_week - day_start).rem_euclid(WEEK_MS / MINUTE_MS);
            into < i64::from(self.duration_minutes)
        })
    }

    /// Where `now` lies in the local week, in milliseconds from Monday 00:00 (1970-01-01,
    /// millisecond 0, was a Thursday).
    fn week_position_ms(&self, now: UnixMs) -> i64 {
        let offset = i64::from(self.utc_offset_minutes) * MINUTE_MS;
        (now.get() as i64 + offset + 3 * DAY_MS).rem_euclid(WEEK_MS)
    }
}

impl Window {
    /// The first instant at or after `now` when commands may go out (`now` itself when they
    /// may); `None` when they never will again (past `end_at`, or no maintenance window opens
    /// before it).
    pub fn next_open(&self, now: UnixMs) -> Option<UnixMs> {
        let from = self.start_at.map_or(now, |s| s.max(now));
        let open = if self.maintenance.is_empty() {
            Some(from)
        } else {
            self.maintenance
                .iter()
                .filter_map(|m| m.next_open(from))
                .min()
        }?;
        self.end_at.is_none_or(|e| open < e).then_some(open)
    }

    /// Whether commands may go out at `now`.
    pub fn allows(&self, now: UnixMs) -> bool {
        self.start_at.is_none_or(|s| now >= s)
            && self.end_at.is_none_or(|e| now < e)
            && (self.maintenance.is_empty() || self.maintenance.iter().any(|m| m.contains(now)))
    }
}

impl Pacing {
    /// The send limit per minute at `now`, for a rollout started at `started`.
    pub fn limit_per_minute(&self, started: UnixMs, now: UnixMs) -> Option<u64> {
        let max = self.per_minute?;
        Some(match self.ramp {
            None => max,
            Some(r) => {
                let steps = (now - started) / r.double_every_ms.max(1);
                let rate = r
                    .initial_per_minute
                    .max(1)
                    .saturating_mul(1u64 << steps.min(40));
                rate.min(max)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_windows_recur_weekly_in_local_time() {
        // 2026-11-23 is a Monday; 02:00 UTC+01:00 is 01:00 UTC.
        let monday_0100_utc = UnixMs(1_795_395_600_000);
        let m = Maintenance {
            days: vec![Weekday::Mon],
            start: "02:00".into(),
            duration_minutes: 60,
            utc_offset_minutes: 60,
        };
        assert!(m.contains(monday_0100_utc));
        assert!(m.contains(monday_0100_utc + 59 * 60_000));
        assert!(!m.contains(monday_0100_utc + 60 * 60_000));
        assert!(!m.contains(UnixMs(monday_0100_utc.get() - 60_000)));
        assert!(m.contains(monday_0100_utc + 7 * 24 * 3_600_000));
        assert!(!m.contains(monday_0100_utc + 24 * 3_600_000));
        // A window that crosses midnight into Sunday-to-Monday.
        let late = Maintenance {
            days: vec![Weekday::Sun],
            start: "23:30".into(),
            duration_minutes: 120,
            utc_offset_minutes: 0,
        };
        assert!(late.contains(UnixMs(monday_0100_utc.get() - 30 * 60_000)));
        assert!(!late.contains(monday_0100_utc + 30 * 60_000));
    }

    #[test]
    fn next_open_is_the_first_instant_inside_a_window_at_or_after_now() {
        let windows = [
            (vec![Weekday::Mon], "02:00", 60, 60),
            (vec![Weekday::Sun], "23:30", 120, 0),
            (vec![Weekday::Tue, Weekday::Fri], "00:00", 1, -840),
            (vec![Weekday::Sat], "12:34", 10_080, 840),
        ];
        let monday = 1_795_395_600_000u64;
        for (days, start, duration_minutes, utc_offset_minutes) in windows {
            let m = Maintenance {
                days,
                start: start.into(),
                duration_minutes,
                utc_offset_minutes,
            };
            // Every 97 minutes and 13 seconds over two weeks.
            for k in 0..210u64 {
                let now = UnixMs(monday + k * (97 * 60_000 + 13_000));
                let open = m.next_open(now).expect("it opens every week");
                assert!(open >= now && m.contains(open), "{start} at {now}: {open}");
                // No minute between `now` and `open` is inside.
                let mut t = now;
                while t < open {
                    assert!(!m.contains(t), "{start}: {t} is inside, before {open}");
                    t = UnixMs((t.get() / 60_000 + 1) * 60_000);
                }
            }
        }
        let never = Maintenance {
            days: vec![],
            start: "02:00".into(),
            duration_minutes: 60,
            utc_offset_minutes: 0,
        };
        assert_eq!(never.next_open(UnixMs(monday)), None);
        // The plan's window: not before start_at, never at or after end_at.
        let w = Window {
            start_at: Some(UnixMs(monday + 3_600_000)),
            end_at: Some(UnixMs(monday + 8 * 86_400_000)),
            maintenance: vec![Maintenance {
                days: vec![Weekday::Mon],
                start: "02:00".into(),
                duration_minutes: 120,
                utc_offset_minutes: 60,
            }],
        };
        assert_eq!(
            w.next_open(UnixMs(monday)),
            Some(UnixMs(monday + 3_600_000))
        );
        assert_eq!(
            w.next_open(UnixMs(monday + 7_200_000)),
            Some(UnixMs(monday + 7 * 86_400_000))
        );
        assert_eq!(
            w.next_open(UnixMs(monday + 7 * 86_400_000 + 7_200_000)),
            None
        );
    }

    #[test]
    fn a_start_is_exactly_two_digits_colon_two_digits() {
        let at = |start: &str| {
            Maintenance {
                days: vec![Weekday::Mon],
                start: start.into(),
                duration_minutes: 60,
                utc_offset_minutes: 0,
            }
            .start_minute()
        };
        assert_eq!(at("00:00"), Some(0));
        assert_eq!(at("23:59"), Some(23 * 60 + 59));
        for bad in [
            "+1:00",
            "1:000",
            "24:00",
            "12:60",
            "1:00",
            "12-00",
            "１２:00",
            "",
            "12:0a",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ramps_double_up_to_the_limit() {
        let p = Pacing {
            max_in_flight: None,
            per_minute: Some(100),
            ramp: Some(Ramp {
                initial_per_minute: 10,
                double_every_ms: 60_000,
            }),
        };
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(0)), Some(10));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(60_000)), Some(20));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(180_000)), Some(80));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(240_000)), Some(100));
        assert_eq!(
            Pacing::default().limit_per_minute(UnixMs(0), UnixMs(0)),
            None
        );
    }
}
