//! Persistence: snapshot and restore, and replay of the audit trail.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::*;

/// The persisted form of a rollout: everything but the timer heap (rebuilt from the device
/// deadlines) and the packages (kept as their envelopes, verified again on restore).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    id: Name,
    tenant: Name,
    spec: RolloutSpec,
    package_envelope: String,
    rollback_envelope: Option<String>,
    state: RolloutState,
    started_at: u64,
    ids: Vec<Name>,
    slots: Vec<Slot>,
    bounds: Vec<u64>,
    members: Vec<Vec<u32>>,
    waves: Vec<WaveStatus>,
    cumulative: Counts,
    cumulative_ack: Counts,
    announced: Vec<bool>,
    halt_reason: Option<String>,
    incompatible_reasons: BTreeMap<Reason, u64>,
    fleet_impact: u64,
    open_wave: usize,
    ready: Vec<u32>,
    sends: Vec<u64>,
    chain: Chain,
}

impl Rollout {
    /// The whole state as JSON, for persisting in any database. Pending commands, events and
    /// audit records are not part of it: drain them before snapshotting.
    pub fn snapshot(&self) -> String {
        let s = Snapshot {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            spec: self.spec.clone(),
            package_envelope: self.package.envelope_json().unwrap_or_default(),
            rollback_envelope: self
                .rollback
                .as_ref()
                .and_then(VerifiedPackage::envelope_json),
            state: self.state,
            started_at: self.started_at,
            ids: self.ids.clone(),
            slots: self.slots.clone(),
            bounds: self.bounds.clone(),
            members: self.members.clone(),
            waves: self.waves.clone(),
            cumulative: self.cumulative,
            cumulative_ack: self.cumulative_ack,
            announced: self.announced.clone(),
            halt_reason: self.halt_reason.clone(),
            incompatible_reasons: self.incompatible_reasons.clone(),
            fleet_impact: self.fleet_impact,
            open_wave: self.open_wave,
            ready: self.ready.iter().copied().collect(),
            sends: self.sends.iter().copied().collect(),
            chain: self.chain,
        };
        crate::json::to_string(&s)
    }

    /// Restores a snapshot; the packages' signatures are verified again against `trusted`.
    pub fn restore(
        snapshot: &[u8],
        trusted: &TrustedKeys,
        threshold: usize,
    ) -> Result<Rollout, RolloutError> {
        let s: Snapshot =
            serde_json::from_slice(snapshot).map_err(|e| RolloutError::Restore(e.to_string()))?;
        let limits = crate::limits::Limits::DEFAULT;
        let verify = |env: &str| {
            sign::verify(env.as_bytes(), trusted, threshold, &limits)
                .map_err(|e| RolloutError::Restore(e.to_string()))
        };
        let package = verify(&s.package_envelope)?;
        let rollback = s.rollback_envelope.as_deref().map(verify).transpose()?;
        if s.ids.len() != s.slots.len()
            || s.waves.len() != s.members.len()
            || s.open_wave >= s.waves.len().max(1)
        {
            return Err(RolloutError::Restore(
                "inconsistent device or wave tables".into(),
            ));
        }
        let mut state_counts = [0u64; 16];
        let mut in_flight = 0;
        let mut timers = BinaryHeap::new();
        let mut index = HashMap::with_capacity(s.ids.len());
        for (i, (id, slot)) in s.ids.iter().zip(&s.slots).enumerate() {
            state_counts[slot.state as usize] += 1;
            if slot.state.in_flight() {
                in_flight += 1;
            }
            let i =
                u32::try_from(i).map_err(|_| RolloutError::Restore("too many devices".into()))?;
            if slot.timer > 0 {
                timers.push(Reverse((slot.timer, i)));
            }
            index.insert(id.clone(), i);
        }
        let waves_spec = s.spec.all_waves();
        if waves_spec.len() != s.waves.len() {
            return Err(RolloutError::Restore(
                "the waves do not match the plan".into(),
            ));
        }
        Ok(Rollout {
            id: s.id,
            tenant: s.tenant,
            spec: s.spec,
            waves_spec,
            package,
            rollback,
            state: s.state,
            started_at: s.started_at,
            ids: s.ids,
            index,
            slots: s.slots,
            bounds: s.bounds,
            members: s.members,
            waves: s.waves,
            cumulative: s.cumulative,
            cumulative_ack: s.cumulative_ack,
            state_counts,
            in_flight,
            open_wave: s.open_wave,
            announced: s.announced,
            halt_reason: s.halt_reason,
            incompatible_reasons: s.incompatible_reasons,
            fleet_impact: s.fleet_impact,
            ready: s.ready.into(),
            sends: s.sends.into(),
            timers,
            chain: s.chain,
            effects: Vec::new(),
            touched: false,
            sent_now: 0,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            audit: VecDeque::new(),
        })
    }

    /// Rebuilds a rollout from its creation inputs and its audit trail: the trail is verified,
    /// its inputs applied in order, and every record the replay writes must equal the one in
    /// the trail — so the result is exactly the rollout that wrote it.
    pub fn replay(create: Create<'_>, trail: &[AuditRecord]) -> Result<Rollout, RolloutError> {
        crate::audit::verify(trail).map_err(|e| RolloutError::Restore(e.to_string()))?;
        let mut r = Rollout::create(create)?;
        let check = |r: &mut Rollout, seq: u64| -> Result<(), RolloutError> {
            while let Some(mine) = r.poll_audit() {
                match trail.get(mine.seq as usize) {
                    Some(theirs) if *theirs == mine => {}
                    _ => {
                        return Err(RolloutError::ReplayMismatch {
                            seq: mine.seq.min(seq),
                        });
                    }
                }
            }
            Ok(())
        };
        check(&mut r, 0)?;
        for rec in trail.iter().skip(1) {
            let input: Input = serde_json::from_value(rec.input.clone())
                .map_err(|e| RolloutError::Restore(format!("audit record {}: {e}", rec.seq)))?;
            // The result of an input that was refused is not recorded, so none is replayed.
            let _ = r.apply(input, rec.cause.clone(), rec.at);
            r.commands.clear();
            r.events.clear();
            check(&mut r, rec.seq)?;
            if r.chain.next_seq != rec.seq + 1 {
                return Err(RolloutError::ReplayMismatch { seq: rec.seq });
            }
        }
        Ok(r)
    }

    /// Whether two rollouts are in the same state (what a snapshot holds).
    pub fn same_state(&self, other: &Rollout) -> bool {
        self.snapshot() == other.snapshot()
    }
}
