//! The rollout engine: a sans-IO state machine a fleet service embeds and persists.
//!
//! **Creation** ([`Rollout::create`]) takes a [`VerifiedPackage`], a [`RolloutSpec`] and the
//! fleet's device profiles. It runs the compatibility engine: incompatible devices and devices
//! already on the version get the terminal states `incompatible` / `already_installed` (with
//! the reason) and are left out of every denominator. The eligible devices are ordered by a
//! fixed hash of (salt, device id) — their bucket, `mod 10 000` — and wave k takes the first
//! `ceil(percent_k × eligible)` of them, so cohorts are reproducible, nested (the 10 % cohort
//! contains the 5 % cohort) and exact (240 devices at 5 % schedule 12, as the OTA API says). With
//! `stratify`, each hardware profile is cut the same way, so every wave samples every kind of
//! device. The canary opens at once.
//!
//! **The drive loop** (the same in every state machine of this crate). Make the rollout with
//! [`Rollout::create`] (or [`Rollout::restore`] after a restart, with the last snapshot).
//! Then, forever:
//!
//! 1. feed one [`Input`] to [`Rollout::handle`] with the current time: a device's report (or
//!    a burst of them as one [`Input::Reports`]: one step, one audit record), an operator
//!    command, a device joining or leaving, or [`Input::Tick`];
//! 2. drain [`Rollout::poll`] until it returns `None`, carrying out each [`Output`] in order:
//!    an [`Output::Audit`] record (append it to the rollout's trail), then the
//!    [`Output::Command`]s it caused (send the update or the rollback to a device as a
//!    persistent command; cancel one) and the [`Output::Event`]s (the OTA API's
//!    `profile.ota.rollout.<kind>.<tenant>.<rollout_id>`). A step's record always comes
//!    before what it caused, so a host that persists what it polls, in order, never acts
//!    before it has recorded;
//! 3. wait for the next input, but no later than [`Rollout::poll_timeout`] (the earliest
//!    instant to feed [`Input::Tick`]; an instant already past means now; `None` when the
//!    rollout waits only on input).
//!
//! Persist [`Rollout::snapshot`] (one serde type, everything the rollout holds) whenever it
//! suits, after draining; [`Rollout::restore`] takes it back with the packages the caller
//! verified, by either route (DSSE or TUF). [`Rollout::replay`] rebuilds a rollout from its
//! trail. The trail's last record — the head, in [`RolloutStatus::audit_head`] and in the
//! snapshot — anchors the trail ([`crate::audit::verify_with_head`]).
//!
//! **Rollout states**, after the OTA API's diagram:
//!
//! | from | input | to |
//! |---|---|---|
//! | (new) | create | `active` (the canary opens) |
//! | `active` | operator pause | `paused` |
//! | `paused` | operator pause | `paused` (no-op, not an error) |
//! | `active` | halt rule tripped, action `pause` | `paused` (alert event) |
//! | `active` | halt rule tripped, action `abort` | `aborted` |
//! | `active`, `paused` | operator rollback, or halt action `rollback` | `rolling_back` |
//! | `paused` | operator resume (acknowledges the failures seen when it paused, those that tripped it among them; those reported while paused are judged, and may halt it again) | `active` |
//! | `active`, `paused`, `rolling_back` | operator abort | `aborted` |
//! | `active` | every wave opened and every device terminal | `completed` |
//! | `rolling_back` | every rollback device terminal | `completed` |
//!
//! **Events** ([`Event`]), one per transition: `started`, `wave_opened`, `gate_waiting` (a
//! wave waits for an approval or a verdict), `gate_blocked` (its success gate is not met),
//! `approved`, `verdict`, `halted` (the rule tripped, with its reason), `paused`, `resumed`,
//! `aborted`, `rolling_back`, `rolled_back` and `completed`.
//!
//! **Device states**: `pending` → `scheduled` → `sent` (a persistent command reaches an
//! offline device when it reconnects) → `in_progress` → `succeeded` | `failed` | `timed_out`
//! | `rejected`; also `incompatible`, `already_installed`, `cancelled`, `removed`, and for a
//! rollback `rollback_scheduled` → `rollback_sent` → `rolled_back` | `rollback_failed`.
//!
//! **What each operator command does to each device state** (the whole cross product is
//! tested, in `tests/tests/rollout.rs`). The in-flight policy: `finish` lets a device finish;
//! `soft_cancel` stops a device that has not started installing (`sent`, or `rollback_sent`
//! before the device said it started); `forced_cancel` stops every device in flight.
//!
//! | device state | pause | resume (of a paused rollout) | abort | rollback |
//! |---|---|---|---|---|
//! | `pending` | held | unchanged (sent when its wave opens) | `cancelled` | `cancelled` (`all` scope: `rollback_scheduled`) |
//! | `scheduled` | held (not sent) | sent in turn | `cancelled` | `cancelled` (`all` scope: `rollback_scheduled`) |
//! | `sent` | finishes; cancelled and held (`scheduled`) by either cancel policy | a held device is sent again | finishes, or `cancelled` by either cancel policy | finishes (then rolled back if it took the update), or `cancelled` by either cancel policy |
//! | `in_progress` | finishes; cancelled and held by `forced_cancel` | a held device is sent again | finishes, or `cancelled` by `forced_cancel` | finishes, or `cancelled` by `forced_cancel` |
//! | `succeeded` | unchanged | unchanged | unchanged | `rollback_scheduled` |
//! | `failed`, `timed_out`, `rejected` | unchanged | unchanged | unchanged | `rollback_scheduled` in `cohort` and `all` scopes |
//! | `rollback_scheduled` | (rolling back: pause refused) | (refused) | `cancelled` | (refused) |
//! | `rollback_sent` | (rolling back: pause refused) | (refused) | finishes, or `cancelled` by policy | (refused) |
//! | every other (terminal) state | unchanged | unchanged | unchanged | unchanged |
//!
//! A report that arrives for a device already terminal, or for a rollout that is over, is
//! recorded in the audit trail but changes nothing — with one exception: a device that was
//! cancelled after its command went out and then reports success runs the new version, so it
//! counts as `succeeded` (and an `updated_only` rollback reaches it), unless the rollout
//! completed.
//!
//! **A report must match** the rollout (its `rollout_id`, required), the package the device
//! was last sent (a success must name that package's version) and the device's current
//! attempt ([`Rollout::attempt`]: a retry after a failure or a timeout is a new attempt; a
//! host that retries tells the device, which says it back in its report's `attempt`, and
//! feeds [`Input::device_report`], an [`Input::AttemptReport`]; a plain [`Input::Report`] is
//! about the first attempt of the device's current command, [`Rollout::first_attempt`]; a
//! success on an earlier attempt of the update is taken too when every
//! earlier attempt ended in a timeout, since the device finished it after all). A report of
//! one of the rollout's devices that does not match is refused
//! with a typed error ([`RolloutError::WrongRollout`],
//! [`RolloutError::ReportWithoutRollout`], [`RolloutError::WrongVersion`],
//! [`RolloutError::SuccessWithoutVersion`], [`RolloutError::StaleAttempt`]) and the refusal is recorded, as an
//! [`Input::RefusedReport`] that replays without error; nothing else changes. So a replayed
//! first failure cannot fail a retry, and a success on another version counts for nothing.
//!
//! **The halt rule** ([`halt_trips`]) trips when, among the devices in scope (the reporting
//! device's wave, or all waves opened), `failures × 100 > threshold × denominator` — strictly,
//! so 10 % trips at 11 % and not at 10 % — or when failures exceed `max_failures`, once at
//! least `min_terminal` devices in scope are terminal (or all of them, when the scope holds
//! fewer). The denominator is, by default, the devices scheduled in scope (the OTA API: "once
//! 11 % of canary devices report failure"); the named option `terminal` uses the devices with
//! a final outcome instead. Only final failures count (after retries), and only the outcomes
//! listed in `count_as_failure`. A pause sets aside the outcomes seen then, and resuming
//! acknowledges them: only others can trip it again, those reported while paused among them
//! (judged on resume). A device leaving its wave shrinks the denominator, so the rule is
//! checked again then. A trip while paused is a no-op.

use std::collections::VecDeque;

use crate::audit::{AuditHead, Chain};
use crate::name::Name;
use crate::plan::RolloutSpec;
use crate::profile::DeviceProfile;
use crate::report::DeviceReport;
use crate::sign::VerifiedPackage;
use crate::time::UnixMs;

mod cohort;
mod commands;
mod create;
mod devices;
mod dispatch;
mod error;
mod input;
mod judge;
mod output;
mod persist;
mod reports;
mod states;
mod status;
mod timers;
mod waves;

pub use cohort::{bucket, order_key};
pub use error::RolloutError;
pub use input::{BatchedReport, Input, ReportBatch};
pub use judge::{Judge, Verdict};
pub use output::{Effect, Event, Output, Placement, RetryKind, RolloutCommand};
pub use persist::Snapshot;
pub use states::{DeviceState, RolloutState};
pub use status::{Counts, RolloutStatus, WaveStatus};
pub use waves::{HaltCounts, HaltReason, HaltScope, halt_trips};

use devices::Index;

/// The outputs a drained queue keeps room for; past that, draining it frees it.
const MAX_IDLE_OUTPUTS: usize = 256;

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
    /// When.
    pub now: UnixMs,
}

/// A rollout: its persisted state, the indexes derived from it, the packages, and the outputs
/// waiting to be polled. See the [module docs](self) for the drive loop.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Everything persisted.
    s: Snapshot,
    /// Rebuilt from `s` by [`Index::build`].
    ix: Index,
    package: VerifiedPackage,
    rollback: Option<VerifiedPackage>,
    /// What the input being handled has done so far.
    step: Step,
    out: VecDeque<Output>,
    /// The time of the last step taken (zero after a restore, until the next): while the
    /// plan's window is closed, the next tick is due when it opens after this.
    seen: UnixMs,
}

/// The scratch of one input: its effects and the outputs that follow its record.
#[derive(Debug, Clone, Default)]
struct Step {
    effects: Vec<output::Effect>,
    pending: Vec<Output>,
    /// Whether the input changed anything (a tick that did is recorded even when it has
    /// nothing to say, so a replay passes through the same states).
    touched: bool,
    sent: u64,
}

impl Rollout {
    /// Handles one input; then drain [`Rollout::poll`]. An input that does not fit changes
    /// nothing, is not recorded, and says why — except a report of one of the rollout's
    /// devices that does not match the rollout, the package or the attempt: it changes
    /// nothing either, but its refusal is recorded ([`RolloutError::is_recorded`]) as an
    /// [`Input::RefusedReport`] (which replays without error), so drain [`Rollout::poll`]
    /// after such an error too (or with the next step: the order holds).
    pub fn handle(&mut self, input: Input, now: UnixMs) -> Result<(), RolloutError> {
        let input = match input {
            Input::Reports(batch) => return self.handle_reports(batch, now).map(drop),
            input => input,
        };
        let always = !matches!(input, Input::Tick);
        if let Err(e) = self.apply(&input, now) {
            self.step = Step::default();
            if let Some((report, attempt)) = self.refused_report(&input, &e) {
                self.refused(&report.device_id, &e);
                self.record(now, Input::RefusedReport { report, attempt }, true);
            }
            return Err(e);
        }
        self.settle(now);
        self.record(now, input, always);
        Ok(())
    }

    /// Handles a burst of reports as one [`Input::Reports`] step (one audit record), and says
    /// what became of each report, in the batch's order: taken (`Ok`), or refused with the
    /// error it would have had alone (its refusal is recorded in the step's record as an
    /// [`Effect::ReportRefused`]). The batch is refused whole, changing nothing, when it names
    /// another rollout or a device the rollout does not hold. Then drain [`Rollout::poll`].
    ///
    /// A host that takes reports one by one from many devices (a service answering each
    /// device's request) gathers those that arrived together into one batch: the rollout's
    /// work and its trail per report shrink several times over. Other languages feed
    /// [`Input::Reports`] and read the refusals from the record's effects.
    pub fn handle_reports(
        &mut self,
        batch: ReportBatch,
        now: UnixMs,
    ) -> Result<Vec<Result<(), RolloutError>>, RolloutError> {
        let each = match self.reports(&batch, now) {
            Ok(each) => each,
            Err(e) => {
                self.step = Step::default();
                return Err(e);
            }
        };
        self.settle(now);
        self.record(now, Input::Reports(batch), true);
        Ok(each)
    }

    /// The next output, in order: a step's audit record, then the commands and events it
    /// caused.
    #[must_use]
    pub fn poll(&mut self) -> Option<Output> {
        let o = self.out.pop_front();
        if o.is_none() && self.out.capacity() > MAX_IDLE_OUTPUTS {
            // A burst has been drained: give its memory back.
            self.out = VecDeque::new();
        }
        o
    }

    /// The earliest instant at which to feed [`Input::Tick`]: the next device timer, the end
    /// of a soak, or the next paced send (an instant already past means now). `None` when the
    /// rollout waits only on input.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        self.next_timeout()
    }

    fn apply(&mut self, input: &Input, now: UnixMs) -> Result<(), RolloutError> {
        match input {
            Input::Create { .. } => Err(self.refuse(input)),
            Input::Tick => {
                self.fire_timers(now);
                Ok(())
            }
            Input::Report(r) => self.report(r, None, now),
            Input::AttemptReport { report, attempt } => self.report(report, Some(*attempt), now),
            Input::Reports(batch) => self.reports(batch, now).map(drop),
            Input::RefusedReport { report, attempt } => {
                match self.check_report(report, Some(*attempt)) {
                    Err(e) if e.is_recorded() => {
                        self.refused(&report.device_id, &e);
                        Ok(())
                    }
                    Err(e) => Err(e),
                    Ok(_) => Err(RolloutError::NotRefused {
                        device_id: report.device_id.clone(),
                    }),
                }
            }
            Input::Pause { .. } => self.operator_pause(input, now),
            Input::Resume { .. } => self.operator_resume(input, now),
            Input::Abort { .. } => self.operator_abort(input, now),
            Input::Rollback { .. } => self.operator_rollback(input, now),
            Input::Approve { wave, .. } => self.approve(input, *wave),
            Input::Verdict { wave, pass, .. } => self.verdict(*wave, *pass, now),
            Input::Join(p) => self.join(p),
            Input::Leave { device_id } => self.leave(device_id, now),
        }
    }

    /// The report and attempt of a refused report whose refusal is recorded.
    fn refused_report(&self, input: &Input, e: &RolloutError) -> Option<(DeviceReport, u32)> {
        let (r, attempt) = input.report()?;
        let i = self.index_of(r.device_id.as_str())?;
        e.is_recorded().then(|| {
            (
                r.clone(),
                attempt.unwrap_or_else(|| self.first_attempt_of(i)),
            )
        })
    }

    /// Adds a report's refusal to the step's effects, under the refusal's stable name.
    fn refused(&mut self, device_id: &Name, e: &RolloutError) {
        self.effect(Effect::ReportRefused {
            device_id: device_id.clone(),
            reason: e.refusal().unwrap_or("refused").into(),
        });
    }

    fn refuse(&self, input: &Input) -> RolloutError {
        RolloutError::State {
            input: input.verb(),
            state: self.s.state,
        }
    }

    /// Writes the step's record (when it did anything) and queues it before its outputs.
    fn record(&mut self, at: UnixMs, input: Input, always: bool) {
        let mut step = std::mem::take(&mut self.step);
        if step.sent > 0 {
            step.effects.push(Effect::Sent {
                commands: step.sent,
            });
        }
        if step.effects.is_empty() && step.pending.is_empty() && !always && !step.touched {
            return;
        }
        let cause = input.cause();
        let rec = self
            .s
            .audit
            .append_in(&self.s.rollout_id, at, cause, input, step.effects);
        self.out.push_back(Output::Audit(Box::new(rec)));
        self.out.extend(step.pending);
    }

    fn effect(&mut self, e: Effect) {
        // Most steps have one effect, and the record keeps the vector as long as the host
        // keeps the record: room for one (136 bytes) instead of `Vec`'s first four.
        if self.step.effects.capacity() == 0 {
            self.step.effects.reserve_exact(1);
        }
        self.step.effects.push(e);
    }

    fn event(&mut self, e: Event) {
        self.step.pending.push(Output::Event(e));
    }

    fn command(&mut self, c: RolloutCommand) {
        self.step.pending.push(Output::Command(c));
    }

    // --- What a host reads. ---------------------------------------------------------------

    /// The rollout's id.
    pub fn id(&self) -> &Name {
        &self.s.rollout_id
    }

    /// Its tenant.
    pub fn tenant(&self) -> &Name {
        &self.s.tenant
    }

    /// The OTA API's subject of an event of this rollout.
    pub fn subject(&self, event: &Event) -> String {
        event.subject(&self.s.tenant, &self.s.rollout_id)
    }

    /// Its state.
    pub fn state(&self) -> RolloutState {
        self.s.state
    }

    /// Why it halted, if it did (the status's `halt_reason`).
    pub fn halt_reason(&self) -> Option<&HaltReason> {
        self.s.halt.as_ref()
    }

    /// The package it ships.
    pub fn package(&self) -> &VerifiedPackage {
        &self.package
    }

    /// The package it rolls back to.
    pub fn rollback_package(&self) -> Option<&VerifiedPackage> {
        self.rollback.as_ref()
    }

    /// The position of a device in the table.
    fn index_of(&self, device_id: &str) -> Option<u32> {
        self.ix.by_id.get(&self.s.devices.ids, device_id)
    }

    /// A device's state.
    pub fn device_state(&self, device_id: &str) -> Option<DeviceState> {
        self.index_of(device_id).map(|i| self.slot(i).state)
    }

    /// A device's wave.
    pub fn device_wave(&self, device_id: &str) -> Option<usize> {
        self.index_of(device_id)
            .map(|i| usize::from(self.slot(i).wave))
    }

    /// The devices and their states, in creation order.
    pub fn devices(&self) -> impl Iterator<Item = (&str, DeviceState)> {
        self.s.devices.iter()
    }

    /// The attempt of the device's current command (1 is the first; each retry after a
    /// failure or a timeout adds one; a rollback command is one more than the update's last,
    /// so a late report of the update is not taken for the rollback's). A host that retries
    /// or rolls back tells the device, which says it back: [`Input::AttemptReport`].
    pub fn attempt(&self, device_id: &str) -> Option<u32> {
        self.index_of(device_id).map(|i| self.current_attempt(i))
    }

    /// The first attempt of the device's current command: what a report that names no
    /// attempt ([`Input::Report`]) is about. 1 for the update; for a rollback, the rollback's
    /// attempt ([`Rollout::attempt`]), so a host that never tells devices their attempt
    /// still has its rollback reports taken.
    pub fn first_attempt(&self, device_id: &str) -> Option<u32> {
        self.index_of(device_id).map(|i| self.first_attempt_of(i))
    }

    /// How many commands are out.
    pub fn in_flight(&self) -> u64 {
        self.ix.in_flight
    }

    /// The tip of the audit chain: where the next record goes.
    pub fn audit_chain(&self) -> Chain {
        self.s.audit
    }

    /// The last record of the audit trail (there is always one: the creation's).
    pub fn audit_head(&self) -> AuditHead {
        self.s.audit_head()
    }

    /// The whole persisted state. Drain [`Rollout::poll`] first: pending outputs are not
    /// part of it.
    pub fn snapshot(&self) -> &Snapshot {
        &self.s
    }

    /// Whether two rollouts are in the same state (what a snapshot holds).
    pub fn same_state(&self, other: &Rollout) -> bool {
        self.s == other.s
    }

    /// Where the rollout stands.
    pub fn status(&self) -> RolloutStatus {
        let waves: Vec<WaveStatus> = (0..self.s.waves.len())
            .map(|k| self.wave_status(k))
            .collect();
        RolloutStatus {
            rollout_id: self.s.rollout_id.clone(),
            tenant: self.s.tenant.clone(),
            status: self.s.state,
            package_id: self.package.id().clone(),
            canary_percent: self.s.spec.canary_percent,
            eligible: self.eligible(),
            scheduled_count: waves[..=self.s.open_wave].iter().map(|w| w.devices).sum(),
            devices: DeviceState::ALL
                .iter()
                .zip(self.ix.counts)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (*s, n))
                .collect(),
            waves,
            halt_reason: self.s.halt.as_ref().map(ToString::to_string),
            incompatible_reasons: self.s.devices.incompatible_reasons(),
            cumulative: self.s.cumulative,
            cumulative_acknowledged: self.s.cumulative_acknowledged,
            fleet_impact: self.s.fleet_impact,
            audit_head: self.audit_head(),
        }
    }

    fn wave_status(&self, k: usize) -> WaveStatus {
        let spec = &self.ix.waves_spec[k];
        let w = &self.s.waves[k];
        WaveStatus {
            index: k,
            percent: spec.percent,
            gate: spec.gate,
            devices: self.ix.wave_devices(k),
            remaining: self.ix.remaining(k),
            opened_at: w.opened_at,
            completed_at: w.completed_at,
            counts: w.counts,
            acknowledged: w.acknowledged,
            approved: w.approved,
            verdict: w.verdict,
        }
    }
}
