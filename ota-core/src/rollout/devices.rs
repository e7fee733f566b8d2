//! The device table: one compact record per device, and the indexes derived from the
//! persisted state (by id, counts per state and per wave, in flight, the timer heap), rebuilt
//! by one function, [`Index::build`], for create, restore and replay alike.

use std::collections::BTreeMap;
use std::hash::BuildHasher as _;

use hashbrown::hash_table::{Entry, HashTable};
use serde::{Deserialize, Serialize};

use super::persist::Snapshot;
use super::timers::Timers;
use super::{DeviceState, Rollout, RolloutError};
use crate::compat::Reason;
use crate::name::Name;
use crate::plan::{FailureKind, Membership, Wave};
use crate::time::UnixMs;

/// Retries used per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RetriesUsed {
    /// After failure reports.
    pub failed: u8,
    /// After in-progress timeouts.
    pub timed_out: u8,
    /// Resends after no answer.
    pub no_ack: u8,
}

/// One device's compact record (24 bytes: five bytes of state, one of flags, two instants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub state: DeviceState,
    /// The wave the device belongs to.
    pub wave: u8,
    pub retries: RetriesUsed,
    /// Why the package does not fit it.
    pub reason: Option<Reason>,
    /// [`Slot::OFFLINE`], [`Slot::UPDATED`], [`Slot::ROLLBACK`], [`Slot::STARTED`],
    /// [`Slot::STOPPED`].
    flags: u8,
    /// The deadline of the state's timer (zero: none).
    pub timer: UnixMs,
    /// When its first command went out (zero: never).
    pub first_sent: UnixMs,
}

impl Slot {
    /// It timed out without ever coming online.
    pub const OFFLINE: u8 = 1;
    /// It took the update.
    pub const UPDATED: u8 = 2;
    /// Its last command was the rollback package.
    pub const ROLLBACK: u8 = 4;
    /// It said it started installing what it was last sent.
    pub const STARTED: u8 = 8;
    /// Its command was cancelled while out (it may still have finished).
    pub const STOPPED: u8 = 16;
    const ALL_FLAGS: u8 = 31;

    /// Its update's attempts so far all ended in a timeout, none reported failed: one of them
    /// may still finish, and its success counts.
    pub fn only_timed_out(&self) -> bool {
        self.retries.failed == 0 && self.retries.timed_out > 0
    }

    pub fn new(state: DeviceState) -> Slot {
        Slot {
            state,
            wave: 0,
            retries: RetriesUsed::default(),
            reason: None,
            flags: 0,
            timer: UnixMs::ZERO,
            first_sent: UnixMs::ZERO,
        }
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// The device ids, in creation order, as one text arena: id `i` is
/// `text[ends[i - 1]..ends[i]]`. No allocation per device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ids {
    text: String,
    ends: Vec<u32>,
}

impl Ids {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    /// The first byte of id `i` (0 for an empty or missing one): read only to bring it into
    /// the cache ([`Rollout::warm`]).
    fn first_byte(&self, i: u32) -> u8 {
        let i = i as usize;
        if i >= self.ends.len() {
            return 0;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.as_bytes().get(start).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let s = &self.text[start..e as usize];
            start = e as usize;
            s
        })
    }

    /// Adds a valid name; `false` when the arena is full.
    fn push(&mut self, id: &str) -> bool {
        match u32::try_from(self.text.len() + id.len()) {
            Ok(end) => {
                self.text.push_str(id);
                self.ends.push(end);
                true
            }
            Err(_) => false,
        }
    }

    fn reserve(&mut self, devices: usize, text: usize) {
        self.ends.reserve(devices);
        self.text.reserve(text);
    }
}

/// The devices, in creation order: ids and records side by side. Persisted column-wise (see
/// [`Columns`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Columns", try_from = "Columns")]
pub(super) struct DeviceTable {
    pub ids: Ids,
    pub slots: Vec<Slot>,
}

impl DeviceTable {
    pub fn with_capacity(devices: usize, text: usize) -> DeviceTable {
        let mut t = DeviceTable::default();
        t.ids.reserve(devices, text);
        t.slots.reserve(devices);
        t
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, DeviceState)> {
        self.ids.iter().zip(self.slots.iter().map(|s| s.state))
    }

    /// Adds a device; its index.
    pub fn push(&mut self, id: &str, slot: Slot) -> Result<u32, RolloutError> {
        let too_many = RolloutError::TooManyDevices {
            max: u64::from(u32::MAX),
        };
        let i = u32::try_from(self.ids.len()).map_err(|_| too_many.clone())?;
        if !self.ids.push(id) {
            return Err(too_many);
        }
        self.slots.push(slot);
        Ok(i)
    }

    /// Incompatible devices by their first reason.
    pub fn incompatible_reasons(&self) -> BTreeMap<Reason, u64> {
        let mut m = BTreeMap::new();
        for s in &self.slots {
            if let (DeviceState::Incompatible, Some(r)) = (s.state, s.reason) {
                *m.entry(r).or_default() += 1;
            }
        }
        m
    }
}

/// The device table as a snapshot holds it: one array per field, each as long as `ids`.
/// States, reasons and flags are small numbers (a state is its position in
/// [`DeviceState::ALL`], a reason its position in [`Reason::ALL`] or 255 for none, flags the
/// bits of [`Slot`]); instants are Unix milliseconds, 0 for none.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Columns {
    ids: Ids,
    state: Vec<u8>,
    wave: Vec<u8>,
    retries_failed: Vec<u8>,
    retries_timed_out: Vec<u8>,
    retries_no_ack: Vec<u8>,
    reason: Vec<u8>,
    flags: Vec<u8>,
    timer: Vec<u64>,
    first_sent: Vec<u64>,
}

/// No reason, in the `reason` column.
const NO_REASON: u8 = u8::MAX;

/// A reason's number in the `reason` column.
pub(super) fn reason_byte(r: Option<Reason>) -> u8 {
    r.and_then(|r| Reason::ALL.iter().position(|x| *x == r))
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(NO_REASON)
}

impl From<DeviceTable> for Columns {
    fn from(t: DeviceTable) -> Columns {
        let col = |f: &dyn Fn(&Slot) -> u8| t.slots.iter().map(f).collect::<Vec<u8>>();
        Columns {
            state: col(&|s| s.state as u8),
            wave: col(&|s| s.wave),
            retries_failed: col(&|s| s.retries.failed),
            retries_timed_out: col(&|s| s.retries.timed_out),
            retries_no_ack: col(&|s| s.retries.no_ack),
            reason: col(&|s| reason_byte(s.reason)),
            flags: col(&|s| s.flags),
            timer: t.slots.iter().map(|s| s.timer.get()).collect(),
            first_sent: t.slots.iter().map(|s| s.first_sent.get()).collect(),
            ids: t.ids,
        }
    }
}

impl TryFrom<Columns> for DeviceTable {
    type Error = String;

    fn try_from(c: Columns) -> Result<DeviceTable, String> {
        let n = c.ids.len();
        let lens = [
            ("state", c.state.len()),
            ("wave", c.wave.len()),
            ("retries_failed", c.retries_failed.len()),
            ("retries_timed_out", c.retries_timed_out.len()),
            ("retries_no_ack", c.retries_no_ack.len()),
            ("reason", c.reason.len()),
            ("flags", c.flags.len()),
            ("timer", c.timer.len()),
            ("first_sent", c.first_sent.len()),
        ];
        if let Some((field, len)) = lens.iter().find(|(_, len)| *len != n) {
            return Err(format!("devices.{field}: {len} entries for {n} device ids"));
        }
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            let state = *DeviceState::ALL
                .get(usize::from(c.state[i]))
                .ok_or_else(|| {
                    format!("devices.state[{i}]: {} is not a device state", c.state[i])
                })?;
            let reason = match c.reason[i] {
                NO_REASON => None,
                r => Some(
                    *Reason::ALL
                        .get(usize::from(r))
                        .ok_or_else(|| format!("devices.reason[{i}]: {r} is not a reason"))?,
                ),
            };
            if c.flags[i] & !Slot::ALL_FLAGS != 0 {
                return Err(format!("devices.flags[{i}]: unknown flags {}", c.flags[i]));
            }
            slots.push(Slot {
                state,
                wave: c.wave[i],
                retries: RetriesUsed {
                    failed: c.retries_failed[i],
                    timed_out: c.retries_timed_out[i],
                    no_ack: c.retries_no_ack[i],
                },
                reason,
                flags: c.flags[i],
                timer: UnixMs(c.timer[i]),
                first_sent: UnixMs(c.first_sent[i]),
            });
        }
        Ok(DeviceTable { ids: c.ids, slots })
    }
}

impl Serialize for Ids {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ids, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ids;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of device ids")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Ids, A::Error> {
                let mut ids = Ids::default();
                ids.reserve(a.size_hint().unwrap_or(0).min(1 << 20), 0);
                while let Some(id) = a.next_element::<std::borrow::Cow<'de, str>>()? {
                    Name::check(&id).map_err(serde::de::Error::custom)?;
                    if !ids.push(&id) {
                        return Err(serde::de::Error::custom("too many device ids"));
                    }
                }
                Ok(ids)
            }
        }
        d.deserialize_seq(V)
    }
}

/// The device index: each device's position, found by its id's text with a fast hasher (the
/// table holds 4 bytes a device, the ids stay in the [`Ids`] arena).
#[derive(Clone, Default)]
pub(super) struct ById {
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for ById {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ById({} devices)", self.table.len())
    }
}

impl ById {
    pub fn with_capacity(n: usize) -> ById {
        ById {
            table: HashTable::with_capacity(n),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The device named `id`.
    pub fn get(&self, ids: &Ids, id: &str) -> Option<u32> {
        self.table
            .find(self.hash(id), |&i| ids.get(i) == id)
            .copied()
    }

    /// The index of every id in `ids`. `Err(i)`: device `i` has the id of a device before it
    /// (the first such device).
    ///
    /// At a million devices the table is larger than the cache, so inserting the ids in their
    /// order would touch it at random, a cache miss or two each. They are inserted in the
    /// order of their home buckets instead (a counting sort on the hashes' bucket bits), so
    /// the inserts walk the table from one end to the other. The sort is stable: of two equal
    /// ids the earlier is inserted first, and the later is the one found twice.
    pub fn build(ids: &Ids) -> Result<ById, u32> {
        let mut by_id = ById::with_capacity(ids.len());
        // The table's buckets: a power of two above its capacity (at least 7/8 full), its
        // home bucket the hash's low bits.
        let buckets = (by_id.table.capacity() as u64 + 1).next_power_of_two();
        let shift = buckets.trailing_zeros().saturating_sub(16);
        let part = |h: u64| ((h & (buckets - 1)) >> shift) as usize;
        let mut starts = vec![0usize; ((buckets - 1) >> shift) as usize + 2];
        for id in ids.iter() {
            starts[part(by_id.hash(id)) + 1] += 1;
        }
        for p in 1..starts.len() {
            starts[p] += starts[p - 1];
        }
        let mut order = vec![(0u64, 0u32); ids.len()];
        for (id, i) in ids.iter().zip(0u32..) {
            let h = by_id.hash(id);
            let at = &mut starts[part(h)];
            order[*at] = (h, i);
            *at += 1;
        }
        let mut twice: Option<u32> = None;
        let hasher = &by_id.hasher;
        for (h, i) in order {
            // The id itself is read only when a bucket's tag matches its hash: reading it for
            // every insert was a cache miss each, most of a restore's rebuild.
            match by_id.table.entry(
                h,
                |&j| ids.get(j) == ids.get(i),
                |&j| hasher.hash_one(ids.get(j)),
            ) {
                Entry::Occupied(_) => twice = Some(twice.map_or(i, |t| t.min(i))),
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
        match twice {
            Some(i) => Err(i),
            None => Ok(by_id),
        }
    }

    /// Walks each of `keys`' probe sequence in the table, reading every candidate's bucket and
    /// the first byte of its id, and keeps nothing: what [`ById::get`] then reads for the same
    /// keys is in the cache, the misses of all of them overlapped here ([`Rollout::warm`] does
    /// the same for slots).
    pub fn warm<'a>(&self, ids: &Ids, keys: impl IntoIterator<Item = &'a str>) {
        let mut seen = 0u8;
        for key in keys {
            self.table.find(self.hash(key), |&i| {
                seen ^= ids.first_byte(i);
                false
            });
        }
        std::hint::black_box(seen);
    }

    /// Indexes device `i` (already in `ids`); `false` when its id is there already.
    pub fn insert(&mut self, ids: &Ids, i: u32) -> bool {
        let id = ids.get(i);
        let hasher = &self.hasher;
        match self.table.entry(
            hasher.hash_one(id),
            |&j| ids.get(j) == id,
            |&j| hasher.hash_one(ids.get(j)),
        ) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(i);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
}

/// What is derived from the persisted state, never persisted itself.
#[derive(Debug, Clone)]
pub(super) struct Index {
    /// The plan's waves, the canary and the implicit last one included.
    pub waves_spec: Vec<Wave>,
    pub by_id: ById,
    /// Devices per state.
    pub counts: [u64; 16],
    /// Devices per state, per wave.
    pub wave_counts: Vec<[u64; 16]>,
    /// Devices with a command out.
    pub in_flight: u64,
    /// When to look at each device with a deadline again.
    pub timers: Timers,
    /// The target, for devices that join (a static group as a set).
    pub target: Option<Membership>,
}

impl Index {
    /// Rebuilds every index from the persisted state, checking that its parts agree. The one
    /// place create, restore and replay get their indexes from (create passes the id index
    /// it built to check for duplicates).
    pub fn build(s: &Snapshot, by_id: Option<ById>) -> Result<Index, RolloutError> {
        let bad = |what| Err(RolloutError::SnapshotInvalid { what });
        let waves_spec = s.spec.all_waves();
        let n = s.devices.len();
        let k = waves_spec.len();
        if s.devices.slots.len() != n {
            return bad("the device ids and records differ in number");
        }
        if s.waves.len() != k || s.members.len() != k || s.bounds.len() != k {
            return bad("the waves do not match the plan");
        }
        if s.open_wave >= k {
            return bad("the open wave is not a wave of the plan");
        }
        let in_range = |i: &u32| (*i as usize) < n;
        if !s.members.iter().flatten().all(in_range) || !s.ready.iter().all(in_range) {
            return bad("a wave or the ready queue names a device that is not in the table");
        }
        let by_id = match by_id {
            Some(b) => b,
            None => ById::build(&s.devices.ids).map_err(|_| RolloutError::SnapshotInvalid {
                what: "a device appears twice",
            })?,
        };
        let mut ix = Index {
            waves_spec,
            by_id,
            counts: [0; 16],
            wave_counts: vec![[0; 16]; k],
            in_flight: 0,
            timers: Timers::default(),
            target: s.spec.resolved_target().map(|t| t.membership()),
        };
        for slot in &s.devices.slots {
            if usize::from(slot.wave) >= k {
                return bad("a device's wave is not a wave of the plan");
            }
            ix.add(slot, 1);
        }
        if ix.by_id.len() != n {
            return bad("the device index does not match the table");
        }
        ix.timers = Timers::build((0..).zip(s.devices.slots.iter().map(|s| s.timer)));
        Ok(ix)
    }

    /// Counts a device in (`sign` 1) or out (`sign` -1) of the counters.
    fn add(&mut self, slot: &Slot, sign: i8) {
        let st = slot.state as usize;
        let w = &mut self.wave_counts[usize::from(slot.wave)][st];
        if sign > 0 {
            self.counts[st] += 1;
            *w += 1;
            self.in_flight += u64::from(slot.state.in_flight());
        } else {
            self.counts[st] -= 1;
            *w -= 1;
            self.in_flight -= u64::from(slot.state.in_flight());
        }
    }

    /// Eligible devices in wave `k` (those that left are not counted).
    pub fn wave_devices(&self, k: usize) -> u64 {
        DeviceState::ALL
            .iter()
            .zip(self.wave_counts[k])
            .filter(|(s, _)| {
                !matches!(
                    s,
                    DeviceState::Incompatible
                        | DeviceState::AlreadyInstalled
                        | DeviceState::Removed
                )
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Devices of wave `k` with an update still open.
    pub fn remaining(&self, k: usize) -> u64 {
        DeviceState::ALL
            .iter()
            .zip(self.wave_counts[k])
            .filter(|(s, _)| s.is_open())
            .map(|(_, n)| n)
            .sum()
    }
}

/// How many devices a step reads ahead at a time ([`Rollout::warm`], [`ById::warm`]): enough
/// for their cache misses to overlap, few enough that what they bring stays in the cache.
pub(super) const WARM: usize = 256;

// --- Device state changes: the one place the counters move. --------------------------------

impl Rollout {
    pub(super) fn slot(&self, i: u32) -> &Slot {
        &self.s.devices.slots[i as usize]
    }

    pub(super) fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.s.devices.slots[i as usize]
    }

    pub(super) fn device_id(&self, i: u32) -> Name {
        Name::from_table(self.s.devices.ids.get(i))
    }

    /// Reads each device's slot and the start of its id, and nothing else: a step that is
    /// about to visit many devices spread over a large fleet calls this first, so that their
    /// cache misses overlap in this short loop instead of coming one at a time in the long
    /// one that follows (the core forbids `unsafe`, so it has no prefetch instruction).
    /// Changes nothing.
    pub(super) fn warm(&self, devices: impl IntoIterator<Item = u32>) {
        let d = &self.s.devices;
        let mut seen = 0u64;
        for i in devices {
            if let Some(s) = d.slots.get(i as usize) {
                seen ^= s.timer.0 ^ s.first_sent.0;
            }
            seen = seen.wrapping_add(u64::from(d.ids.first_byte(i)));
        }
        std::hint::black_box(seen);
    }

    pub(super) fn eligible(&self) -> u64 {
        self.s.devices.len() as u64
            - self.ix.counts[DeviceState::Incompatible as usize]
            - self.ix.counts[DeviceState::AlreadyInstalled as usize]
    }

    /// Moves a device to another state.
    pub(super) fn set(&mut self, i: u32, to: DeviceState) {
        if self.slot(i).state == to {
            return;
        }
        let before = *self.slot(i);
        self.ix.add(&before, -1);
        self.slot_mut(i).state = to;
        let after = *self.slot(i);
        self.ix.add(&after, 1);
    }

    /// Moves a device to another wave.
    pub(super) fn place(&mut self, i: u32, wave: u8) {
        let before = *self.slot(i);
        self.ix.add(&before, -1);
        self.slot_mut(i).wave = wave;
        let after = *self.slot(i);
        self.ix.add(&after, 1);
    }

    /// Counts a final update outcome in the device's wave and in the cumulative counters.
    pub(super) fn count(&mut self, i: u32, kind: Option<FailureKind>) {
        let s = *self.slot(i);
        let counted = match kind {
            None => false,
            Some(FailureKind::TimedOut)
                if s.has(Slot::OFFLINE) && !self.s.spec.timeouts.offline_is_failure =>
            {
                false
            }
            Some(k) => self.s.spec.halt.count_as_failure.contains(&k),
        };
        for c in [
            &mut self.s.waves[usize::from(s.wave)].counts,
            &mut self.s.cumulative,
        ] {
            // Saturating: a restored snapshot may hold any count.
            c.terminal = c.terminal.saturating_add(1);
            if kind.is_none() {
                c.succeeded = c.succeeded.saturating_add(1);
            }
            if counted {
                c.failures = c.failures.saturating_add(1);
            }
        }
    }

    pub(super) fn set_timer(&mut self, i: u32, at: UnixMs) {
        let before = std::mem::replace(&mut self.slot_mut(i).timer, at);
        let slots = &self.s.devices.slots;
        self.ix
            .timers
            .set(i, before, at, |j| slots[j as usize].timer);
    }

    pub(super) fn clear_timer(&mut self, i: u32) {
        self.set_timer(i, UnixMs::ZERO);
    }

    pub(super) fn schedule(&mut self, i: u32) {
        self.set(i, DeviceState::Scheduled);
        self.s.ready.push_back(i);
    }
}

#[cfg(test)]
mod tests;
