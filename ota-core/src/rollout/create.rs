//! Creation: the compatibility engine over the fleet, the cohorts cut by bucket order, and the
//! canary opened.

use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest as _, Sha256};

use super::cohort::share;
use super::devices::{ById, DeviceTable, Slot, reason_byte};
use super::judge::{Judge, Verdict};
use super::persist::{Snapshot, WaveProgress, check_packages};
use super::{Create, DeviceState, Effect, Event, Input, Rollout, RolloutError, RolloutState};
use crate::audit::Chain;
use crate::digest::Sha256Digest;
use crate::json::Validate as _;
use crate::name::Name;
use crate::plan::MAX_WAVES;
use crate::sign::VerifiedPackage;
use crate::time::UnixMs;

impl Rollout {
    /// Creates a rollout: checks the request against the packages, runs the compatibility
    /// engine over the fleet, cuts the cohorts, and opens the canary. The creation's record,
    /// the canary's commands and the `started` event wait in [`Rollout::poll`].
    ///
    /// The compatibility pass runs on the calling thread; a host with cores to spare runs it
    /// on several ([`Judge`], [`Rollout::create_judged`]; `ota_host::rollout::create`).
    pub fn create(c: Create<'_>) -> Result<Rollout, RolloutError> {
        let verdicts = Judge::new(&c)?.verdicts(0..c.fleet.len());
        Rollout::create_judged(c, verdicts)
    }

    /// [`Rollout::create`], given the verdicts on `c`'s fleet ([`Judge::verdicts`] over the
    /// whole fleet, in order, perhaps in parts on several threads). The same request and
    /// verdicts make the same rollout as [`Rollout::create`]. The verdicts are trusted: they
    /// must be a [`Judge`] of this very request's, in the fleet's order (a replay of the trail
    /// would show others up). Verdicts of another length than the fleet are refused
    /// ([`RolloutError::VerdictsMismatch`]).
    pub fn create_judged(c: Create<'_>, verdicts: Vec<Verdict>) -> Result<Rollout, RolloutError> {
        check_request(&c)?;
        if verdicts.len() != c.fleet.len() {
            return Err(RolloutError::VerdictsMismatch {
                verdicts: verdicts.len() as u64,
                devices: c.fleet.len() as u64,
            });
        }
        let spec = c.spec;
        let waves_spec = spec.all_waves();
        let pkg = c.package.package();
        let k = waves_spec.len();

        // Who is in the target, and who is eligible; strata by hardware profile.
        let mut devices = DeviceTable::with_capacity(c.fleet.len(), c.fleet.len() * 16);
        let mut strata: BTreeMap<&str, Vec<(u64, u32)>> = BTreeMap::new();
        let mut misfits = 0u64;
        let mut first_misfit = None;
        for (d, verdict) in c.fleet.iter().zip(verdicts) {
            let mut slot = Slot::new(DeviceState::Pending);
            match verdict {
                Verdict::Outside => continue,
                Verdict::Incompatible(reason) => {
                    slot.state = DeviceState::Incompatible;
                    slot.reason = Some(reason);
                }
                Verdict::AlreadyInstalled => slot.state = DeviceState::AlreadyInstalled,
                Verdict::Eligible { .. } => {}
            }
            let i = devices.push(d.device_id.as_str(), slot)?;
            if let Verdict::Eligible {
                order_key,
                rollback_fits,
            } = verdict
            {
                if !rollback_fits {
                    misfits += 1;
                    first_misfit.get_or_insert_with(|| d.device_id.clone());
                }
                let key = if spec.stratify {
                    d.hardware_profile.as_str()
                } else {
                    ""
                };
                strata.entry(key).or_default().push((order_key, i));
            }
        }
        // The id index, all at once (see `ById::build`): a device named twice fails here, the
        // first one named again, in the fleet's order.
        let by_id = ById::build(&devices.ids).map_err(|i| RolloutError::DuplicateDevice {
            device_id: Name::from_table(devices.ids.get(i)),
        })?;
        if let Some(first) = first_misfit {
            return Err(RolloutError::RollbackDoesNotFit {
                devices: misfits,
                first,
            });
        }

        // Cut each stratum into the waves by bucket order.
        let mut members = vec![Vec::new(); k];
        let mut bounds = vec![0u64; k];
        for stratum in strata.values_mut() {
            stratum.sort_unstable();
            let n = stratum.len() as u64;
            let mut taken = 0u64;
            for (w, wave) in waves_spec.iter().enumerate() {
                let mut upto = share(n, wave.percent).max(taken);
                if let Some(cap) = wave.max_devices {
                    upto = upto.min(taken.saturating_add(cap));
                }
                if w + 1 == k {
                    upto = n;
                }
                for &(key, i) in &stratum[taken as usize..upto as usize] {
                    // MAX_WAVES keeps every wave index within a byte.
                    devices.slots[i as usize].wave = w as u8;
                    members[w].push(i);
                    bounds[w] = bounds[w].max(key);
                }
                taken = upto;
            }
        }
        for w in 1..k {
            bounds[w] = bounds[w].max(bounds[w - 1]);
        }
        let table = device_table_digest(&devices);
        let count = devices.len() as u64;

        let s = Snapshot {
            rollout_id: c.rollout_id,
            tenant: c.tenant,
            spec,
            state: RolloutState::Active,
            started_at: c.now,
            devices,
            bounds,
            members,
            waves: vec![WaveProgress::default(); k],
            open_wave: 0,
            cumulative: Default::default(),
            cumulative_acknowledged: Default::default(),
            halt: None,
            fleet_impact: 0,
            ready: VecDeque::new(),
            sends: VecDeque::new(),
            audit: Chain::default(),
        };
        let mut r = Rollout::assemble(s, c.package, c.rollback, Some(by_id))?;

        r.effect(Effect::Published {
            package_id: c.package.id().clone(),
            package_type: pkg.kind,
            name: pkg.name.clone(),
            version: pkg.version.clone(),
            sha256: pkg.sha256,
            signed_by: c
                .package
                .signed_by()
                .iter()
                .map(ToString::to_string)
                .collect(),
        });
        r.effect(Effect::Created {
            eligible: r.eligible(),
            incompatible: r.ix.counts[DeviceState::Incompatible as usize],
            already_installed: r.ix.counts[DeviceState::AlreadyInstalled as usize],
        });
        r.event(Event::Started {
            package_id: c.package.id().clone(),
            eligible: r.eligible(),
        });
        r.open(0, c.now);
        r.settle(c.now);
        let input = Input::Create {
            rollout_id: r.s.rollout_id.clone(),
            tenant: r.s.tenant.clone(),
            package_id: c.package.id().clone(),
            rollback_package_id: c.rollback.map(|p| p.id().clone()),
            spec: Box::new(r.s.spec.clone()),
            devices: count,
            device_table: table,
            by: c.by,
        };
        r.record(c.now, input, true);
        Ok(r)
    }
}

/// What is checked of a request before its fleet is judged: the packages, the rollback's
/// binding, the target, the waves.
pub(super) fn check_request(c: &Create<'_>) -> Result<(), RolloutError> {
    // A spec parsed from JSON was checked then; one built in code is checked here (a
    // `per_minute` of 0 would otherwise stop every send, or worse).
    if let Some(fault) = c.spec.faults().into_iter().next() {
        return Err(RolloutError::PlanFault { fault });
    }
    check_packages(&c.spec, c.package, c.rollback)?;
    check_rollback_binding(c.package, c.rollback, c.now)?;
    c.spec.resolved_target().ok_or(RolloutError::NoTarget)?;
    let waves = c.spec.all_waves().len();
    if waves > MAX_WAVES {
        return Err(RolloutError::TooManyWaves {
            waves,
            max: MAX_WAVES,
        });
    }
    Ok(())
}

/// A digest of the device table as created: ids, states, waves and reasons.
fn device_table_digest(t: &DeviceTable) -> Sha256Digest {
    let mut h = Sha256::new();
    for (id, s) in t.ids.iter().zip(&t.slots) {
        h.update(id.as_bytes());
        h.update([0, s.state as u8, s.wave, reason_byte(s.reason)]);
    }
    Sha256Digest::from_bytes(h.finalize().into())
}

/// A rollback package that takes the package's software back to an older version must be
/// signed as a rollback of the package's version, and not expired at creation: a device admits
/// a downgrade only then, so any other would fail on every device it is sent to. A rollback
/// package of other software, or of a version not below the package's, is not a downgrade of
/// it and is not checked.
fn check_rollback_binding(
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
    now: UnixMs,
) -> Result<(), RolloutError> {
    let Some(rb) = rollback else {
        return Ok(());
    };
    let (p, r) = (package.package(), rb.package());
    if r.name != p.name || r.version >= p.version {
        return Ok(());
    }
    let found = match &r.rollback {
        Some(b) if b.from == p.version && !b.expired(now) => return Ok(()),
        Some(b) if b.from == p.version => format!("its rollback expired at {}", b.expires),
        Some(b) => format!("it is signed as a rollback of {}", b.from),
        None => "it is not signed as a rollback at all".to_string(),
    };
    Err(RolloutError::RollbackNotBound {
        name: p.name.clone(),
        rollback: r.version.clone(),
        package: p.version.clone(),
        found: found.into(),
    })
}
