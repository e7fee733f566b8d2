//! Admitting an assignment: its proof verified by its route, its metadata checked against the
//! verified statement, then the device's rules (fit, not installed, not a downgrade, a probe
//! that may run). Nothing is written before all of it passes.

use crate::assignment::{Assignment, Proof};
use crate::compat;
use crate::name::Name;
use crate::package::Package;
use crate::probe::ProbeSpec;
use crate::report::{DeviceReport, ReportStatus};
use crate::sign::{self, Provenance, VerifiedPackage};
use crate::time::UnixMs;
use crate::version::Version;

use super::error::{AgentError, Rejection};
use super::machine::Agent;
use super::output::Output;

impl Agent {
    /// The assignment's package, verified by its route: the agent verifies a DSSE envelope
    /// itself; a TUF target needs the package the host's TUF client verified.
    pub(super) fn verify(
        &self,
        assignment: &Assignment,
        package: Option<VerifiedPackage>,
    ) -> Result<VerifiedPackage, Rejection> {
        let v = match &assignment.proof {
            Proof::Dsse(envelope) => {
                let v = sign::verify_envelope(
                    envelope.clone(),
                    &self.config.trusted,
                    self.config.threshold,
                    &self.config.limits,
                )?;
                if let Some(p) = package
                    && p.id() != v.id()
                {
                    return Err(Rejection::PackageMismatch {
                        requested: v.id().clone(),
                        given: p.id().clone(),
                    });
                }
                v
            }
            Proof::Tuf { target } => match package {
                Some(p) if matches!(p.provenance(), Provenance::Tuf { target: t, .. } if t == target) => {
                    p
                }
                _ => {
                    return Err(Rejection::Unverified {
                        target: target.clone(),
                    });
                }
            },
        };
        if &assignment.package_id != v.id() {
            return Err(Rejection::PackageMismatch {
                requested: assignment.package_id.clone(),
                given: v.id().clone(),
            });
        }
        if let Some(field) = assignment.mismatch(&v) {
            return Err(Rejection::MetadataMismatch { field });
        }
        Ok(v)
    }

    /// Whether a verified package may be installed here at `now`: it fits, it is new, it is
    /// not a downgrade (a signed rollback bound to this device's version excepted), and its
    /// probe (the signed one, else the assignment's, else the device's) may run.
    pub(super) fn admit(
        &self,
        assignment: &Assignment,
        verified: &VerifiedPackage,
        now: UnixMs,
    ) -> Result<ProbeSpec, Rejection> {
        let p = verified.package();
        let report = compat::check(p, &self.config.device);
        if !report.compatible {
            return Err(Rejection::Incompatible {
                reasons: report.rejections,
            });
        }
        if self.record.installed.get(&p.name) == Some(&p.version) {
            return Err(Rejection::AlreadyInstalled {
                name: p.name.clone(),
                version: p.version.clone(),
            });
        }
        if let Some(highest) = self.record.highest.get(&p.name)
            && p.version < *highest
        {
            self.admit_downgrade(p, highest, now)?;
        }
        // The package's probe is signed: the device's allowlist is all it must pass. The
        // assignment's is unsigned: it may only choose among what the device's policy allows
        // as is; the device's own probe may do more.
        let probe = match (&p.probe, &assignment.probe) {
            (Some(signed), _) => {
                signed.check(&self.config.exec_allowlist)?;
                signed.clone()
            }
            (None, Some(a)) if Some(a) != self.config.default_probe.as_ref() => {
                a.check_unsigned(&self.config.exec_allowlist)?;
                a.clone()
            }
            _ => {
                let d = self
                    .config
                    .default_probe
                    .clone()
                    .ok_or(Rejection::NoProbe)?;
                d.check(&self.config.exec_allowlist)?;
                d
            }
        };
        Ok(probe)
    }

    /// Whether `p`, older than `highest` (the highest version committed), may downgrade this
    /// device: only as a signed rollback that replaces the version the device runs, before
    /// it expires, and not below the version that ran before the last upgrade.
    fn admit_downgrade(
        &self,
        p: &Package,
        highest: &Version,
        now: UnixMs,
    ) -> Result<(), Rejection> {
        let Some(rollback) = &p.rollback else {
            return Err(Rejection::Downgrade {
                name: p.name.clone(),
                installed: highest.clone(),
                offered: p.version.clone(),
            });
        };
        let running = self.record.installed.get(&p.name);
        if running != Some(&rollback.from) {
            return Err(Rejection::RollbackNotFrom {
                name: p.name.clone(),
                from: rollback.from.clone(),
                running: running.map_or_else(|| "nothing".to_string(), ToString::to_string),
            });
        }
        if rollback.expired(now) {
            return Err(Rejection::RollbackExpired {
                name: p.name.clone(),
                offered: p.version.clone(),
                expires: rollback.expires.to_string(),
            });
        }
        let floor = self.record.rollback_floor.get(&p.name);
        if floor.is_none_or(|f| p.version < *f) {
            return Err(Rejection::RollbackTooFar {
                name: p.name.clone(),
                floor: floor.map_or_else(|| "none".to_string(), ToString::to_string),
                offered: p.version.clone(),
            });
        }
        Ok(())
    }

    /// Refuses an assignment: a `rejected` report (`success` when it is installed already)
    /// naming the version of the package the device runs, if it is known.
    pub(super) fn refuse(
        &mut self,
        assignment: &Assignment,
        name: Option<&Name>,
        rejection: Rejection,
    ) -> AgentError {
        let status = match rejection {
            Rejection::AlreadyInstalled { .. } => ReportStatus::Success,
            _ => ReportStatus::Rejected,
        };
        self.outputs.push_back(Output::Report(DeviceReport {
            device_id: self.config.device.device_id.clone(),
            rollout_id: assignment.rollout_id.clone(),
            firmware_version: name.and_then(|n| self.record.installed.get(n).cloned()),
            status,
            reason: Some(rejection.to_string()),
            attempt: assignment.attempt,
        }));
        rejection.into()
    }
}
