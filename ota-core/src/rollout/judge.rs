//! The compatibility pass of a creation: what becomes of each device of the fleet. It is the
//! part of creating a rollout done device by device, each on its own, so a host may run it on
//! several threads, a part of the fleet each ([`Judge::verdicts`]), and hand the verdicts to
//! [`Rollout::create_judged`](super::Rollout::create_judged), which does the rest on one.
//! [`Rollout::create`](super::Rollout::create) does both on the calling thread. The core starts
//! no thread itself: `ota_host::rollout::create` is the host side.

use std::ops::Range;

use super::cohort::order_key;
use super::create::check_request;
use super::{Create, RolloutError};
use crate::compat::{self, Reason};
use crate::package::Package;
use crate::plan::Membership;
use crate::profile::DeviceProfile;

/// What creation makes of one device of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Not in the rollout's target: not part of the rollout.
    Outside,
    /// In the target, but the package does not fit it, first for this reason.
    Incompatible(Reason),
    /// In the target, and already running the package's version.
    AlreadyInstalled,
    /// Eligible: its bucket order key ([`super::order_key`]), and whether the rollback
    /// package fits it too (a rollback that fits not every eligible device is refused).
    Eligible {
        /// Its place in the bucket order.
        order_key: u64,
        /// Whether the rollback package, when there is one, fits it.
        rollback_fits: bool,
    },
}

/// Judges the devices of one creation. It holds what every verdict needs (the target as a
/// set, the packages, the salt) and is `Sync`: threads share one.
pub struct Judge<'a> {
    target: Membership,
    package: &'a Package,
    rollback: Option<&'a Package>,
    salt: String,
    fleet: &'a [DeviceProfile],
}

impl std::fmt::Debug for Judge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Judge({} {} for {} devices)",
            self.package.name,
            self.package.version,
            self.fleet.len()
        )
    }
}

impl<'a> Judge<'a> {
    /// The judge of `c`'s fleet. Fails as [`Rollout::create`](super::Rollout::create) fails
    /// before it looks at the fleet: a package that is not the request's, a rollback that is
    /// not bound to it, no target, too many waves.
    pub fn new(c: &Create<'a>) -> Result<Judge<'a>, RolloutError> {
        check_request(c)?;
        Ok(Judge {
            target: c
                .spec
                .resolved_target()
                .ok_or(RolloutError::NoTarget)?
                .membership(),
            package: c.package.package(),
            rollback: c.rollback.map(|r| r.package()),
            salt: c
                .spec
                .salt
                .clone()
                .unwrap_or_else(|| c.rollout_id.to_string()),
            fleet: c.fleet,
        })
    }

    /// The verdicts on the fleet's devices in `part` (indexes into the fleet, clamped to it),
    /// in order. The fleet's parts may be judged in any order, on any thread: joined in order,
    /// they are the fleet's verdicts.
    pub fn verdicts(&self, part: Range<usize>) -> Vec<Verdict> {
        let end = part.end.min(self.fleet.len());
        let start = part.start.min(end);
        self.fleet[start..end]
            .iter()
            .map(|d| self.verdict(d))
            .collect()
    }

    /// The verdict on one device.
    pub fn verdict(&self, d: &DeviceProfile) -> Verdict {
        if !self.target.contains(d) {
            Verdict::Outside
        } else if let Some(reason) = first_reason(self.package, d) {
            Verdict::Incompatible(reason)
        } else if d.installed.get(&self.package.name) == Some(&self.package.version) {
            Verdict::AlreadyInstalled
        } else {
            Verdict::Eligible {
                order_key: order_key(&self.salt, d.device_id.as_str()),
                rollback_fits: self.rollback.is_none_or(|rb| compat::fits(rb, d)),
            }
        }
    }
}

/// The first reason the package does not fit, without building a report when it fits.
pub(super) fn first_reason(pkg: &Package, d: &DeviceProfile) -> Option<Reason> {
    if compat::fits(pkg, d) {
        None
    } else {
        compat::check(pkg, d).rejections.first().map(|r| r.reason)
    }
}
