//! Pacing: the bandwidth cap shared by a daemon's fetches, the jitter added to each poll
//! interval, and the exponential backoff after errors.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A bandwidth cap: each fetch waits for its share of the rate.
#[derive(Debug)]
pub struct Limiter {
    rate: Option<u64>,
    next: Mutex<Option<Instant>>,
}

impl Limiter {
    /// A cap of `rate` bytes per second (`None`: no cap).
    pub fn new(rate: Option<u64>) -> Limiter {
        Limiter {
            rate,
            next: Mutex::new(None),
        }
    }

    /// Waits until `bytes` more may be fetched.
    pub async fn wait(&self, bytes: u64) {
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return;
        };
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A random number in `0..n` from the operating system (0 when it fails).
fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0;
    }
    u64::from_le_bytes(b) % n
}

/// `interval` give or take 10 %, so a fleet does not poll in step (saturating: any interval
/// is taken, up to `u64::MAX` milliseconds).
pub fn jitter(interval: Duration) -> Duration {
    let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let spread = ms / 10;
    let r = random_below(spread.saturating_mul(2).saturating_add(1));
    Duration::from_millis((ms - spread).saturating_add(r))
}

/// The wait after `errors` failures in a row: 1 s doubling up to `max`, with jitter.
pub fn backoff(errors: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << errors.saturating_sub(1).min(16));
    jitter(base.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!((900..=1100).contains(&j.as_millis()), "{j:?}");
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn jitter_of_the_longest_interval_does_not_overflow() {
        for _ in 0..100 {
            let j = jitter(Duration::MAX).as_millis();
            assert!(j >= u128::from(u64::MAX - u64::MAX / 10), "{j}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let b1 = backoff(1, max).as_millis();
        let b4 = backoff(4, max).as_millis();
        let b30 = backoff(30, max).as_millis();
        assert!((900..=1100).contains(&b1), "{b1}");
        assert!((7200..=8800).contains(&b4), "{b4}");
        assert!((54_000..=66_000).contains(&b30), "{b30}");
    }
}
