//! A small, fixed, seeded generator.

/// SplitMix64: a small, fast generator with a fixed algorithm, so a seed gives the same
/// sequence on every platform and in every run. Not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for `seed` and a named purpose (`"fleet"`, `"network"`), so the streams a
    /// simulation draws for different purposes do not overlap: the seed is mixed with the
    /// FNV-1a hash of `stream`.
    pub fn stream(seed: u64, stream: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in stream.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(seed ^ h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index in `0..len` (0 when `len` is 0): [`Rng::below`] for positions.
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Shuffles `items` in place (Fisher-Yates): every order equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// 32 random bytes (simulated keys).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// A seeded shuffle of `0..n` computed one position at a time, holding nothing per item: a
/// random bijection of the smallest power of two at least `n` (an odd multiplier, an added
/// constant and xor-shifts, each invertible), walked until it lands below `n`. For an order
/// of a million chunks without a million-entry list (a memory benchmark's own list would
/// count against what it measures). Not every order is equally likely, unlike
/// [`Rng::shuffle`].
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    mask: u64,
    shift: u32,
    keys: [(u64, u64); 3],
}

impl Permutation {
    /// A shuffle of `0..n` for `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let mut rng = Rng::new(seed);
        let mut key = || (rng.next_u64() | 1, rng.next_u64());
        Permutation {
            n,
            mask: if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            },
            shift: (bits / 2).max(1),
            keys: [key(), key(), key()],
        }
    }

    fn round(&self, mut x: u64) -> u64 {
        for (mul, add) in self.keys {
            x = x.wrapping_mul(mul).wrapping_add(add) & self.mask;
            x ^= x >> self.shift;
        }
        x
    }

    /// The item at position `i` (`i < n`): every item of `0..n` once over all positions.
    pub fn at(&self, i: u64) -> u64 {
        let mut x = self.round(i);
        while x >= self.n {
            x = self.round(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permutation_gives_every_item_once_and_depends_on_its_seed() {
        for n in [1u64, 2, 3, 7, 64, 1000, 16_385] {
            let p = Permutation::new(n, 9);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = p.at(i) as usize;
                assert!(!seen[x], "{x} twice in a shuffle of {n}");
                seen[x] = true;
            }
        }
        let order = |seed| {
            (0..1000)
                .map(|i| Permutation::new(1000, seed).at(i))
                .collect::<Vec<_>>()
        };
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn splitmix64_matches_its_reference_sequence() {
        // The reference implementation's first outputs for seed 1234567.
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn named_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, "fleet").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(7, "fleet").next_u64(),
            Rng::stream(7, "network").next_u64()
        );
    }

    /// The demo's transcript for a seed depends on it: a stream is the seed XOR the FNV-1a
    /// hash of its name (reference values computed apart from this code).
    #[test]
    fn a_named_stream_is_the_seed_mixed_with_the_fnv1a_hash_of_its_name() {
        assert_eq!(
            Rng::stream(3, "").next_u64(),
            Rng::new(3 ^ 0xcbf2_9ce4_8422_2325).next_u64()
        );
        assert_eq!(
            Rng::stream(3, "fleet").next_u64(),
            Rng::new(3 ^ 0xf775_f8a9_7470_ae4f).next_u64()
        );
        assert_eq!(
            Rng::stream(3, "fleet").next_u64(),
            10_649_924_977_697_631_193
        );
        assert_eq!(
            Rng::stream(3, "network").next_u64(),
            1_804_925_045_939_812_499
        );
    }

    #[test]
    fn a_shuffle_reorders_without_losing_or_repeating() {
        let mut r = Rng::new(4);
        let mut v: Vec<u32> = (0..100).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<u32>>(), "not shuffled");
        let mut again: Vec<u32> = (0..100).collect();
        Rng::new(4).shuffle(&mut again);
        assert_eq!(v, again, "another order from the same seed");
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<u32>>());
        r.shuffle::<u32>(&mut []);
    }

    #[test]
    fn an_empty_range_gives_zero_instead_of_dividing_by_it() {
        let mut r = Rng::new(3);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.index(0), 0);
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}
