//! Cohorts: a fixed hash of (salt, device id) orders the devices; a wave takes a share.

use sha2::{Digest as _, Sha256};

/// The bucket order key of a device: the first 8 bytes of SHA-256(salt, 0, device id).
pub fn order_key(salt: &str, device_id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(device_id.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// A device's bucket: its order key mod 10 000.
pub fn bucket(salt: &str, device_id: &str) -> u16 {
    (order_key(salt, device_id) % 10_000) as u16
}

/// How many of `n` devices the cumulative `percent` covers: rounded up.
pub(super) fn share(n: u64, percent: f64) -> u64 {
    let x = (n as f64) * percent / 100.0;
    // Guard against 12.000000000000002 rounding up to 13.
    let r = x.round();
    let c = if (x - r).abs() < 1e-9 { r } else { x.ceil() };
    (c as u64).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_up_but_not_floating_noise() {
        assert_eq!(share(240, 5.0), 12);
        assert_eq!(share(40, 10.0), 4);
        assert_eq!(share(37, 10.0), 4);
        assert_eq!(share(3, 1.0), 1);
        assert_eq!(share(100, 100.0), 100);
        assert_eq!(share(0, 5.0), 0);
        assert_eq!(share(1000, 0.1), 1);
        assert_eq!(share(1_000_000, 7.0), 70_000);
    }

    #[test]
    fn buckets_are_fixed() {
        // Part of the format: a change here changes every rollout's cohorts. The values are
        // SHA-256(salt || 0 || device id)[..8] big-endian, computed independently (Python's
        // hashlib), so they hold on every platform.
        assert_eq!(order_key("rol_4c7e", "dev_8f3a"), 6_322_305_411_306_248_672);
        assert_eq!(bucket("rol_4c7e", "dev_8f3a"), 8672);
        assert_eq!(order_key("salt", "device"), 13_633_979_880_270_490_150);
        assert_eq!(bucket("salt", "device"), 150);
    }
}
