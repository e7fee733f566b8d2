//! Persistence: the one serde type that holds a rollout ([`Snapshot`]), restoring it against
//! the packages the caller verified, and replaying an audit trail.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::devices::{ById, DeviceTable, Index};
use super::waves::HaltReason;
use super::{Counts, Create, Output, Rollout, RolloutError, RolloutState, Step};
use crate::audit::{self, AuditHead, AuditRecord, Chain};
use crate::json::{self, ParseError};
use crate::limits::Limits;
use crate::name::Name;
use crate::plan::RolloutSpec;
use crate::sign::{PackageId, VerifiedPackage};
use crate::time::UnixMs;

/// Everything a rollout holds, as one serde type: persist it in any database, take it back
/// with [`Rollout::restore`]. The indexes (by device id, counts, timers) are not in it: they
/// are rebuilt from it. Neither are the packages: the caller verifies them, by either route,
/// and restore checks their ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub(super) rollout_id: Name,
    pub(super) tenant: Name,
    pub(super) spec: RolloutSpec,
    pub(super) state: RolloutState,
    pub(super) started_at: UnixMs,
    pub(super) devices: DeviceTable,
    /// The highest order key of each wave (for placing devices that join).
    pub(super) bounds: Vec<u64>,
    /// The devices of each wave not yet opened, in the order they will be scheduled (a
    /// wave's list is dropped when it opens: its devices are in `ready` or under way).
    pub(super) members: Vec<Vec<u32>>,
    pub(super) waves: Vec<WaveProgress>,
    pub(super) open_wave: usize,
    pub(super) cumulative: Counts,
    pub(super) cumulative_acknowledged: Counts,
    /// Why the halt rule last tripped.
    pub(super) halt: Option<HaltReason>,
    pub(super) fleet_impact: u64,
    /// Devices waiting to be sent, in order.
    pub(super) ready: VecDeque<u32>,
    /// The sends of the last minute (pacing).
    pub(super) sends: VecDeque<UnixMs>,
    /// The audit trail's head.
    pub(super) audit: Chain,
}

/// A wave's persisted progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WaveProgress {
    pub opened_at: Option<UnixMs>,
    pub completed_at: Option<UnixMs>,
    pub counts: Counts,
    pub acknowledged: Counts,
    pub approved: bool,
    pub verdict: Option<bool>,
    /// Its gate's hold or wait was announced.
    pub announced: bool,
    /// A failing external verdict on it came while the rollout was paused: it is judged on
    /// resume. (Left out of snapshots while false, so they read and write as before.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_while_paused: bool,
}

impl Snapshot {
    /// The rollout's id.
    pub fn rollout_id(&self) -> &Name {
        &self.rollout_id
    }

    /// The package the snapshot's rollout ships: pass it, verified, to [`Rollout::restore`].
    pub fn package_id(&self) -> &PackageId {
        &self.spec.package_id
    }

    /// The rollback package, if any.
    pub fn rollback_package_id(&self) -> Option<&PackageId> {
        self.spec.rollback_package_id.as_ref()
    }

    /// The last record of the rollout's audit trail.
    pub fn audit_head(&self) -> AuditHead {
        self.audit.head().unwrap_or(AuditHead {
            seq: 0,
            hash: self.audit.tip,
        })
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// Parses a snapshot; a fleet-sized document, bounded by `limits.max_fleet_bytes`.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Snapshot, ParseError> {
        json::from_slice("rollout snapshot", bytes, limits.max_fleet_bytes)
    }
}

impl Rollout {
    /// Builds a rollout around a persisted state: the one way create, restore and replay get
    /// their indexes.
    pub(super) fn assemble(
        s: Snapshot,
        package: &VerifiedPackage,
        rollback: Option<&VerifiedPackage>,
        by_id: Option<ById>,
    ) -> Result<Rollout, RolloutError> {
        check_packages(&s.spec, package, rollback)?;
        let ix = Index::build(&s, by_id)?;
        Ok(Rollout {
            s,
            ix,
            package: package.clone(),
            rollback: rollback.cloned(),
            step: Step::default(),
            out: VecDeque::new(),
            seen: UnixMs::ZERO,
        })
    }

    /// Restores a snapshot with the packages the caller verified (by DSSE or TUF): their ids
    /// must be the ones the snapshot names, and its parts must agree (the plan keeps its
    /// rules; the waves, their bounds and members, the ready queue and the counts are
    /// consistent; the audit chain has its creation record): a snapshot that does not is
    /// refused with [`RolloutError::SnapshotInvalid`], so no state can panic later.
    pub fn restore(
        state: Snapshot,
        package: &VerifiedPackage,
        rollback: Option<&VerifiedPackage>,
    ) -> Result<Rollout, RolloutError> {
        check_packages(&state.spec, package, rollback)?;
        check(&state)?;
        Rollout::assemble(state, package, rollback, None)
    }

    /// Rebuilds a rollout from its creation inputs and its audit trail: the trail is verified,
    /// its inputs applied in order, and every record the replay writes must equal the one in
    /// the trail — so the result is exactly the rollout that wrote it.
    pub fn replay(create: Create<'_>, trail: &[AuditRecord]) -> Result<Rollout, RolloutError> {
        audit::verify(trail)?;
        let mut r = Rollout::create(create)?;
        let created = r.written();
        if trail.first() != created.as_ref() {
            return Err(RolloutError::ReplayMismatch { seq: 0 });
        }
        for rec in trail.iter().skip(1) {
            r.follow(rec)?;
        }
        Ok(r)
    }

    /// Applies a stored record's input again, at its time, and checks that the record this
    /// writes is the stored one: how a host brings a restored rollout up to its trail's end
    /// (the records after its snapshot), and how [`Rollout::replay`] goes. The outputs still
    /// queued, and those the input gives, are dropped: the stored record's host acted on them.
    ///
    /// A routine report stored whole by an earlier release is taken for the report line this
    /// release writes for it, and the chain goes on from its stored hash.
    pub fn follow(&mut self, stored: &AuditRecord) -> Result<(), RolloutError> {
        let mismatch = RolloutError::ReplayMismatch { seq: stored.seq };
        while self.poll().is_some() {}
        // A refused input may still be recorded (a report that does not match is): the
        // record decides; the refusal says why, when the record differs.
        let refused = self.handle(stored.input.clone(), stored.at).err();
        match self.written() {
            Some(mine) if mine == *stored => {}
            Some(mine) if stored.is_stored_whole_form_of(&mine) => self.s.audit.tip = stored.hash,
            _ => {
                return Err(match refused {
                    Some(refusal) => RolloutError::ReplayRefused {
                        seq: stored.seq,
                        refusal: Box::new(refusal),
                    },
                    None => mismatch,
                });
            }
        }
        if self.s.audit.next_seq != stored.seq.saturating_add(1) {
            return Err(mismatch);
        }
        Ok(())
    }

    /// Drains the outputs, and gives the first audit record among them (a step writes one).
    fn written(&mut self) -> Option<AuditRecord> {
        let mut first = None;
        while let Some(o) = self.poll() {
            if let Output::Audit(a) = o
                && first.is_none()
            {
                first = Some(*a);
            }
        }
        first
    }
}

/// The invariants the engine relies on that [`Index::build`] does not check on its way (the
/// table, the waves' lengths, the open wave and the device indexes): a snapshot that breaks
/// one is refused, never used to panic later.
fn check(s: &Snapshot) -> Result<(), RolloutError> {
    let bad = |what| Err(RolloutError::SnapshotInvalid { what });
    if !json::Validate::faults(&s.spec).is_empty() {
        return bad("the plan breaks a rule of rollout plans");
    }
    let k = s.spec.all_waves().len();
    if k > crate::plan::MAX_WAVES {
        return bad("the plan has more waves than a rollout holds");
    }
    if s.bounds.len() != k || s.waves.len() != k || s.members.len() != k {
        return bad("the waves do not match the plan");
    }
    if s.bounds.windows(2).any(|b| b[0] > b[1]) {
        return bad("the waves' bounds are out of order");
    }
    if s.open_wave >= k {
        return bad("the open wave is not a wave of the plan");
    }
    for (w, p) in s.waves.iter().enumerate() {
        // The open wave itself opens only once the creation is assembled.
        let opened = p.opened_at.is_some();
        if (w < s.open_wave && !opened) || (w > s.open_wave && opened) {
            return bad("the waves opened are not the waves up to the open wave");
        }
        if p.completed_at.is_some() && p.opened_at.is_none() {
            return bad("a wave completed that never opened");
        }
    }
    let n = s.devices.slots.len();
    let mut member = vec![false; n];
    for (w, members) in s.members.iter().enumerate() {
        for &i in members {
            let Some(slot) = s.devices.slots.get(i as usize) else {
                return bad("a wave names a device that is not in the table");
            };
            if usize::from(slot.wave) != w {
                return bad("a wave names a device of another wave");
            }
            if std::mem::replace(&mut member[i as usize], true) {
                return bad("a device is a member of a wave twice");
            }
        }
    }
    // And every device of a wave not yet opened is on its list: a device that joins again is
    // listed by that alone (see `Rollout::join`).
    let unlisted = s
        .devices
        .slots
        .iter()
        .zip(&member)
        .any(|(slot, &listed)| usize::from(slot.wave) > s.open_wave && !listed);
    if unlisted {
        return bad("a device of a wave not yet opened is not on its list");
    }
    let mut total = Counts::default();
    let mut acknowledged = Counts::default();
    for p in &s.waves {
        counts_agree(&p.counts, &p.acknowledged)?;
        total = add(total, p.counts).ok_or(RolloutError::SnapshotInvalid {
            what: "the waves' counts overflow",
        })?;
        acknowledged = add(acknowledged, p.acknowledged).ok_or(RolloutError::SnapshotInvalid {
            what: "the waves' counts overflow",
        })?;
    }
    counts_agree(&s.cumulative, &s.cumulative_acknowledged)?;
    if total != s.cumulative || acknowledged != s.cumulative_acknowledged {
        return bad("the cumulative counts are not the sum of the waves'");
    }
    // Every record of a rollout follows its creation's; the count leaves room to go on.
    if s.audit.next_seq == 0 || s.audit.next_seq > MAX_SEQ {
        return bad("the audit chain's next record number is out of range");
    }
    Ok(())
}

/// The highest audit record number a restored rollout may go on from.
const MAX_SEQ: u64 = 1 << 62;

/// A scope's counts: failures and successes are among the terminal devices, and what was
/// acknowledged was counted.
fn counts_agree(c: &Counts, ack: &Counts) -> Result<(), RolloutError> {
    let within = |a: &Counts, b: &Counts| {
        a.terminal <= b.terminal && a.failures <= b.failures && a.succeeded <= b.succeeded
    };
    let parts = c.failures.checked_add(c.succeeded);
    if parts.is_none_or(|p| p > c.terminal) {
        return Err(RolloutError::SnapshotInvalid {
            what: "a scope counts more failures and successes than terminal devices",
        });
    }
    if !within(ack, c) {
        return Err(RolloutError::SnapshotInvalid {
            what: "a scope acknowledges more than it counted",
        });
    }
    Ok(())
}

fn add(a: Counts, b: Counts) -> Option<Counts> {
    Some(Counts {
        terminal: a.terminal.checked_add(b.terminal)?,
        failures: a.failures.checked_add(b.failures)?,
        succeeded: a.succeeded.checked_add(b.succeeded)?,
    })
}

/// The packages must be the ones the request names.
pub(super) fn check_packages(
    spec: &RolloutSpec,
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
) -> Result<(), RolloutError> {
    if spec.package_id != *package.id() {
        return Err(RolloutError::PackageMismatch {
            requested: spec.package_id.clone(),
            given: package.id().clone(),
        });
    }
    match (&spec.rollback_package_id, rollback) {
        (Some(id), Some(r)) if id == r.id() => Ok(()),
        (None, None) => Ok(()),
        (Some(id), Some(r)) => Err(RolloutError::RollbackMismatch {
            requested: id.clone(),
            given: r.id().clone(),
        }),
        (Some(id), None) => Err(RolloutError::RollbackMissing {
            requested: id.clone(),
        }),
        (None, Some(r)) => Err(RolloutError::RollbackNotRequested {
            given: r.id().clone(),
        }),
    }
}
