//! The rollout engine: a sans-IO state machine a fleet service embeds and persists.
//!
//! **Creation** ([`Rollout::create`]) takes a [`VerifiedPackage`], a [`RolloutSpec`] and the
//! fleet's device profiles. It runs the compatibility engine: incompatible devices and devices
//! already on the version get the terminal states `incompatible` / `already_installed` (with
//! the reason) and are left out of every denominator. The eligible devices are ordered by a
//! fixed hash of (salt, device id) — their bucket, `mod 10 000` — and wave k takes the first
//! `ceil(percent_k × eligible)` of them, so cohorts are reproducible, nested (the 10 % cohort
//! contains the 5 % cohort) and exact (240 devices at 5 % schedule 12, as seed 004 says). With
//! `stratify`, each hardware profile is cut the same way, so every wave samples every kind of
//! device. The canary opens at once.
//!
//! **The drive loop.** Feed inputs with the `handle_*` methods (reports, ticks, operator
//! commands, devices joining and leaving), then drain [`Rollout::poll_command`] (send the
//! update or rollback to a device as a persistent command; cancel one),
//! [`Rollout::poll_event`] (seed 004's `profile.ota.rollout.<what>.<tenant>.<rollout_id>`)
//! and [`Rollout::poll_audit`] (append each record to the rollout's trail). Call
//! [`Rollout::handle_tick`] when [`Rollout::poll_timeout`] says.
//!
//! **Rollout states**, after seed 004's diagram:
//!
//! | from | input | to |
//! |---|---|---|
//! | (new) | create | `active` (the canary opens) |
//! | `active` | operator pause | `paused` |
//! | `paused` | operator pause | `paused` (no-op, not an error) |
//! | `active` | halt rule tripped, action `pause` | `paused` (alert event) |
//! | `active` | halt rule tripped, action `abort` | `aborted` |
//! | `active`, `paused` | operator rollback, or halt action `rollback` | `rolling_back` |
//! | `paused` | operator resume (acknowledges the failures that tripped it) | `active` |
//! | `active`, `paused`, `rolling_back` | operator abort | `aborted` |
//! | `active` | every wave opened and every device terminal | `completed` |
//! | `rolling_back` | every rollback device terminal | `completed` |
//!
//! **Events** (subject `profile.ota.rollout.<kind>.<tenant>.<rollout_id>`), one per
//! transition: `started`, `wave_opened`, `gate_waiting` (a wave waits for an approval or a
//! verdict), `gate_blocked` (its success gate is not met), `approved`, `verdict`, `halted` (the
//! rule tripped, with its reason), `paused`, `resumed`, `aborted`, `rolling_back`,
//! `rolled_back` and `completed`.
//!
//! **Device states**: `pending` → `scheduled` → `sent` (a persistent command reaches an
//! offline device when it reconnects) → `in_progress` → `succeeded` | `failed` | `timed_out`
//! | `rejected`; also `incompatible`, `already_installed`, `cancelled`, `removed`, and for a
//! rollback `rollback_scheduled` → `rollback_sent` → `rolled_back` | `rollback_failed`.
//!
//! **What each operator command does to each device state** (every cell is tested):
//!
//! | device state | pause | resume | abort | rollback |
//! |---|---|---|---|---|
//! | `pending`, `scheduled` | held (not sent) | sent in turn | `cancelled` | `cancelled` (`all` scope: `rollback_scheduled`) |
//! | `sent`, `in_progress` | finishes; with a cancel policy, cancelled and held | sent again if held | finishes, or `cancelled` by policy | finishes (then rolled back if it took the update), or `cancelled` by policy |
//! | `succeeded` | unchanged | unchanged | unchanged | `rollback_scheduled` |
//! | `failed`, `timed_out`, `rejected` | unchanged | unchanged | unchanged | `rollback_scheduled` in `cohort` and `all` scopes |
//! | `rollback_scheduled`, `rollback_sent` | (rolling back: pause refused) | — | `cancelled` / finishes by policy | — |
//! | every other (terminal) state | unchanged | unchanged | unchanged | unchanged |
//!
//! A report that arrives for a device already terminal, or for a rollout that is over, is
//! recorded in the audit trail but changes nothing.
//!
//! **The halt rule** trips when, among the devices in scope (the reporting device's wave, or
//! all), `failures × 100 > threshold × terminal` — strictly, so 10 % trips at 11 % and not at
//! 10 % — once at least `min_terminal` are terminal, or when failures exceed `max_failures`.
//! Only final failures count (after retries), and only the outcomes listed in
//! `count_as_failure`. Resuming acknowledges the failures so far: only new ones can trip it
//! again. A trip while paused is a no-op.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::audit::{AuditRecord, Cause, Chain};
use crate::compat::{self, Reason};
use crate::digest::Sha256Digest;
use crate::name::Name;
use crate::plan::{
    FailureKind, Gate, HaltAction, InFlight, RollbackScope, RolloutSpec, Scope, Wave,
};
use crate::profile::DeviceProfile;
use crate::report::{DeviceReport, ReportStatus};
use crate::sign::{self, PackageId, TrustedKeys, VerifiedPackage};

mod cohort;
mod persist;
mod types;

use cohort::share;
pub use cohort::{bucket, order_key};
pub use types::*;

/// One device's compact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    state: DeviceState,
    /// The wave the device belongs to.
    wave: u8,
    /// Retries used per class: failed, timed out, no ack.
    retries: [u8; 3],
    /// Bit 0: timed out without ever coming online. Bit 1: took the update.
    flags: u8,
    /// The incompatibility reason (`Reason` index), or 255.
    reason: u8,
    /// The deadline of the state's timer (0: none).
    timer: u64,
    /// When the first command went out (0: never).
    first_sent: u64,
}

const OFFLINE: u8 = 1;
const UPDATED: u8 = 2;
const NO_REASON: u8 = 255;

/// An input, as written to the audit trail and replayed from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Input {
    Create {
        rollout_id: Name,
        tenant: Name,
        package_id: PackageId,
        rollback_package_id: Option<PackageId>,
        spec: Box<RolloutSpec>,
        devices: u64,
        device_table: Sha256Digest,
    },
    Report(DeviceReport),
    Tick,
    Pause,
    Resume,
    Abort,
    Rollback,
    Approve {
        wave: usize,
    },
    Verdict {
        wave: usize,
        pass: bool,
    },
    Join(Box<DeviceProfile>),
    Leave {
        device_id: Name,
    },
}

/// What creating a rollout needs.
pub struct Create<'a> {
    /// The rollout's id (`rol_4c7e`).
    pub rollout_id: Name,
    /// The tenant, for event subjects.
    pub tenant: Name,
    /// The request.
    pub spec: RolloutSpec,
    /// The package (must be the request's `package_id`).
    pub package: &'a VerifiedPackage,
    /// The rollback package (must be the request's `rollback_package_id`).
    pub rollback: Option<&'a VerifiedPackage>,
    /// The fleet.
    pub fleet: &'a [DeviceProfile],
    /// Who asked.
    pub by: Name,
    /// When (Unix ms).
    pub now: u64,
}

/// A rollout.
#[derive(Debug, Clone)]
pub struct Rollout {
    id: Name,
    tenant: Name,
    spec: RolloutSpec,
    waves_spec: Vec<Wave>,
    package: VerifiedPackage,
    rollback: Option<VerifiedPackage>,
    state: RolloutState,
    started_at: u64,
    ids: Vec<Name>,
    index: HashMap<Name, u32>,
    slots: Vec<Slot>,
    /// The hash order key of each eligible device (for placing devices that join).
    bounds: Vec<u64>,
    members: Vec<Vec<u32>>,
    waves: Vec<WaveStatus>,
    cumulative: Counts,
    cumulative_ack: Counts,
    state_counts: [u64; 16],
    in_flight: u64,
    open_wave: usize,
    announced: Vec<bool>,
    halt_reason: Option<String>,
    incompatible_reasons: BTreeMap<Reason, u64>,
    fleet_impact: u64,
    ready: VecDeque<u32>,
    sends: VecDeque<u64>,
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    chain: Chain,
    effects: Vec<String>,
    /// Whether the current input changed anything (a tick that did is recorded even when it
    /// has nothing to say, so a replay passes through the same states).
    touched: bool,
    sent_now: u64,
    commands: VecDeque<RolloutCommand>,
    events: VecDeque<Event>,
    audit: VecDeque<AuditRecord>,
}

impl Rollout {
    /// Creates a rollout: checks the request against the packages, runs the compatibility
    /// engine over the fleet, cuts the cohorts, and opens the canary.
    pub fn create(c: Create<'_>) -> Result<Rollout, RolloutError> {
        let spec = c.spec;
        if spec.package_id != *c.package.id() {
            return Err(RolloutError::Invalid(format!(
                "the request names {}, the package is {}",
                spec.package_id,
                c.package.id()
            )));
        }
        match (&spec.rollback_package_id, c.rollback) {
            (Some(id), Some(r)) if id == r.id() => {}
            (None, None) => {}
            (Some(id), _) => {
                return Err(RolloutError::Invalid(format!(
                    "the rollback package {id} is missing or another"
                )));
            }
            (None, Some(_)) => {
                return Err(RolloutError::Invalid(
                    "a rollback package was given but not requested".into(),
                ));
            }
        }
        let target = spec
            .resolved_target()
            .ok_or_else(|| RolloutError::Invalid("the request has no target".into()))?;
        let waves_spec = spec.all_waves();
        if waves_spec.len() > 200 {
            return Err(RolloutError::Invalid("at most 200 waves".into()));
        }
        let salt = spec
            .salt
            .clone()
            .unwrap_or_else(|| c.rollout_id.to_string());
        let pkg = c.package.package();

        let mut r = Rollout {
            id: c.rollout_id,
            tenant: c.tenant,
            waves: waves_spec
                .iter()
                .enumerate()
                .map(|(index, w)| WaveStatus {
                    index,
                    percent: w.percent,
                    gate: w.gate,
                    devices: 0,
                    remaining: 0,
                    opened_at: None,
                    completed_at: None,
                    counts: Counts::default(),
                    acknowledged: Counts::default(),
                    approved: false,
                    verdict: None,
                })
                .collect(),
            announced: vec![false; waves_spec.len()],
            members: vec![Vec::new(); waves_spec.len()],
            bounds: vec![0; waves_spec.len()],
            waves_spec,
            package: c.package.clone(),
            rollback: c.rollback.cloned(),
            state: RolloutState::Active,
            started_at: c.now,
            ids: Vec::new(),
            index: HashMap::new(),
            slots: Vec::new(),
            cumulative: Counts::default(),
            cumulative_ack: Counts::default(),
            state_counts: [0; 16],
            in_flight: 0,
            open_wave: 0,
            halt_reason: None,
            incompatible_reasons: BTreeMap::new(),
            fleet_impact: 0,
            ready: VecDeque::new(),
            sends: VecDeque::new(),
            timers: BinaryHeap::new(),
            chain: Chain::default(),
            effects: Vec::new(),
            touched: false,
            sent_now: 0,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            audit: VecDeque::new(),
            spec,
        };

        // Who is in the target, and who is eligible; strata by hardware profile.
        let mut strata: BTreeMap<&str, Vec<(u64, u32)>> = BTreeMap::new();
        let mut incompatible_rollback = 0u64;
        let mut first_misfit: Option<Name> = None;
        for d in c.fleet.iter().filter(|d| target.contains(d)) {
            if r.index.contains_key(&d.device_id) {
                return Err(RolloutError::Invalid(format!(
                    "device {} appears twice in the fleet",
                    d.device_id
                )));
            }
            let i = u32::try_from(r.ids.len())
                .map_err(|_| RolloutError::Invalid("too many devices".into()))?;
            r.index.insert(d.device_id.clone(), i);
            r.ids.push(d.device_id.clone());
            let mut slot = Slot {
                state: DeviceState::Pending,
                wave: 0,
                retries: [0; 3],
                flags: 0,
                reason: NO_REASON,
                timer: 0,
                first_sent: 0,
            };
            let report = first_reason(pkg, d);
            if let Some(reason) = report {
                slot.state = DeviceState::Incompatible;
                slot.reason = reason_index(reason);
                *r.incompatible_reasons.entry(reason).or_default() += 1;
            } else if d.installed.get(&pkg.name) == Some(&pkg.version) {
                slot.state = DeviceState::AlreadyInstalled;
            } else {
                if let Some(rb) = c.rollback
                    && !compat::fits(rb.package(), d)
                {
                    incompatible_rollback += 1;
                    first_misfit.get_or_insert_with(|| d.device_id.clone());
                }
                let key = if r.spec.stratify {
                    d.hardware_profile.as_str()
                } else {
                    ""
                };
                strata
                    .entry(key)
                    .or_default()
                    .push((order_key(&salt, d.device_id.as_str()), i));
            }
            r.state_counts[slot.state as usize] += 1;
            r.slots.push(slot);
        }
        if incompatible_rollback > 0 {
            return Err(RolloutError::Invalid(format!(
                "the rollback package does not fit {incompatible_rollback} eligible device(s), {} among them",
                first_misfit.map(|n| n.to_string()).unwrap_or_default()
            )));
        }
        // Cut each stratum into the waves by bucket order.
        for members in strata.values_mut() {
            members.sort_unstable();
            let n = members.len() as u64;
            let mut taken = 0u64;
            for (k, w) in r.waves_spec.iter().enumerate() {
                let mut upto = share(n, w.percent).max(taken);
                if let Some(cap) = w.max_devices {
                    upto = upto.min(taken + cap);
                }
                if k + 1 == r.waves_spec.len() {
                    upto = n;
                }
                for &(key, i) in &members[taken as usize..upto as usize] {
                    r.slots[i as usize].wave = u8::try_from(k).unwrap_or(u8::MAX);
                    r.members[k].push(i);
                    r.bounds[k] = r.bounds[k].max(key);
                }
                taken = upto;
            }
        }
        for k in 0..r.waves.len() {
            let n = r.members[k].len() as u64;
            r.waves[k].devices = n;
            r.waves[k].remaining = n;
        }
        for k in 1..r.bounds.len() {
            r.bounds[k] = r.bounds[k].max(r.bounds[k - 1]);
        }

        let table = r.device_table_digest();
        let signers: Vec<String> = c
            .package
            .signed_by()
            .iter()
            .map(ToString::to_string)
            .collect();
        r.effects.push(format!(
            "published {} ({} {} {}, sha256 {}) signed by {}",
            c.package.id(),
            pkg.kind.as_str(),
            pkg.name,
            pkg.version,
            pkg.sha256,
            signers.join(", ")
        ));
        r.effects.push(format!(
            "created by {}: {} eligible, {} incompatible, {} already installed",
            c.by,
            r.eligible(),
            r.state_counts[DeviceState::Incompatible as usize],
            r.state_counts[DeviceState::AlreadyInstalled as usize]
        ));
        r.event(
            "started",
            c.now,
            serde_json::json!({"package_id": r.package.id(), "eligible": r.eligible()}),
        );
        r.open(0, c.now);
        r.settle(c.now);
        let input = Input::Create {
            rollout_id: r.id.clone(),
            tenant: r.tenant.clone(),
            package_id: r.package.id().clone(),
            rollback_package_id: r.rollback.as_ref().map(|p| p.id().clone()),
            spec: Box::new(r.spec.clone()),
            devices: r.ids.len() as u64,
            device_table: table,
        };
        r.record(c.now, Cause::Operator { by: c.by }, &input, true);
        Ok(r)
    }

    fn eligible(&self) -> u64 {
        self.ids.len() as u64
            - self.state_counts[DeviceState::Incompatible as usize]
            - self.state_counts[DeviceState::AlreadyInstalled as usize]
    }

    /// A digest of the device table as created: ids, states, waves and reasons.
    fn device_table_digest(&self) -> Sha256Digest {
        let mut h = Sha256::new();
        for (id, s) in self.ids.iter().zip(&self.slots) {
            h.update(id.as_str().as_bytes());
            h.update([0, s.state as u8, s.wave, s.reason]);
        }
        Sha256Digest::from_bytes(h.finalize().into())
    }

    fn event(&mut self, kind: &str, at: u64, data: serde_json::Value) {
        self.events.push_back(Event {
            subject: format!("profile.ota.rollout.{kind}.{}.{}", self.tenant, self.id),
            kind: kind.to_string(),
            at,
            data,
        });
    }

    fn record(&mut self, at: u64, cause: Cause, input: &Input, always: bool) {
        if self.sent_now > 0 {
            let n = std::mem::take(&mut self.sent_now);
            self.effects.push(format!("sent {n} command(s)"));
        }
        let touched = std::mem::take(&mut self.touched);
        if self.effects.is_empty() && !always && !touched {
            return;
        }
        let effects = std::mem::take(&mut self.effects);
        let input = serde_json::to_value(input).unwrap_or(serde_json::Value::Null);
        let r = self.chain.append(at, cause, input, effects);
        self.audit.push_back(r);
    }

    // --- Device state changes: the one place the counters move. -----------------------------

    fn set(&mut self, i: u32, to: DeviceState) {
        let s = &mut self.slots[i as usize];
        let from = s.state;
        if from == to {
            return;
        }
        s.state = to;
        let wave = usize::from(s.wave);
        self.state_counts[from as usize] -= 1;
        self.state_counts[to as usize] += 1;
        if from.in_flight() {
            self.in_flight -= 1;
        }
        if to.in_flight() {
            self.in_flight += 1;
        }
        if from.is_open()
            && !to.is_open()
            && let Some(w) = self.waves.get_mut(wave)
        {
            w.remaining -= 1;
        }
        if !from.is_open()
            && to.is_open()
            && let Some(w) = self.waves.get_mut(wave)
        {
            w.remaining += 1;
        }
    }

    /// Counts a final update outcome in the device's wave and in the cumulative counters.
    fn count(&mut self, i: u32, kind: Option<FailureKind>) {
        let s = self.slots[i as usize];
        let counted = match kind {
            None => false,
            Some(FailureKind::TimedOut)
                if s.flags & OFFLINE != 0 && !self.spec.timeouts.offline_is_failure =>
            {
                false
            }
            Some(k) => self.spec.halt.count_as_failure.contains(&k),
        };
        for c in [
            &mut self.waves[usize::from(s.wave)].counts,
            &mut self.cumulative,
        ] {
            c.terminal += 1;
            if kind.is_none() {
                c.succeeded += 1;
            }
            if counted {
                c.failures += 1;
            }
        }
    }

    /// Whether a failed device may be tried again: only while the rollout goes on.
    fn can_retry(&self) -> bool {
        matches!(self.state, RolloutState::Active | RolloutState::Paused)
    }

    /// After a device's final update outcome while rolling back: it joins the rollback if it
    /// is in the rollback's scope.
    fn after_final(&mut self, i: u32) {
        if self.state == RolloutState::RollingBack && self.in_rollback_scope(i) {
            self.set(i, DeviceState::RollbackScheduled);
            self.ready.push_back(i);
        }
    }

    fn set_timer(&mut self, i: u32, at: u64) {
        self.slots[i as usize].timer = at;
        if at > 0 {
            self.timers.push(Reverse((at, i)));
        }
    }

    fn schedule(&mut self, i: u32) {
        self.set(i, DeviceState::Scheduled);
        self.ready.push_back(i);
    }

    // --- Waves and gates. -----------------------------------------------------------------

    fn open(&mut self, k: usize, now: u64) {
        self.open_wave = k;
        self.waves[k].opened_at = Some(now);
        let members = std::mem::take(&mut self.members[k]);
        let mut n = 0;
        for &i in &members {
            if self.slots[i as usize].state == DeviceState::Pending {
                self.schedule(i);
                n += 1;
            }
        }
        self.members[k] = members;
        let name = if k == 0 {
            "canary".to_string()
        } else {
            format!("wave {k}")
        };
        self.effects.push(format!("{name} opened: {n} device(s)"));
        self.event(
            "wave_opened",
            now,
            serde_json::json!({"wave": k, "devices": n}),
        );
    }

    /// Opens the next wave if its gate allows; completes the rollout when everything is done.
    fn advance(&mut self, now: u64) {
        loop {
            if self.state != RolloutState::Active {
                return;
            }
            let k = self.open_wave;
            if self.waves[k].remaining > 0 {
                return;
            }
            if self.waves[k].completed_at.is_none() {
                self.waves[k].completed_at = Some(now);
            }
            let Some(next) = self.waves_spec.get(k + 1).cloned() else {
                return self.complete(now);
            };
            let done = self.waves[k].completed_at.unwrap_or(now);
            if now < done.saturating_add(next.min_soak_ms) {
                return;
            }
            let c = self.cumulative;
            let rate = if c.terminal == 0 {
                100.0
            } else {
                c.succeeded as f64 * 100.0 / c.terminal as f64
            };
            let w = &self.waves[k + 1];
            let override_ = w.approved;
            if rate < next.success_gate_percent && !override_ {
                if !self.announced[k + 1] {
                    self.announced[k + 1] = true;
                    self.effects.push(format!(
                        "wave {} held: {rate:.1}% succeeded, its gate needs {}%",
                        k + 1,
                        next.success_gate_percent
                    ));
                    self.event(
                        "gate_blocked",
                        now,
                        serde_json::json!({"wave": k + 1, "success_percent": rate}),
                    );
                }
                return;
            }
            let pass = match next.gate {
                Gate::Automatic => true,
                Gate::Approval => w.approved,
                Gate::External => w.verdict == Some(true),
            };
            if next.gate == Gate::External && w.verdict == Some(false) {
                let reason = format!("the external verdict on wave {} failed", k + 1);
                return self.trip(reason, now);
            }
            if !pass {
                if !self.announced[k + 1] {
                    self.announced[k + 1] = true;
                    let what = if next.gate == Gate::Approval {
                        "approval"
                    } else {
                        "external verdict"
                    };
                    self.effects
                        .push(format!("wave {} waits for {what}", k + 1));
                    self.event(
                        "gate_waiting",
                        now,
                        serde_json::json!({"wave": k + 1, "gate": what}),
                    );
                }
                return;
            }
            self.open(k + 1, now);
        }
    }

    fn complete(&mut self, now: u64) {
        self.state = RolloutState::Completed;
        self.ready.clear();
        // Every device is terminal: what is left in the heap is stale.
        self.timers.clear();
        self.effects.push("completed".into());
        let c = self.cumulative;
        self.event(
            "completed",
            now,
            serde_json::json!({"succeeded": c.succeeded, "failures": c.failures}),
        );
    }

    // --- The halt rule. -------------------------------------------------------------------

    fn check_halt(&mut self, wave: usize, now: u64) {
        if self.state != RolloutState::Active {
            return;
        }
        let (counts, ack) = match self.spec.halt.scope {
            Scope::Wave => (self.waves[wave].counts, self.waves[wave].acknowledged),
            Scope::Cumulative => (self.cumulative, self.cumulative_ack),
        };
        let terminal = counts.terminal - ack.terminal;
        let failures = counts.failures - ack.failures;
        if let Some(reason) = halt_trips(&self.spec, terminal, failures) {
            let scope = match self.spec.halt.scope {
                Scope::Wave if wave == 0 => "the canary".to_string(),
                Scope::Wave => format!("wave {wave}"),
                Scope::Cumulative => "the rollout".to_string(),
            };
            self.trip(format!("{reason} in {scope}"), now);
        }
    }

    fn trip(&mut self, reason: String, now: u64) {
        self.halt_reason = Some(reason.clone());
        self.effects.push(format!("halt rule tripped: {reason}"));
        self.event("halted", now, serde_json::json!({"reason": reason}));
        match self.spec.halt.action {
            HaltAction::Pause => self.pause(now),
            HaltAction::Abort => self.abort(now),
            HaltAction::Rollback => self.start_rollback(now),
        }
    }

    // --- Operator commands. ---------------------------------------------------------------

    fn stop_in_flight(&mut self, now: u64, hold: bool) {
        let forced = match self.spec.in_flight {
            InFlight::Finish => return,
            InFlight::SoftCancel => false,
            InFlight::ForcedCancel => true,
        };
        let _ = now;
        for i in 0..self.slots.len() as u32 {
            let st = self.slots[i as usize].state;
            if matches!(st, DeviceState::Sent | DeviceState::InProgress) {
                self.commands.push_back(RolloutCommand::Cancel {
                    device_id: self.ids[i as usize].clone(),
                    forced,
                });
                self.slots[i as usize].timer = 0;
                if hold {
                    self.set(i, DeviceState::Scheduled);
                } else {
                    self.set(i, DeviceState::Cancelled);
                }
            }
        }
    }

    fn pause(&mut self, now: u64) {
        self.state = RolloutState::Paused;
        self.effects.push("paused".into());
        self.event(
            "paused",
            now,
            serde_json::json!({"reason": self.halt_reason}),
        );
        self.stop_in_flight(now, true);
    }

    fn abort(&mut self, now: u64) {
        self.state = RolloutState::Aborted;
        self.ready.clear();
        for i in 0..self.slots.len() as u32 {
            let st = self.slots[i as usize].state;
            if matches!(
                st,
                DeviceState::Pending | DeviceState::Scheduled | DeviceState::RollbackScheduled
            ) {
                self.set(i, DeviceState::Cancelled);
            }
        }
        self.stop_in_flight(now, false);
        self.effects.push("aborted".into());
        self.event("aborted", now, serde_json::json!({}));
    }

    fn in_rollback_scope(&self, i: u32) -> bool {
        let s = self.slots[i as usize];
        match self.spec.rollback_scope {
            RollbackScope::UpdatedOnly => s.flags & UPDATED != 0,
            RollbackScope::Cohort => {
                usize::from(s.wave) <= self.open_wave && !matches!(s.state, DeviceState::Cancelled)
            }
            RollbackScope::All => true,
        }
    }

    fn start_rollback(&mut self, now: u64) {
        self.state = RolloutState::RollingBack;
        self.ready.clear();
        for i in 0..self.slots.len() as u32 {
            let st = self.slots[i as usize].state;
            let take = match st {
                DeviceState::Pending | DeviceState::Scheduled => {
                    let all = self.spec.rollback_scope == RollbackScope::All;
                    if !all {
                        self.set(i, DeviceState::Cancelled);
                    }
                    all
                }
                DeviceState::Succeeded
                | DeviceState::Failed
                | DeviceState::TimedOut
                | DeviceState::Rejected => self.in_rollback_scope(i),
                _ => false,
            };
            if take {
                self.slots[i as usize].timer = 0;
                self.set(i, DeviceState::RollbackScheduled);
                self.ready.push_back(i);
            }
        }
        self.stop_in_flight(now, false);
        self.effects.push(format!(
            "rolling back to {} ({} device(s))",
            self.rollback
                .as_ref()
                .map(|p| p.id().to_string())
                .unwrap_or_default(),
            self.state_counts[DeviceState::RollbackScheduled as usize]
        ));
        self.event(
            "rolling_back",
            now,
            serde_json::json!({"devices": self.ready.len()}),
        );
    }

    fn finish_rollback(&mut self, now: u64) {
        if self.state != RolloutState::RollingBack
            || self.state_counts[DeviceState::RollbackScheduled as usize] > 0
            || self.in_flight > 0
        {
            return;
        }
        self.state = RolloutState::Completed;
        self.timers.clear();
        let rolled = self.state_counts[DeviceState::RolledBack as usize];
        self.effects
            .push(format!("rolled back: {rolled} device(s)"));
        self.event("rolled_back", now, serde_json::json!({"devices": rolled}));
        self.event("completed", now, serde_json::json!({"rolled_back": rolled}));
    }

    // --- Dispatch and timers. -------------------------------------------------------------

    fn dispatch(&mut self, now: u64) {
        let rolling = self.state == RolloutState::RollingBack;
        if !(self.state == RolloutState::Active || rolling) || !self.spec.window.allows(now) {
            return;
        }
        while let Some(&i) = self.ready.front() {
            let st = self.slots[i as usize].state;
            let wanted = if rolling {
                DeviceState::RollbackScheduled
            } else {
                DeviceState::Scheduled
            };
            if st != wanted || self.slots[i as usize].timer > now {
                self.ready.pop_front();
                self.touched = true;
                continue;
            }
            if self
                .spec
                .pacing
                .max_in_flight
                .is_some_and(|m| self.in_flight >= m)
            {
                return;
            }
            if self.take_rate(now).is_err() {
                return;
            }
            self.ready.pop_front();
            self.send(i, now, rolling);
        }
    }

    /// Takes one send from the per-minute budget; when there is none left, says when the
    /// oldest send of the window leaves it.
    fn take_rate(&mut self, now: u64) -> Result<(), u64> {
        let Some(limit) = self.spec.pacing.limit_per_minute(self.started_at, now) else {
            return Ok(());
        };
        // The sends of the minute up to now; older ones are dropped only when one is added,
        // so a refused send changes nothing.
        let recent = self
            .sends
            .iter()
            .rev()
            .take_while(|t| **t + 60_000 > now)
            .count();
        if recent as u64 >= limit {
            let oldest = self.sends[self.sends.len() - recent];
            return Err(oldest + 60_000);
        }
        while self.sends.front().is_some_and(|t| *t + 60_000 <= now) {
            self.sends.pop_front();
        }
        self.sends.push_back(now);
        Ok(())
    }

    fn send(&mut self, i: u32, now: u64, rolling: bool) {
        let package_id = if rolling {
            self.rollback.as_ref().map(|p| p.id().clone())
        } else {
            Some(self.package.id().clone())
        };
        let Some(package_id) = package_id else { return };
        self.set(
            i,
            if rolling {
                DeviceState::RollbackSent
            } else {
                DeviceState::Sent
            },
        );
        let s = &mut self.slots[i as usize];
        if s.first_sent == 0 || rolling {
            s.first_sent = now;
        }
        let deadline = now.saturating_add(self.spec.timeouts.ack_ms);
        self.set_timer(i, deadline);
        self.sent_now += 1;
        self.commands.push_back(RolloutCommand::Send {
            device_id: self.ids[i as usize].clone(),
            package_id,
            rollback: rolling,
        });
    }

    fn fire(&mut self, i: u32, now: u64) {
        self.touched = true;
        let s = self.slots[i as usize];
        let t = self.spec.timeouts;
        let id = self.ids[i as usize].clone();
        match s.state {
            DeviceState::Scheduled | DeviceState::RollbackScheduled => {
                // A retry's backoff ended.
                self.slots[i as usize].timer = 0;
                self.ready.push_back(i);
            }
            DeviceState::Sent | DeviceState::RollbackSent => {
                let rolling = s.state == DeviceState::RollbackSent;
                let expires = s.first_sent.saturating_add(t.offline_expiry_ms);
                if now >= expires {
                    self.slots[i as usize].flags |= OFFLINE;
                    if rolling {
                        self.set(i, DeviceState::RollbackFailed);
                    } else {
                        self.set(i, DeviceState::TimedOut);
                        self.count(i, Some(FailureKind::TimedOut));
                        self.check_halt(usize::from(s.wave), now);
                        self.after_final(i);
                    }
                    self.slots[i as usize].timer = 0;
                    self.effects
                        .push(format!("{id} timed out: never came online"));
                } else if !matches!(self.state, RolloutState::Active | RolloutState::RollingBack) {
                    // Paused or aborted: nothing goes out, not even a resend; wait on.
                    self.set_timer(i, now.saturating_add(t.ack_ms).min(expires));
                } else if s.retries[2] < self.spec.retries.no_ack.max {
                    // A resend is a send: it waits for the per-minute budget like any other.
                    if let Err(at) = self.take_rate(now) {
                        self.set_timer(i, at.min(expires).max(now + 1));
                        return;
                    }
                    self.slots[i as usize].retries[2] += 1;
                    let package_id = if rolling {
                        self.rollback.as_ref().map(|p| p.id().clone())
                    } else {
                        Some(self.package.id().clone())
                    };
                    if let Some(package_id) = package_id {
                        self.commands.push_back(RolloutCommand::Send {
                            device_id: id.clone(),
                            package_id,
                            rollback: rolling,
                        });
                    }
                    self.set_timer(i, now.saturating_add(t.ack_ms).min(expires));
                    self.effects
                        .push(format!("{id} did not answer: sent again"));
                } else {
                    self.set_timer(i, expires);
                }
            }
            DeviceState::InProgress => {
                let r = self.spec.retries.timed_out;
                if s.retries[1] < r.max && self.can_retry() {
                    self.slots[i as usize].retries[1] += 1;
                    self.set(i, DeviceState::Scheduled);
                    let wait = r.backoff_ms.saturating_mul(1 << s.retries[1].min(20));
                    self.set_timer(i, now.saturating_add(wait.max(1)));
                    self.effects.push(format!(
                        "{id} timed out in progress: retry {}",
                        s.retries[1] + 1
                    ));
                } else {
                    self.slots[i as usize].timer = 0;
                    self.set(i, DeviceState::TimedOut);
                    self.count(i, Some(FailureKind::TimedOut));
                    self.effects.push(format!("{id} timed out in progress"));
                    self.check_halt(usize::from(s.wave), now);
                    self.after_final(i);
                }
            }
            _ => {}
        }
    }

    /// Dispatches what may go out, opens waves whose gates allow, and completes.
    fn settle(&mut self, now: u64) {
        self.dispatch(now);
        self.advance(now);
        self.dispatch(now);
        self.finish_rollback(now);
    }

    // --- Inputs. ----------------------------------------------------------------------------

    /// Time passed: timers fire, waves open after their soak, paced commands go out.
    pub fn handle_tick(&mut self, now: u64) {
        self.apply(Input::Tick, Cause::Timer, now).ok();
    }

    /// A device's report (seed 004's `{device_id, rollout_id, firmware_version, status,
    /// reason}`). A late report is recorded but changes nothing.
    pub fn handle_report(&mut self, report: &DeviceReport, now: u64) -> Result<(), RolloutError> {
        let cause = Cause::Device {
            device_id: report.device_id.clone(),
        };
        self.apply(Input::Report(report.clone()), cause, now)
    }

    /// Pauses the rollout: nothing new is sent.
    pub fn handle_pause(&mut self, by: &Name, now: u64) -> Result<(), RolloutError> {
        self.apply(Input::Pause, Cause::Operator { by: by.clone() }, now)
    }

    /// Resumes a paused rollout; the failures so far are acknowledged.
    pub fn handle_resume(&mut self, by: &Name, now: u64) -> Result<(), RolloutError> {
        self.apply(Input::Resume, Cause::Operator { by: by.clone() }, now)
    }

    /// Aborts the rollout for good.
    pub fn handle_abort(&mut self, by: &Name, now: u64) -> Result<(), RolloutError> {
        self.apply(Input::Abort, Cause::Operator { by: by.clone() }, now)
    }

    /// Rolls back to the rollback package.
    pub fn handle_rollback(&mut self, by: &Name, now: u64) -> Result<(), RolloutError> {
        self.apply(Input::Rollback, Cause::Operator { by: by.clone() }, now)
    }

    /// Approves a wave gated by `approval`, and lets any wave past its success gate (an
    /// `external` gate still needs its passing verdict).
    pub fn handle_approve(&mut self, wave: usize, by: &Name, now: u64) -> Result<(), RolloutError> {
        self.apply(
            Input::Approve { wave },
            Cause::Operator { by: by.clone() },
            now,
        )
    }

    /// An external verdict on a wave gated by `external`; a failing one trips the halt action.
    pub fn handle_verdict(
        &mut self,
        wave: usize,
        pass: bool,
        by: &Name,
        now: u64,
    ) -> Result<(), RolloutError> {
        self.apply(
            Input::Verdict { wave, pass },
            Cause::External { by: by.clone() },
            now,
        )
    }

    /// A device joined the fleet: if it is in the target, it is placed by its bucket.
    pub fn handle_join(&mut self, profile: DeviceProfile, now: u64) -> Result<(), RolloutError> {
        let cause = Cause::Device {
            device_id: profile.device_id.clone(),
        };
        self.apply(Input::Join(Box::new(profile)), cause, now)
    }

    /// A device left the target: it becomes `removed`.
    pub fn handle_leave(&mut self, device_id: &Name, now: u64) -> Result<(), RolloutError> {
        let cause = Cause::Device {
            device_id: device_id.clone(),
        };
        self.apply(
            Input::Leave {
                device_id: device_id.clone(),
            },
            cause,
            now,
        )
    }

    fn apply(&mut self, input: Input, cause: Cause, now: u64) -> Result<(), RolloutError> {
        let always = !matches!(input, Input::Tick);
        let r = match &input {
            Input::Create { .. } => Err(RolloutError::State {
                input: "create",
                state: self.state.as_str(),
            }),
            Input::Tick => {
                while let Some(Reverse((at, i))) = self.timers.peek().copied() {
                    if at > now {
                        break;
                    }
                    self.timers.pop();
                    if self.slots[i as usize].timer == at {
                        self.fire(i, now);
                    }
                }
                Ok(())
            }
            Input::Report(r) => self.report(r, now),
            Input::Pause => match self.state {
                RolloutState::Active => {
                    self.pause(now);
                    Ok(())
                }
                RolloutState::Paused => Ok(()),
                s => Err(RolloutError::State {
                    input: "pause",
                    state: s.as_str(),
                }),
            },
            Input::Resume => match self.state {
                RolloutState::Paused => {
                    self.state = RolloutState::Active;
                    self.cumulative_ack = self.cumulative;
                    for w in &mut self.waves {
                        w.acknowledged = w.counts;
                    }
                    // Held devices go out again, in their order.
                    let held: Vec<u32> = (0..self.slots.len() as u32)
                        .filter(|i| self.slots[*i as usize].state == DeviceState::Scheduled)
                        .collect();
                    self.ready = held.into();
                    self.effects
                        .push("resumed: the failures so far are acknowledged".into());
                    self.event("resumed", now, serde_json::json!({}));
                    Ok(())
                }
                s => Err(RolloutError::State {
                    input: "resume",
                    state: s.as_str(),
                }),
            },
            Input::Abort => match self.state {
                RolloutState::Active | RolloutState::Paused | RolloutState::RollingBack => {
                    self.abort(now);
                    Ok(())
                }
                s => Err(RolloutError::State {
                    input: "abort",
                    state: s.as_str(),
                }),
            },
            Input::Rollback => match self.state {
                RolloutState::Active | RolloutState::Paused if self.rollback.is_some() => {
                    self.start_rollback(now);
                    Ok(())
                }
                RolloutState::Active | RolloutState::Paused => Err(RolloutError::Invalid(
                    "the rollout has no rollback package".into(),
                )),
                s => Err(RolloutError::State {
                    input: "roll back",
                    state: s.as_str(),
                }),
            },
            Input::Approve { wave } => match self.waves.get_mut(*wave) {
                None => Err(RolloutError::NotFound(format!("no wave {wave}"))),
                Some(w) => {
                    w.approved = true;
                    self.effects.push(format!("wave {wave} approved"));
                    self.event("approved", now, serde_json::json!({"wave": wave}));
                    Ok(())
                }
            },
            Input::Verdict { wave, pass } => self.verdict(*wave, *pass, now),
            Input::Join(p) => self.join(p, now),
            Input::Leave { device_id } => self.leave(device_id, now),
        };
        if r.is_err() {
            self.effects.clear();
            self.sent_now = 0;
            return r;
        }
        self.settle(now);
        self.record(now, cause, &input, always);
        r
    }

    /// An external verdict on `wave`. Before the wave opens it is the wave's gate; once the
    /// wave is open its verdict stays as it opened it, and a failing verdict on the wave in
    /// progress is a monitor saying it is bad: the halt action.
    fn verdict(&mut self, wave: usize, pass: bool, now: u64) -> Result<(), RolloutError> {
        let Some(open) = self.waves.get(wave).map(|w| w.opened_at.is_some()) else {
            return Err(RolloutError::NotFound(format!("no wave {wave}")));
        };
        if !open {
            self.waves[wave].verdict = Some(pass);
        }
        let word = if pass { "passed" } else { "failed" };
        let which = if open { "open wave" } else { "wave" };
        self.effects
            .push(format!("external verdict on {which} {wave}: {word}"));
        self.event(
            "verdict",
            now,
            serde_json::json!({"wave": wave, "pass": pass}),
        );
        if open && !pass && wave == self.open_wave && self.state == RolloutState::Active {
            self.trip(format!("the external verdict on wave {wave} failed"), now);
        }
        Ok(())
    }

    fn report(&mut self, r: &DeviceReport, now: u64) -> Result<(), RolloutError> {
        if r.rollout_id.as_ref().is_some_and(|id| *id != self.id) {
            return Err(RolloutError::NotFound(format!(
                "the report is for rollout {:?}",
                r.rollout_id
            )));
        }
        let Some(&i) = self.index.get(&r.device_id) else {
            return Err(RolloutError::NotFound(format!(
                "device {} is not in rollout {}",
                r.device_id, self.id
            )));
        };
        let s = self.slots[i as usize];
        let id = r.device_id.clone();
        let over = matches!(self.state, RolloutState::Completed | RolloutState::Aborted);
        let status = r.status.as_str();
        match (s.state, r.status) {
            (DeviceState::Sent, ReportStatus::InProgress) if !over => {
                self.set(i, DeviceState::InProgress);
                self.set_timer(i, now.saturating_add(self.spec.timeouts.in_progress_ms));
                self.effects.push(format!("{id} in progress"));
            }
            (DeviceState::RollbackSent, ReportStatus::InProgress) if !over => {
                let at = now.saturating_add(self.spec.timeouts.in_progress_ms);
                self.slots[i as usize].first_sent = now;
                self.set_timer(i, at);
                self.effects.push(format!("{id} rolling back"));
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Success) => {
                self.slots[i as usize].flags |= UPDATED;
                self.slots[i as usize].timer = 0;
                self.set(i, DeviceState::Succeeded);
                self.count(i, None);
                let v = r
                    .firmware_version
                    .as_ref()
                    .map(|v| format!(" to {v}"))
                    .unwrap_or_default();
                self.effects.push(format!("{id} updated{v}"));
                // A success can bring the scope to `min_terminal` with failures already in it.
                self.check_halt(usize::from(s.wave), now);
                self.after_final(i);
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Failure) => {
                let retry = self.spec.retries.failed;
                if s.retries[0] < retry.max && self.can_retry() {
                    self.slots[i as usize].retries[0] += 1;
                    self.set(i, DeviceState::Scheduled);
                    let wait = retry.backoff_ms.saturating_mul(1 << s.retries[0].min(20));
                    self.set_timer(i, now.saturating_add(wait.max(1)));
                    self.effects
                        .push(format!("{id} failed: retry {}", s.retries[0] + 1));
                } else {
                    self.slots[i as usize].timer = 0;
                    self.set(i, DeviceState::Failed);
                    self.count(i, Some(FailureKind::Failed));
                    if r.firmware_version.is_none() {
                        self.fleet_impact += 1;
                    }
                    let why = r.reason.as_deref().unwrap_or("no reason given");
                    self.effects.push(format!("{id} failed: {why}"));
                    self.check_halt(usize::from(s.wave), now);
                    self.after_final(i);
                }
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Rejected) => {
                self.slots[i as usize].timer = 0;
                self.set(i, DeviceState::Rejected);
                self.count(i, Some(FailureKind::Rejected));
                let why = r.reason.as_deref().unwrap_or("no reason given");
                self.effects
                    .push(format!("{id} rejected the update: {why}"));
                self.check_halt(usize::from(s.wave), now);
                self.after_final(i);
            }
            (DeviceState::RollbackSent, ReportStatus::Success) => {
                self.slots[i as usize].timer = 0;
                self.set(i, DeviceState::RolledBack);
                self.effects.push(format!("{id} rolled back"));
            }
            (DeviceState::RollbackSent, ReportStatus::Failure | ReportStatus::Rejected) => {
                self.slots[i as usize].timer = 0;
                self.set(i, DeviceState::RollbackFailed);
                self.effects.push(format!("{id} rollback failed"));
            }
            (state, _) => {
                self.effects.push(format!(
                    "late report from {id} ({status}) while {}: recorded",
                    state.as_str()
                ));
            }
        }
        Ok(())
    }

    fn join(&mut self, p: &DeviceProfile, now: u64) -> Result<(), RolloutError> {
        let target = self
            .spec
            .resolved_target()
            .ok_or_else(|| RolloutError::Invalid("the rollout has no target".into()))?;
        if !target.contains(p) {
            return Err(RolloutError::NotFound(format!(
                "device {} is not in the rollout's target",
                p.device_id
            )));
        }
        let id = p.device_id.clone();
        let i = match self.index.get(&id) {
            Some(&i) if self.slots[i as usize].state != DeviceState::Removed => {
                self.effects
                    .push(format!("{id} joined again: already in the rollout"));
                return Ok(());
            }
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.ids.len())
                    .map_err(|_| RolloutError::Invalid("too many devices".into()))?;
                self.ids.push(id.clone());
                self.index.insert(id.clone(), i);
                self.slots.push(Slot {
                    state: DeviceState::Removed,
                    wave: 0,
                    retries: [0; 3],
                    flags: 0,
                    reason: NO_REASON,
                    timer: 0,
                    first_sent: 0,
                });
                self.state_counts[DeviceState::Removed as usize] += 1;
                i
            }
        };
        let pkg = self.package.package();
        if let Some(reason) = first_reason(pkg, p) {
            self.slots[i as usize].reason = reason_index(reason);
            *self.incompatible_reasons.entry(reason).or_default() += 1;
            self.set(i, DeviceState::Incompatible);
            self.effects
                .push(format!("{id} joined: incompatible ({reason})"));
            return Ok(());
        }
        if p.installed.get(&pkg.name) == Some(&pkg.version) {
            self.set(i, DeviceState::AlreadyInstalled);
            self.effects.push(format!("{id} joined: already installed"));
            return Ok(());
        }
        if !matches!(self.state, RolloutState::Active | RolloutState::Paused) {
            self.set(i, DeviceState::Cancelled);
            self.effects.push(format!(
                "{id} joined after the rollout stopped ({}): cancelled",
                self.state.as_str()
            ));
            return Ok(());
        }
        let salt = self
            .spec
            .salt
            .clone()
            .unwrap_or_else(|| self.id.to_string());
        let key = order_key(&salt, id.as_str());
        let wave = self
            .bounds
            .iter()
            .position(|b| key <= *b)
            .unwrap_or(self.bounds.len() - 1);
        self.slots[i as usize].wave = u8::try_from(wave).unwrap_or(u8::MAX);
        self.waves[wave].devices += 1;
        self.members[wave].push(i);
        self.set(i, DeviceState::Pending);
        let open = wave <= self.open_wave;
        if open {
            self.schedule(i);
        }
        self.effects.push(format!(
            "{id} joined: wave {wave}{}",
            if open { ", scheduled" } else { "" }
        ));
        let _ = now;
        Ok(())
    }

    fn leave(&mut self, device_id: &Name, _now: u64) -> Result<(), RolloutError> {
        let Some(&i) = self.index.get(device_id) else {
            return Err(RolloutError::NotFound(format!(
                "device {device_id} is not in the rollout"
            )));
        };
        let st = self.slots[i as usize].state;
        if st == DeviceState::Removed {
            return Ok(());
        }
        if st.in_flight() {
            self.commands.push_back(RolloutCommand::Cancel {
                device_id: device_id.clone(),
                forced: false,
            });
        }
        self.slots[i as usize].timer = 0;
        self.set(i, DeviceState::Removed);
        self.effects
            .push(format!("{device_id} left the target: removed"));
        Ok(())
    }

    // --- Outputs. ---------------------------------------------------------------------------

    /// The next command for a device.
    pub fn poll_command(&mut self) -> Option<RolloutCommand> {
        self.commands.pop_front()
    }

    /// The next event for the message bus.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next audit record to append to the trail.
    pub fn poll_audit(&mut self) -> Option<AuditRecord> {
        self.audit.pop_front()
    }

    /// When to call `handle_tick` next (Unix ms): the next timer, soak end, or paced send.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next: Option<u64> = self.timers.peek().map(|Reverse((t, _))| *t);
        let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if self.state == RolloutState::Active {
            let k = self.open_wave;
            if let (Some(done), Some(w)) = (self.waves[k].completed_at, self.waves_spec.get(k + 1))
            {
                consider(done.saturating_add(w.min_soak_ms));
            }
        }
        if matches!(self.state, RolloutState::Active | RolloutState::RollingBack)
            && !self.ready.is_empty()
        {
            if let Some(t) = self.sends.front() {
                consider(t + 60_000);
            }
            if let Some(s) = self.spec.window.start_at {
                consider(s);
            }
            if !self.spec.window.maintenance.is_empty() {
                // Check again each minute until a maintenance window opens.
                consider(self.sends.back().copied().unwrap_or(self.started_at) + 60_000);
            }
        }
        next
    }

    /// The rollout's id.
    pub fn id(&self) -> &Name {
        &self.id
    }

    /// Its state.
    pub fn state(&self) -> RolloutState {
        self.state
    }

    /// A device's state.
    pub fn device_state(&self, device_id: &str) -> Option<DeviceState> {
        self.index
            .get(device_id)
            .map(|i| self.slots[*i as usize].state)
    }

    /// A device's wave.
    pub fn device_wave(&self, device_id: &str) -> Option<usize> {
        self.index
            .get(device_id)
            .map(|i| usize::from(self.slots[*i as usize].wave))
    }

    /// The devices and their states, in creation order.
    pub fn devices(&self) -> impl Iterator<Item = (&Name, DeviceState)> {
        self.ids.iter().zip(self.slots.iter().map(|s| s.state))
    }

    /// How many commands are out.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The tip of the audit chain.
    pub fn audit_chain(&self) -> Chain {
        self.chain
    }

    /// Where the rollout stands.
    pub fn status(&self) -> RolloutStatus {
        let scheduled_count = self.waves[..=self.open_wave]
            .iter()
            .map(|w| w.devices)
            .sum();
        RolloutStatus {
            rollout_id: self.id.clone(),
            tenant: self.tenant.clone(),
            status: self.state,
            package_id: self.package.id().clone(),
            canary_percent: self.spec.canary_percent,
            eligible: self.eligible(),
            scheduled_count,
            devices: DeviceState::ALL
                .iter()
                .zip(self.state_counts)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (*s, n))
                .collect(),
            waves: self.waves.clone(),
            halt_reason: self.halt_reason.clone(),
            incompatible_reasons: self.incompatible_reasons.clone(),
            cumulative: self.cumulative,
            cumulative_acknowledged: self.cumulative_ack,
            fleet_impact: self.fleet_impact,
        }
    }

    /// An estimate of the memory the device table takes, per device, in bytes.
    pub fn bytes_per_device(&self) -> f64 {
        if self.ids.is_empty() {
            return 0.0;
        }
        let ids: usize = self
            .ids
            .iter()
            .map(|n| std::mem::size_of::<Name>() + n.as_str().len())
            .sum();
        let slots = self.slots.len() * std::mem::size_of::<Slot>();
        // A hash map entry: the key, the value and about one control byte per bucket, at 7/8 load.
        let index = self.index.len() * (std::mem::size_of::<Name>() + 4 + 1) * 8 / 7
            + self.ids.iter().map(|n| n.as_str().len()).sum::<usize>();
        let members: usize = self.members.iter().map(|m| m.len() * 4).sum();
        (ids + slots + index + members) as f64 / self.ids.len() as f64
    }
}

fn reason_index(r: Reason) -> u8 {
    Reason::ALL
        .iter()
        .position(|x| *x == r)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(NO_REASON)
}

/// The first reason the package does not fit, without building a report when it fits.
fn first_reason(pkg: &crate::package::Package, d: &DeviceProfile) -> Option<Reason> {
    if compat::fits(pkg, d) {
        None
    } else {
        compat::check(pkg, d).rejections.first().map(|r| r.reason)
    }
}

/// Whether the halt rule trips for `failures` among `terminal` devices; why, if it does.
pub fn halt_trips(spec: &RolloutSpec, terminal: u64, failures: u64) -> Option<String> {
    if terminal < spec.halt.min_terminal || terminal == 0 {
        return None;
    }
    let ratio = failures as f64 * 100.0 > spec.failure_threshold_percent * terminal as f64;
    let count = spec.halt.max_failures.is_some_and(|m| failures > m);
    (ratio || count).then(|| {
        format!(
            "{failures} of {terminal} terminal device(s) failed ({:.1}%, threshold {}%{})",
            failures as f64 * 100.0 / terminal as f64,
            spec.failure_threshold_percent,
            spec.halt
                .max_failures
                .map(|m| format!(", at most {m} failures"))
                .unwrap_or_default()
        )
    })
}
