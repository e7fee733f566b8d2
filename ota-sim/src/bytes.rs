//! Synthetic artifact bytes: noise that does not compress, and weights that compress like a
//! real model's.

use crate::Rng;

/// `n` deterministic, poorly compressible bytes (xorshift64 from `seed`), so a sealed
/// artifact spans about as many chunks as its plaintext.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `n` bytes that look like dense float32 model weights (small normal-ish values around
/// zero, sigma about 0.05), drawn from `rng`: they compress by about 7 %, like real ones.
pub fn weights(n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 4);
    while out.len() < n {
        // A sum of four uniforms: roughly normal around 0.
        let s: f64 = (0..4).map(|_| rng.unit()).sum::<f64>() - 2.0;
        out.extend_from_slice(&((s * 0.05) as f32).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// [`weights`] from a generator seeded with `seed`.
pub fn dense_weights(n: usize, seed: u64) -> Vec<u8> {
    weights(n, &mut Rng::new(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_barely_repeats() {
        let a = noise(4096, 9);
        assert_eq!(a, noise(4096, 9));
        assert_ne!(a, noise(4096, 10));
        let distinct = a.iter().collect::<std::collections::BTreeSet<_>>().len();
        assert!(distinct > 200, "{distinct} distinct byte values");
    }

    #[test]
    fn weights_are_small_finite_floats_of_the_asked_length() {
        for n in [0, 1, 5, 4096] {
            assert_eq!(dense_weights(n, 1).len(), n);
        }
        let w = dense_weights(4096, 1);
        for f in w.chunks_exact(4) {
            let x = f32::from_le_bytes(f.try_into().unwrap());
            assert!(x.is_finite() && x.abs() <= 0.1, "{x}");
        }
    }
}
