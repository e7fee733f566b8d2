//! Persistence: the one serde type that holds a rollout ([`Snapshot`]), restoring it against
//! the packages the caller verified, and replaying an audit trail.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::devices::{DeviceTable, Index};
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
    /// The devices of each wave, in the order they are scheduled.
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
    ) -> Result<Rollout, RolloutError> {
        check_packages(&s.spec, package, rollback)?;
        let ix = Index::build(&s)?;
        Ok(Rollout {
            s,
            ix,
            package: package.clone(),
            rollback: rollback.cloned(),
            step: Step::default(),
            out: VecDeque::new(),
        })
    }

    /// Restores a snapshot with the packages the caller verified (by DSSE or TUF): their ids
    /// must be the ones the snapshot names.
    pub fn restore(
        state: Snapshot,
        package: &VerifiedPackage,
        rollback: Option<&VerifiedPackage>,
    ) -> Result<Rollout, RolloutError> {
        Rollout::assemble(state, package, rollback)
    }

    /// Rebuilds a rollout from its creation inputs and its audit trail: the trail is verified,
    /// its inputs applied in order, and every record the replay writes must equal the one in
    /// the trail — so the result is exactly the rollout that wrote it.
    pub fn replay(create: Create<'_>, trail: &[AuditRecord]) -> Result<Rollout, RolloutError> {
        audit::verify(trail)?;
        let mut r = Rollout::create(create)?;
        r.check_replay(trail, 0)?;
        for rec in trail.iter().skip(1) {
            // An input that was refused is not recorded, so none is replayed.
            let _ = r.handle(rec.input.clone(), rec.at);
            r.check_replay(trail, rec.seq)?;
            if r.s.audit.next_seq != rec.seq + 1 {
                return Err(RolloutError::ReplayMismatch { seq: rec.seq });
            }
        }
        Ok(r)
    }

    /// Drains the outputs; every record must be the trail's.
    fn check_replay(&mut self, trail: &[AuditRecord], seq: u64) -> Result<(), RolloutError> {
        while let Some(o) = self.poll() {
            if let Output::Audit(mine) = o {
                match usize::try_from(mine.seq).ok().and_then(|i| trail.get(i)) {
                    Some(theirs) if *theirs == mine => {}
                    _ => {
                        return Err(RolloutError::ReplayMismatch {
                            seq: mine.seq.min(seq),
                        });
                    }
                }
            }
        }
        Ok(())
    }
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
