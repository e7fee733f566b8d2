//! The compatibility engine: does a package fit a device, and if not, every reason why.
//!
//! [`check`] evaluates every rule and returns all rejections in a stable order, each a typed
//! [`Reason`] with what the package needs and what the device has. [`check_fleet`] runs the
//! same rules over many profiles and returns the eligible devices and the count of each
//! reason; it allocates nothing per rejected device, so it scales to a million devices.
//!
//! The rules, in the order their rejections are reported:
//!
//! 1. [`Reason::ChannelNotAllowed`]: the package's channel is not among the device's.
//! 2. [`Reason::DeviceTypeMismatch`]: `compatibility.device_types` does not list the device's.
//! 3. [`Reason::InstalledVersionTooOld`] / [`Reason::InstalledVersionTooNew`]: the installed
//!    version of this package is outside `min_version..=max_version`.
//! 4. [`Reason::NoMatchingTarget`]: `compatibility.hardware_profiles` does not list the
//!    device's hardware profile, or no target of a model manifest matches it (a `generic-*`
//!    target matches every device of its architecture).
//! 5. For a model, per matching target (the model fits when any matching target fits; when
//!    none does, the rejections of every matching target are reported, tagged with its
//!    index): arch, accelerators (a TensorRT engine needs a GPU, a DLA engine its DLA core),
//!    compute capability (a TensorRT engine needs the exact one it was built on unless built
//!    `ampere_plus`, which needs 8.0 or later; for other frameworks the target's value is a
//!    minimum), the framework's runtime and required delegates, runtime versions (a TensorRT
//!    engine needs the exact version, unless version-compatible: then the same or newer, of an
//!    allowed major; plus every range the target gives), ONNX opset and IR version, firmware
//!    range, input types on the accelerators it runs on (a DLA takes fp16/int8 only), and
//!    memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::name::Name;
use crate::package::Package;
use crate::profile::DeviceProfile;
use crate::version::Version;

mod model;

/// Why a package does not fit a device. The order of the variants is the order in which
/// rejections are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The package's channel is not one the device takes.
    ChannelNotAllowed,
    /// The package is not for this type of device.
    DeviceTypeMismatch,
    /// The installed version is below the package's `min_version`.
    InstalledVersionTooOld,
    /// The installed version is above the package's `max_version`.
    InstalledVersionTooNew,
    /// The package names no hardware profile or model target that matches the device.
    NoMatchingTarget,
    /// The CPU architecture differs.
    ArchMismatch,
    /// An accelerator the model needs is absent.
    AcceleratorMissing,
    /// The GPU's compute capability does not fit.
    ComputeCapabilityMismatch,
    /// The runtime of the model's framework (or a required delegate) is not installed.
    FrameworkUnsupported,
    /// An installed runtime's version does not fit.
    RuntimeVersionMismatch,
    /// ONNX Runtime does not run the model's default-domain opset.
    OpsetUnsupported,
    /// ONNX Runtime does not read the model's IR version.
    IrVersionUnsupported,
    /// The firmware is older than the model needs.
    FirmwareTooOld,
    /// The firmware is newer than the model allows.
    FirmwareTooNew,
    /// An input's type is not taken by an accelerator the model runs on.
    InputDtypeUnsupported,
    /// The device has less memory than the model needs.
    InsufficientMemory,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 16] = [
        Reason::ChannelNotAllowed,
        Reason::DeviceTypeMismatch,
        Reason::InstalledVersionTooOld,
        Reason::InstalledVersionTooNew,
        Reason::NoMatchingTarget,
        Reason::ArchMismatch,
        Reason::AcceleratorMissing,
        Reason::ComputeCapabilityMismatch,
        Reason::FrameworkUnsupported,
        Reason::RuntimeVersionMismatch,
        Reason::OpsetUnsupported,
        Reason::IrVersionUnsupported,
        Reason::FirmwareTooOld,
        Reason::FirmwareTooNew,
        Reason::InputDtypeUnsupported,
        Reason::InsufficientMemory,
    ];

    /// The name in `snake_case`, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ChannelNotAllowed => "channel_not_allowed",
            Reason::DeviceTypeMismatch => "device_type_mismatch",
            Reason::NoMatchingTarget => "no_matching_target",
            Reason::ArchMismatch => "arch_mismatch",
            Reason::AcceleratorMissing => "accelerator_missing",
            Reason::ComputeCapabilityMismatch => "compute_capability_mismatch",
            Reason::FrameworkUnsupported => "framework_unsupported",
            Reason::RuntimeVersionMismatch => "runtime_version_mismatch",
            Reason::OpsetUnsupported => "opset_unsupported",
            Reason::IrVersionUnsupported => "ir_version_unsupported",
            Reason::FirmwareTooOld => "firmware_too_old",
            Reason::FirmwareTooNew => "firmware_too_new",
            Reason::InstalledVersionTooOld => "installed_version_too_old",
            Reason::InstalledVersionTooNew => "installed_version_too_new",
            Reason::InputDtypeUnsupported => "input_dtype_unsupported",
            Reason::InsufficientMemory => "insufficient_memory",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a package does not fit a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// The index of the model target the rejection is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    /// What the package needs.
    pub needed: String,
    /// What the device has.
    pub found: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(t) = self.target {
            write!(f, "target {t}: ")?;
        }
        write!(
            f,
            "{}: needs {}, found {}",
            self.reason, self.needed, self.found
        )
    }
}

/// The verdict for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The device.
    pub device_id: Name,
    /// The package's name.
    pub package: Name,
    /// The package's version.
    pub version: Version,
    /// Whether the package fits (no rejections).
    pub compatible: bool,
    /// Every rejection, in rule order.
    pub rejections: Vec<Rejection>,
}

impl Report {
    /// The report as compact JSON.
    pub fn to_json(&self) -> String {
        crate::json::to_string(self)
    }
}

/// The verdict for a fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Profiles checked.
    pub total: usize,
    /// The devices the package fits, in input order.
    pub eligible: Vec<Name>,
    /// Devices it does not fit.
    pub rejected: usize,
    /// For each reason, how many devices were rejected for it (a device counts once per
    /// reason, and may count under several).
    pub reasons: BTreeMap<Reason, usize>,
}

impl FleetReport {
    /// The report as compact JSON.
    pub fn to_json(&self) -> String {
        crate::json::to_string(self)
    }
}

/// Checks whether `package` fits the device `profile`, with every reason it does not.
pub fn check(package: &Package, profile: &DeviceProfile) -> Report {
    let mut sink = Collect(Vec::new());
    evaluate(package, profile, &mut sink);
    Report {
        device_id: profile.device_id.clone(),
        package: package.name.clone(),
        version: package.version.clone(),
        compatible: sink.0.is_empty(),
        rejections: sink.0,
    }
}

/// Checks `package` against every profile: the eligible devices and the count of each reason.
pub fn check_fleet<'a>(
    package: &Package,
    profiles: impl IntoIterator<Item = &'a DeviceProfile>,
) -> FleetReport {
    let mut report = FleetReport::default();
    let mut counts = [0usize; Reason::ALL.len()];
    for profile in profiles {
        report.total += 1;
        let mut mask = Mask(0);
        evaluate(package, profile, &mut mask);
        if mask.0 == 0 {
            report.eligible.push(profile.device_id.clone());
        } else {
            report.rejected += 1;
            for (i, r) in Reason::ALL.iter().enumerate() {
                if mask.0 & r.bit() != 0 {
                    counts[i] += 1;
                }
            }
        }
    }
    report.reasons = Reason::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (*r, n))
        .collect();
    report
}

/// Whether `package` fits `profile`, without building a report.
pub fn fits(package: &Package, profile: &DeviceProfile) -> bool {
    let mut mask = Mask(0);
    evaluate(package, profile, &mut mask);
    mask.0 == 0
}

/// Where rejections go: a full report, or just a set of reasons.
trait Sink {
    fn reject(
        &mut self,
        reason: Reason,
        target: Option<usize>,
        detail: impl FnOnce() -> (String, String),
    );
}

struct Collect(Vec<Rejection>);

impl Sink for Collect {
    fn reject(
        &mut self,
        reason: Reason,
        target: Option<usize>,
        detail: impl FnOnce() -> (String, String),
    ) {
        let (needed, found) = detail();
        self.0.push(Rejection {
            reason,
            target,
            needed,
            found,
        });
    }
}

struct Mask(u32);

impl Sink for Mask {
    fn reject(&mut self, reason: Reason, _: Option<usize>, _: impl FnOnce() -> (String, String)) {
        self.0 |= reason.bit();
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let mut s = String::new();
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(" | ");
        }
        s.push_str(&x.to_string());
    }
    s
}

fn evaluate(package: &Package, profile: &DeviceProfile, sink: &mut impl Sink) {
    if !profile.allowed_channels.contains(&package.channel) {
        sink.reject(Reason::ChannelNotAllowed, None, || {
            (
                format!("channel {}", package.channel),
                format!("allowed {}", list(&profile.allowed_channels)),
            )
        });
    }
    let compat = &package.compatibility;
    if !compat.device_types.is_empty() && !compat.device_types.contains(&profile.device_type) {
        sink.reject(Reason::DeviceTypeMismatch, None, || {
            (list(&compat.device_types), profile.device_type.to_string())
        });
    }
    let installed = profile.installed.get(&package.name);
    if let Some(min) = &compat.min_version {
        match installed {
            Some(v) if v >= min => {}
            _ => sink.reject(Reason::InstalledVersionTooOld, None, || {
                (
                    format!(">={min}"),
                    installed.map_or("not installed".into(), Version::to_string),
                )
            }),
        }
    }
    if let (Some(max), Some(v)) = (&compat.max_version, installed)
        && v > max
    {
        sink.reject(Reason::InstalledVersionTooNew, None, || {
            (format!("<={max}"), v.to_string())
        });
    }
    if !compat.hardware_profiles.is_empty()
        && !compat.hardware_profiles.contains(&profile.hardware_profile)
    {
        sink.reject(Reason::NoMatchingTarget, None, || {
            (
                list(&compat.hardware_profiles),
                profile.hardware_profile.to_string(),
            )
        });
    }
    if let Some(manifest) = &package.manifest {
        model::evaluate_model(manifest, profile, sink);
    }
}
