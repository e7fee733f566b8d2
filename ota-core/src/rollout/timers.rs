//! The device timers: a heap of 8-byte entries, at most one per device in the steady state.
//!
//! A device's deadline lives in its [`Slot`](super::devices::Slot); the heap only says when to
//! look at a device again. An entry packs the instant as milliseconds from the heap's `base`
//! (32 bits) above the device's index (32 bits), so entries order by (instant, device), the
//! order in which timers fire.
//!
//! An entry may be *early*: its device's deadline moved later (a deadline moved later pushes
//! nothing while the device's entry still stands at or before it), or lies beyond the 49.7 days
//! the 32 bits reach (the entry waits at the window's end). Popping an early entry puts the
//! device back at its deadline, so a device fires exactly when an entry at its deadline comes
//! up: in the same order as if every deadline had been pushed, and never late.
//!
//! An entry may be *stale*: its device's timer was cleared, or moved earlier (which pushes a
//! new entry). Stale entries are dropped when popped, and all at once when they outnumber the
//! devices with a timer set, so the heap stays within about twice those, whatever the bursts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::UnixMs;

/// The instants an entry reaches past its heap's base.
const WINDOW: u64 = u32::MAX as u64;

/// Entries kept before stale ones are dropped, beyond twice the timers set.
const SLACK: u64 = 1024;

/// The device timers (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub(super) struct Timers {
    /// `(instant - base) << 32 | device`, smallest first.
    heap: BinaryHeap<Reverse<u64>>,
    /// The instant an entry's offset counts from; at or before every entry's instant.
    base: u64,
    /// One bit a device: its entry stands at or before its deadline. Clear says nothing
    /// either way (a deadline set then pushes an entry).
    queued: Vec<u64>,
    /// Devices with a timer set.
    live: u64,
    /// Times the heap was rebuilt on a new base (each costs every entry).
    #[cfg(test)]
    rebases: usize,
}

impl Timers {
    /// The timers of devices `(index, deadline)`; zero deadlines are none.
    pub fn build(deadlines: impl Iterator<Item = (u32, UnixMs)>) -> Timers {
        let set: Vec<(u32, u64)> = deadlines
            .filter(|(_, at)| *at != UnixMs::ZERO)
            .map(|(i, at)| (i, at.get()))
            .collect();
        let mut t = Timers {
            base: set.iter().map(|(_, at)| *at).min().unwrap_or(0),
            live: set.len() as u64,
            ..Timers::default()
        };
        let entries = set
            .iter()
            .map(|&(i, at)| {
                t.mark(i);
                Reverse(t.entry(i, at))
            })
            .collect::<Vec<_>>();
        t.heap = BinaryHeap::from(entries);
        t
    }

    /// Devices with a timer set.
    #[cfg(test)]
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Entries in the heap (live, early and stale).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// The instant of the first entry: no device's deadline comes before it (a tick then may
    /// find only early or stale entries).
    pub fn peek(&self) -> Option<UnixMs> {
        self.heap.peek().map(|Reverse(e)| UnixMs(self.decode(*e).1))
    }

    /// Device `i`'s deadline went from `before` to `after` (zero: none). `deadline` gives
    /// every device's deadline as it now stands, for dropping stale entries.
    pub fn set(&mut self, i: u32, before: UnixMs, after: UnixMs, deadline: impl Fn(u32) -> UnixMs) {
        match (before == UnixMs::ZERO, after == UnixMs::ZERO) {
            (true, false) => self.live += 1,
            (false, true) => self.live = self.live.saturating_sub(1),
            _ => {}
        }
        if after == UnixMs::ZERO {
            return;
        }
        // Moved later: the entry at or before `before` serves, and puts it back when it comes up.
        if before != UnixMs::ZERO && after >= before && self.is_queued(i) {
            return;
        }
        self.push(i, after.get());
        if self.heap.len() as u64 > 2 * self.live + SLACK {
            self.compact(deadline);
        }
    }

    /// The next device due at `now`, in (deadline, device) order, given every device's
    /// deadline as it stands; `None` when no more are. The device is due exactly at its
    /// deadline; its caller sets or clears its timer again.
    pub fn pop_due(&mut self, now: UnixMs, deadline: impl Fn(u32) -> UnixMs) -> Option<u32> {
        while let Some(&Reverse(e)) = self.heap.peek() {
            let (i, at) = self.decode(e);
            if at > now.get() {
                return None;
            }
            self.heap.pop();
            let due = deadline(i).get();
            if due == 0 {
                self.unmark(i);
            } else if due == at {
                self.unmark(i);
                return Some(i);
            } else if due > at {
                // Early: back at its deadline, or at the window's end if it lies past it. Only
                // an entry already at the end moves the window, once (the entries waiting with
                // it are then within it): a rebase for each would cost every entry, for each.
                if due - self.base > WINDOW && at - self.base == WINDOW {
                    self.move_window(due, &deadline);
                }
                self.push(i, due);
            }
            // `due < at`: a later entry left by a deadline moved earlier; the earlier one
            // came first.
        }
        None
    }

    /// Drops every timer (every device is terminal) and gives the memory back.
    pub fn clear(&mut self) {
        *self = Timers::default();
    }

    fn push(&mut self, i: u32, at: u64) {
        if self.heap.is_empty() {
            self.base = at;
        } else if at < self.base {
            self.rebase(at);
        }
        let e = self.entry(i, at);
        self.heap.push(Reverse(e));
        self.mark(i);
    }

    /// The entry of device `i` at `at` (at or after `base`); past the window, at its end.
    fn entry(&self, i: u32, at: u64) -> u64 {
        ((at - self.base).min(WINDOW) << 32) | u64::from(i)
    }

    fn decode(&self, e: u64) -> (u32, u64) {
        (e as u32, self.base + (e >> 32))
    }

    /// Counts offsets from `base` instead, at or before every entry's instant (an entry that
    /// then lies past the window waits at its end: earlier, which is safe).
    fn rebase(&mut self, base: u64) {
        let entries = std::mem::take(&mut self.heap)
            .into_iter()
            .map(|Reverse(e)| self.decode(e))
            .collect();
        self.refill(base, entries);
    }

    /// Moves the window past its end: every entry is put at its device's deadline (one whose
    /// deadline was cleared or moved before it is dropped), and offsets count from the earliest
    /// of these and `due` (about to be pushed); so a clock that jumps years ahead moves the
    /// window once, not 49.7 days at a time.
    fn move_window(&mut self, due: u64, deadline: impl Fn(u32) -> UnixMs) {
        let mut entries = Vec::with_capacity(self.heap.len());
        for Reverse(e) in std::mem::take(&mut self.heap) {
            let (i, at) = self.decode(e);
            let d = deadline(i).get();
            if d != 0 && d >= at {
                entries.push((i, d));
            }
        }
        let base = entries.iter().map(|&(_, d)| d).fold(due, u64::min);
        self.refill(base, entries);
    }

    /// Rebuilds the heap of `entries` (device, instant), counting offsets from `base`; an
    /// instant before it is put at it, one past the window at the window's end.
    fn refill(&mut self, base: u64, entries: Vec<(u32, u64)>) {
        #[cfg(test)]
        {
            self.rebases += 1;
        }
        self.base = base;
        self.heap = entries
            .into_iter()
            .map(|(i, at)| Reverse(self.entry(i, at.max(base))))
            .collect();
    }

    /// Keeps one entry a device with a timer set, at or before its deadline, and gives back
    /// the memory of a burst that has passed.
    fn compact(&mut self, deadline: impl Fn(u32) -> UnixMs) {
        self.queued.iter_mut().for_each(|w| *w = 0);
        let mut heap = std::mem::take(&mut self.heap).into_vec();
        heap.retain(|&Reverse(e)| {
            let (i, at) = self.decode(e);
            let due = deadline(i).get();
            let keep = due != 0 && at <= due && !self.is_queued(i);
            if keep {
                self.mark(i);
            }
            keep
        });
        if heap.capacity() > 2 * heap.len() + SLACK as usize {
            heap.shrink_to(heap.len() + heap.len() / 2);
        }
        self.heap = BinaryHeap::from(heap);
    }

    fn is_queued(&self, i: u32) -> bool {
        let i = i as usize;
        self.queued
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn mark(&mut self, i: u32) {
        let i = i as usize;
        if self.queued.len() <= i / 64 {
            self.queued.resize(i / 64 + 1, 0);
        }
        self.queued[i / 64] |= 1 << (i % 64);
    }

    fn unmark(&mut self, i: u32) {
        let i = i as usize;
        if let Some(w) = self.queued.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// What the heap stands for: every device's deadline, fired in (deadline, device) order.
    #[derive(Default)]
    struct Model {
        deadlines: Vec<UnixMs>,
    }

    impl Model {
        fn due(&self, now: UnixMs) -> Option<u32> {
            self.deadlines
                .iter()
                .enumerate()
                .filter(|(_, d)| **d != UnixMs::ZERO && **d <= now)
                .map(|(i, d)| (*d, i as u32))
                .collect::<BTreeSet<_>>()
                .first()
                .map(|(_, i)| *i)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Sets device `.0`'s deadline to `now + .1` (0: clears it).
        Set(u32, u64),
        /// Time passes by `.0`; each device due gets `now + .1` (0: none) as its next deadline.
        Advance(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Spans that cross the 49.7-day window now and then.
        let span = prop_oneof![
            0..100u64,
            0..5_000_000_000u64,
            0..20_000_000_000u64,
            // A clock jumping millions of windows ahead (not to the end of time: a deadline
            // set there would be due at once, again and again).
            0..1u64 << 55,
        ];
        prop_oneof![
            (0..40u32, span.clone()).prop_map(|(i, d)| Op::Set(i, d)),
            (span.clone(), span).prop_map(|(a, d)| Op::Advance(a, d)),
        ]
    }

    fn set(t: &mut Timers, m: &mut Model, i: u32, at: UnixMs) {
        let before = std::mem::replace(&mut m.deadlines[i as usize], at);
        let d = m.deadlines.clone();
        t.set(i, before, at, |j| d[j as usize]);
    }

    proptest! {
        #[test]
        fn devices_fire_at_their_deadlines_in_order_however_they_move(
            start in 1u64..1_000_000_000_000,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut m = Model { deadlines: vec![UnixMs::ZERO; 40] };
            let mut t = Timers::default();
            let mut now = UnixMs(start);
            for op in ops {
                match op {
                    Op::Set(i, 0) => set(&mut t, &mut m, i, UnixMs::ZERO),
                    Op::Set(i, d) => set(&mut t, &mut m, i, now.saturating_add_ms(d)),
                    Op::Advance(a, next) => {
                        now = now.saturating_add_ms(a);
                        loop {
                            let d = m.deadlines.clone();
                            let got = t.pop_due(now, |j| d[j as usize]);
                            prop_assert_eq!(got, m.due(now));
                            let Some(i) = got else { break };
                            let at = if next == 0 { UnixMs::ZERO } else { now.saturating_add_ms(next) };
                            set(&mut t, &mut m, i, at);
                        }
                    }
                }
                // Never late: the first entry comes at or before every deadline.
                if let Some(first) = m.deadlines.iter().filter(|d| **d != UnixMs::ZERO).min() {
                    prop_assert!(t.peek().is_some_and(|p| p <= *first));
                }
                let live = m.deadlines.iter().filter(|d| **d != UnixMs::ZERO).count() as u64;
                prop_assert_eq!(t.live(), live);
            }
        }
    }

    #[test]
    fn a_deadline_moved_later_pushes_nothing_and_a_cleared_one_is_dropped_in_a_compaction() {
        let mut t = Timers::default();
        let never = |_| UnixMs::ZERO;
        t.set(7, UnixMs::ZERO, UnixMs(100), |_| UnixMs(100));
        t.set(7, UnixMs(100), UnixMs(500), |_| UnixMs(500));
        assert_eq!(t.len(), 1);
        // The entry at 100 is early: nothing is due then, the device is at 500.
        assert_eq!(t.pop_due(UnixMs(100), |_| UnixMs(500)), None);
        assert_eq!(t.peek(), Some(UnixMs(500)));
        assert_eq!(t.pop_due(UnixMs(500), |_| UnixMs(500)), Some(7));
        t.set(7, UnixMs(500), UnixMs::ZERO, never);
        // A burst of timers set and cleared leaves at most the slack behind.
        for i in 0..5000 {
            t.set(i, UnixMs::ZERO, UnixMs(1000 + u64::from(i)), never);
            t.set(i, UnixMs(1000 + u64::from(i)), UnixMs::ZERO, never);
        }
        assert_eq!(t.live(), 0);
        assert!(t.len() <= SLACK as usize + 2, "{} entries", t.len());
    }

    /// Sets `n` devices' deadlines with `at(i)`, device `n` at `start` first (the base).
    fn far(t: &mut Timers, d: &mut Vec<UnixMs>, start: u64, n: u32, at: impl Fn(u32) -> u64) {
        d.resize(n as usize + 1, UnixMs::ZERO);
        d[n as usize] = UnixMs(start);
        t.set(n, UnixMs::ZERO, UnixMs(start), |_| UnixMs::ZERO);
        for i in 0..n {
            d[i as usize] = UnixMs(at(i));
            t.set(i, UnixMs::ZERO, d[i as usize], |_| UnixMs::ZERO);
        }
    }

    /// Pops every device due at `now`, clearing each as it fires.
    fn fire_all(t: &mut Timers, d: &mut [UnixMs], now: u64) -> Vec<(u64, u32)> {
        let mut fired = Vec::new();
        loop {
            let Some(i) = t.pop_due(UnixMs(now), |j| d[j as usize]) else {
                return fired;
            };
            fired.push((d[i as usize].get(), i));
            let before = std::mem::replace(&mut d[i as usize], UnixMs::ZERO);
            t.set(i, before, UnixMs::ZERO, |_| UnixMs::ZERO);
        }
    }

    #[test]
    fn devices_waiting_at_the_window_end_move_on_with_one_rebase_not_one_each() {
        // 2000 devices due more than two windows past the base all wait at the first
        // window's end; popping them there must not rebuild the heap once per device (a
        // million devices with an offline expiry of 120 days would take hours).
        let (start, n) = (1_800_000_000_000, 2000);
        let (mut t, mut d) = (Timers::default(), Vec::new());
        far(&mut t, &mut d, start, n, |i| {
            start + 3 * WINDOW + u64::from(i)
        });
        assert_eq!(fire_all(&mut t, &mut d, start + WINDOW), vec![(start, n)]);
        assert!(
            t.rebases <= 1,
            "{} rebases at the first window's end",
            t.rebases
        );
        assert_eq!(fire_all(&mut t, &mut d, start + 2 * WINDOW), vec![]);
        assert!(t.rebases <= 2, "{} rebases by the second", t.rebases);
        let fired = fire_all(&mut t, &mut d, start + 3 * WINDOW + u64::from(n));
        let want: Vec<_> = (0..n)
            .map(|i| (start + 3 * WINDOW + u64::from(i), i))
            .collect();
        assert_eq!(fired, want);
    }

    #[test]
    fn early_entries_of_deadlines_moved_past_the_window_wait_at_its_end_without_a_rebase_each() {
        // Deadlines moved later by more than a window push nothing; their entries come up one
        // by one, each must not rebuild the heap (a retry backoff past 49.7 days did).
        let (start, n) = (1_800_000_000_000, 2000);
        let (mut t, mut d) = (Timers::default(), Vec::new());
        far(&mut t, &mut d, start, n, |i| start + 10 + u64::from(i));
        for i in 0..n {
            let later = UnixMs(start + 2 * WINDOW + u64::from(n - i));
            let before = std::mem::replace(&mut d[i as usize], later);
            t.set(i, before, later, |j| d[j as usize]);
        }
        assert_eq!(
            t.len(),
            n as usize + 1,
            "a deadline moved later pushes nothing"
        );
        assert_eq!(
            fire_all(&mut t, &mut d, start + 10 + u64::from(n)),
            vec![(start, n)]
        );
        assert!(
            t.rebases <= 1,
            "{} rebases for {n} early entries",
            t.rebases
        );
        let fired = fire_all(&mut t, &mut d, start + 3 * WINDOW);
        let want: Vec<_> = (0..n)
            .rev()
            .map(|i| (start + 2 * WINDOW + u64::from(n - i), i))
            .collect();
        assert_eq!(fired, want);
    }

    #[test]
    fn a_clock_jumping_a_thousand_windows_fires_every_device_without_stepping_each_window() {
        // A host's clock jumping years ahead (or a restored deadline years away): the devices
        // due fire in order, and the heap does not walk the windows one by one with a rebase
        // of every entry each (to u64::MAX, four billion of them).
        let (start, n) = (1_800_000_000_000, 100);
        let (mut t, mut d) = (Timers::default(), Vec::new());
        far(&mut t, &mut d, start, n, |i| {
            start + 1000 * WINDOW + u64::from(i)
        });
        let fired = fire_all(&mut t, &mut d, u64::MAX);
        let mut want = vec![(start, n)];
        want.extend((0..n).map(|i| (start + 1000 * WINDOW + u64::from(i), i)));
        assert_eq!(fired, want);
        assert!(t.rebases <= 2, "{} rebases", t.rebases);
        // Timers set at the end of time, and a tick there.
        let (mut t, mut d) = (Timers::default(), Vec::new());
        far(&mut t, &mut d, start, n, |_| u64::MAX);
        let fired = fire_all(&mut t, &mut d, u64::MAX);
        let mut want = vec![(start, n)];
        want.extend((0..n).map(|i| (u64::MAX, i)));
        assert_eq!(fired, want);
    }
}
