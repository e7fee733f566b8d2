//! The device table: one compact record per device, and the indexes derived from the
//! persisted state (by id, counts per state and per wave, in flight, the timer heap), rebuilt
//! by one function, [`Index::build`], for create, restore and replay alike.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::persist::Snapshot;
use super::{DeviceState, Effect, RetryKind, Rollout, RolloutError, RolloutState};
use crate::compat::Reason;
use crate::name::Name;
use crate::plan::{FailureKind, Membership, RollbackScope, Wave};
use crate::time::UnixMs;

/// Retries used per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetriesUsed {
    /// After failure reports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u8,
    /// After in-progress timeouts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timed_out: u8,
    /// Resends after no answer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub no_ack: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_unset(t: &UnixMs) -> bool {
    *t == UnixMs::ZERO
}

impl RetriesUsed {
    fn is_none(&self) -> bool {
        *self == RetriesUsed::default()
    }
}

/// One device's compact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Slot {
    pub state: DeviceState,
    /// The wave the device belongs to.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wave: u8,
    #[serde(default, skip_serializing_if = "RetriesUsed::is_none")]
    pub retries: RetriesUsed,
    /// Why the package does not fit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// It timed out without ever coming online.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    /// It took the update.
    #[serde(default, skip_serializing_if = "is_false")]
    pub updated: bool,
    /// Its last command was the rollback package.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rollback: bool,
    /// It said it started installing what it was last sent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub started: bool,
    /// Its command was cancelled while out (it may still have finished).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stopped: bool,
    /// The deadline of the state's timer (zero: none).
    #[serde(default, skip_serializing_if = "is_unset")]
    pub timer: UnixMs,
    /// When its first command went out (zero: never).
    #[serde(default, skip_serializing_if = "is_unset")]
    pub first_sent: UnixMs,
}

impl Slot {
    pub fn new(state: DeviceState) -> Slot {
        Slot {
            state,
            wave: 0,
            retries: RetriesUsed::default(),
            reason: None,
            offline: false,
            updated: false,
            rollback: false,
            started: false,
            stopped: false,
            timer: UnixMs::ZERO,
            first_sent: UnixMs::ZERO,
        }
    }
}

/// The devices, in creation order: ids and records side by side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceTable {
    pub ids: Vec<Name>,
    pub slots: Vec<Slot>,
}

impl DeviceTable {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Name, DeviceState)> {
        self.ids.iter().zip(self.slots.iter().map(|s| s.state))
    }

    /// Adds a device; its index.
    pub fn push(&mut self, id: Name, slot: Slot) -> Result<u32, RolloutError> {
        let i = u32::try_from(self.ids.len()).map_err(|_| RolloutError::TooManyDevices {
            max: u64::from(u32::MAX),
        })?;
        self.ids.push(id);
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

    pub fn heap_bytes(&self) -> usize {
        let ids: usize = self
            .ids
            .iter()
            .map(|n| std::mem::size_of::<Name>() + n.as_str().len())
            .sum();
        ids + self.slots.len() * std::mem::size_of::<Slot>()
    }
}

/// What is derived from the persisted state, never persisted itself.
#[derive(Debug, Clone)]
pub(super) struct Index {
    /// The plan's waves, the canary and the implicit last one included.
    pub waves_spec: Vec<Wave>,
    pub by_id: HashMap<Name, u32>,
    /// Devices per state.
    pub counts: [u64; 16],
    /// Devices per state, per wave.
    pub wave_counts: Vec<[u64; 16]>,
    /// Devices with a command out.
    pub in_flight: u64,
    /// Device deadlines; an entry whose device's deadline moved is stale and skipped.
    pub timers: BinaryHeap<Reverse<(UnixMs, u32)>>,
    /// The target, for devices that join (a static group as a set).
    pub target: Option<Membership>,
}

impl Index {
    /// Rebuilds every index from the persisted state, checking that its parts agree. The one
    /// place create, restore and replay get their indexes from.
    pub fn build(s: &Snapshot) -> Result<Index, RolloutError> {
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
        let mut ix = Index {
            waves_spec,
            by_id: HashMap::with_capacity(n),
            counts: [0; 16],
            wave_counts: vec![[0; 16]; k],
            in_flight: 0,
            timers: BinaryHeap::new(),
            target: s.spec.resolved_target().map(|t| t.membership()),
        };
        for (i, (id, slot)) in s.devices.ids.iter().zip(&s.devices.slots).enumerate() {
            let i = i as u32;
            if usize::from(slot.wave) >= k {
                return bad("a device's wave is not a wave of the plan");
            }
            if ix.by_id.insert(id.clone(), i).is_some() {
                return bad("a device appears twice");
            }
            ix.add(slot, 1);
            if slot.timer != UnixMs::ZERO {
                ix.timers.push(Reverse((slot.timer, i)));
            }
        }
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

    pub fn heap_bytes(&self) -> usize {
        // A hash map entry: the key, the value and about one control byte per bucket, at 7/8
        // load; the key's text is shared with the table in spirit, counted once more here.
        let entries = self.by_id.len() * (std::mem::size_of::<Name>() + 4 + 1) * 8 / 7;
        let text: usize = self.by_id.keys().map(|n| n.as_str().len()).sum();
        entries + text
    }
}

// --- Device state changes: the one place the counters move. --------------------------------

impl Rollout {
    pub(super) fn slot(&self, i: u32) -> &Slot {
        &self.s.devices.slots[i as usize]
    }

    pub(super) fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.s.devices.slots[i as usize]
    }

    pub(super) fn device_id(&self, i: u32) -> Name {
        self.s.devices.ids[i as usize].clone()
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
                if s.offline && !self.s.spec.timeouts.offline_is_failure =>
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

    /// Schedules device `i` again after a failure of `kind`, once its backoff (doubling with
    /// each attempt) ends, if retries of that class are left and the rollout goes on (active or
    /// paused). `false` when the failure is final.
    pub(super) fn retry(&mut self, i: u32, kind: RetryKind, now: UnixMs) -> bool {
        let (class, used) = match kind {
            RetryKind::Failed => (self.s.spec.retries.failed, self.slot(i).retries.failed),
            RetryKind::TimedOut => (
                self.s.spec.retries.timed_out,
                self.slot(i).retries.timed_out,
            ),
        };
        let goes_on = matches!(self.s.state, RolloutState::Active | RolloutState::Paused);
        if used >= class.max || !goes_on {
            return false;
        }
        let attempt = used + 1;
        let retries = &mut self.slot_mut(i).retries;
        match kind {
            RetryKind::Failed => retries.failed = attempt,
            RetryKind::TimedOut => retries.timed_out = attempt,
        }
        self.set(i, DeviceState::Scheduled);
        let wait = class.backoff_ms.saturating_mul(1 << used.min(20));
        self.set_timer(i, now + wait.max(1));
        self.effect(Effect::DeviceRetry {
            device_id: self.device_id(i),
            after: kind,
            attempt,
        });
        true
    }

    /// After a device's final update outcome while rolling back: it joins the rollback if it
    /// is in the rollback's scope.
    pub(super) fn after_final(&mut self, i: u32) {
        if self.s.state == RolloutState::RollingBack && self.in_rollback_scope(i) {
            self.set(i, DeviceState::RollbackScheduled);
            self.s.ready.push_back(i);
        }
    }

    pub(super) fn in_rollback_scope(&self, i: u32) -> bool {
        let s = self.slot(i);
        match self.s.spec.rollback_scope {
            RollbackScope::UpdatedOnly => s.updated,
            RollbackScope::Cohort => {
                usize::from(s.wave) <= self.s.open_wave && s.state != DeviceState::Cancelled
            }
            RollbackScope::All => true,
        }
    }

    pub(super) fn set_timer(&mut self, i: u32, at: UnixMs) {
        self.slot_mut(i).timer = at;
        if at != UnixMs::ZERO {
            self.ix.timers.push(Reverse((at, i)));
        }
    }

    pub(super) fn clear_timer(&mut self, i: u32) {
        self.slot_mut(i).timer = UnixMs::ZERO;
    }

    pub(super) fn schedule(&mut self, i: u32) {
        self.set(i, DeviceState::Scheduled);
        self.s.ready.push_back(i);
    }
}
