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

use crate::manifest::{Framework, HardwareCompat, ModelManifest, Target};
use crate::name::Name;
use crate::package::Package;
use crate::profile::{
    AcceleratorKind, Capabilities, ComputeCapability, DeviceProfile, HardwareProfile,
};
use crate::version::{RuntimeVersion, Version, VersionRange};

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
        evaluate_model(manifest, profile, sink);
    }
}

fn target_matches(t: &Target, profile: &DeviceProfile) -> bool {
    let id = t.hardware_profile.as_str();
    if id == profile.hardware_profile.as_str() {
        return true;
    }
    HardwareProfile::is_generic(id)
        && HardwareProfile::builtin(id).is_some_and(|g| g.arch == profile.arch)
}

fn evaluate_model(m: &ModelManifest, profile: &DeviceProfile, sink: &mut impl Sink) {
    let caps = profile.capabilities();
    let candidates = || {
        m.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| target_matches(t, profile))
    };
    if candidates().next().is_none() {
        sink.reject(Reason::NoMatchingTarget, None, || {
            let ids: Vec<&Name> = m.targets.iter().map(|t| &t.hardware_profile).collect();
            (list(&ids), profile.hardware_profile.to_string())
        });
        return;
    }
    // The model fits when any matching target fits.
    let fits = candidates().any(|(i, t)| {
        let mut mask = Mask(0);
        evaluate_target(m, i, t, profile, &caps, &mut mask);
        mask.0 == 0
    });
    if !fits {
        for (i, t) in candidates() {
            evaluate_target(m, i, t, profile, &caps, sink);
        }
    }
}

fn gpu_cc(caps: &Capabilities<'_>) -> String {
    caps.gpu.map_or("no gpu".into(), |(cc, _)| cc.to_string())
}

fn check_range(
    sink: &mut impl Sink,
    target: usize,
    runtime: &str,
    range: Option<&VersionRange>,
    installed: Option<&RuntimeVersion>,
    framework_runtime: bool,
) {
    let Some(range) = range else { return };
    match installed {
        // A missing framework runtime is reported as FrameworkUnsupported already.
        None if framework_runtime => {}
        None => sink.reject(Reason::RuntimeVersionMismatch, Some(target), || {
            (
                format!("{runtime} {range}"),
                format!("{runtime} not installed"),
            )
        }),
        Some(v) if !range.contains(v) => {
            sink.reject(Reason::RuntimeVersionMismatch, Some(target), || {
                (format!("{runtime} {range}"), format!("{runtime} {v}"))
            })
        }
        Some(_) => {}
    }
}

fn evaluate_target(
    m: &ModelManifest,
    ti: usize,
    t: &Target,
    profile: &DeviceProfile,
    caps: &Capabilities<'_>,
    sink: &mut impl Sink,
) {
    let at = Some(ti);
    let trt = m.tensorrt.as_ref();

    // Architecture.
    let arch = t
        .arch
        .or_else(|| HardwareProfile::builtin(t.hardware_profile.as_str()).map(|b| b.arch));
    if let Some(a) = arch
        && a != caps.arch
    {
        sink.reject(Reason::ArchMismatch, at, || {
            (a.to_string(), caps.arch.to_string())
        });
    }

    // Accelerators.
    for kind in &t.accelerators {
        if caps.count(*kind) == 0 {
            sink.reject(Reason::AcceleratorMissing, at, || {
                (kind.to_string(), format!("no {kind}"))
            });
        }
    }
    if let Some(trt) = trt {
        if caps.gpu.is_none() && !t.accelerators.contains(&AcceleratorKind::Gpu) {
            sink.reject(Reason::AcceleratorMissing, at, || {
                ("gpu (TensorRT engine)".into(), "no gpu".into())
            });
        }
        if let Some(core) = trt.dla_core
            && caps.dla_cores <= core
        {
            sink.reject(Reason::AcceleratorMissing, at, || {
                (
                    format!("dla core {core}"),
                    format!("{} dla cores", caps.dla_cores),
                )
            });
        }
    }

    // Compute capability.
    let device_cc = caps.gpu.map(|(cc, _)| cc);
    if let Some(trt) = trt {
        if let Some(cc) = device_cc {
            let built = t
                .compute_capability
                .unwrap_or(trt.built_on.compute_capability);
            let (ok, needed) = match trt.hardware_compat {
                HardwareCompat::AmperePlus => (
                    cc >= ComputeCapability::AMPERE,
                    ">=8.0 (ampere_plus)".to_string(),
                ),
                HardwareCompat::None | HardwareCompat::SameComputeCapability => {
                    (cc == built, format!("={built}"))
                }
            };
            if !ok {
                sink.reject(Reason::ComputeCapabilityMismatch, at, || {
                    (needed, cc.to_string())
                });
            }
        }
    } else if let Some(min) = t.compute_capability
        && device_cc.is_none_or(|cc| cc < min)
    {
        sink.reject(Reason::ComputeCapabilityMismatch, at, || {
            (format!(">={min}"), gpu_cc(caps))
        });
    }

    // Framework runtime and delegates.
    let rt = &profile.runtimes;
    let has_runtime = match m.framework {
        Framework::Tensorrt => rt.tensorrt.is_some(),
        Framework::Onnx => rt.onnxruntime.is_some(),
        Framework::Tflite => rt.tflite.is_some(),
    };
    if !has_runtime {
        sink.reject(Reason::FrameworkUnsupported, at, || {
            (
                m.framework.as_str().to_string(),
                format!("no {} runtime", m.framework.as_str()),
            )
        });
    }
    if let (Some(tfl), Some(dev)) = (&m.tflite, &rt.tflite) {
        for d in tfl.delegates.iter().filter(|d| d.required) {
            if !dev.delegates.contains(&d.name) {
                sink.reject(Reason::FrameworkUnsupported, at, || {
                    (
                        format!("tflite delegate {}", d.name),
                        format!("delegates {}", list(&dev.delegates)),
                    )
                });
            }
        }
    }

    // Runtime versions.
    let mut engine_runtime_failed = false;
    if let (Some(trt), Some(v)) = (trt, &rt.tensorrt) {
        let ok = if trt.version_compatible {
            *v >= trt.version && trt.runtime_majors().contains(&v.major())
        } else {
            *v == trt.version
        };
        if !ok {
            engine_runtime_failed = true;
            sink.reject(Reason::RuntimeVersionMismatch, at, || {
                let needed = if trt.version_compatible {
                    format!(
                        "tensorrt >={} of major {}",
                        trt.version,
                        list(&trt.runtime_majors())
                    )
                } else {
                    format!("tensorrt ={}", trt.version)
                };
                (needed, format!("tensorrt {v}"))
            });
        }
    }
    if let (Some(tfl), Some(dev)) = (&m.tflite, &rt.tflite)
        && dev.version < tfl.min_runtime
    {
        sink.reject(Reason::RuntimeVersionMismatch, at, || {
            (
                format!("tflite >={}", tfl.min_runtime),
                format!("tflite {}", dev.version),
            )
        });
    }
    let fw = m.framework;
    // The engine rule above already reports a TensorRT that does not fit: say it once.
    if !engine_runtime_failed {
        check_range(
            sink,
            ti,
            "tensorrt",
            t.runtimes.tensorrt.as_ref(),
            rt.tensorrt.as_ref(),
            fw == Framework::Tensorrt,
        );
    }
    check_range(
        sink,
        ti,
        "onnxruntime",
        t.runtimes.onnxruntime.as_ref(),
        rt.onnxruntime.as_ref().map(|o| &o.version),
        fw == Framework::Onnx,
    );
    check_range(
        sink,
        ti,
        "tflite",
        t.runtimes.tflite.as_ref(),
        rt.tflite.as_ref().map(|o| &o.version),
        fw == Framework::Tflite,
    );
    check_range(
        sink,
        ti,
        "cuda",
        t.runtimes.cuda.as_ref(),
        rt.cuda.as_ref(),
        false,
    );

    // ONNX opset and IR version.
    if let (Some(onnx), Some(ort)) = (&m.onnx, &rt.onnxruntime) {
        if let Some(opset) = onnx.default_opset()
            && opset > ort.max_opset
        {
            sink.reject(Reason::OpsetUnsupported, at, || {
                (
                    format!("opset {opset}"),
                    format!("max opset {}", ort.max_opset),
                )
            });
        }
        if onnx.ir_version > ort.max_ir_version {
            sink.reject(Reason::IrVersionUnsupported, at, || {
                (
                    format!("ir version {}", onnx.ir_version),
                    format!("max ir version {}", ort.max_ir_version),
                )
            });
        }
    }

    // Firmware.
    if let Some(range) = &t.firmware {
        match &profile.firmware {
            None => sink.reject(Reason::FirmwareTooOld, at, || {
                (range.to_string(), "no firmware reported".into())
            }),
            Some(f) => match range.position(&f.version) {
                std::cmp::Ordering::Less => sink.reject(Reason::FirmwareTooOld, at, || {
                    (range.to_string(), format!("{} {}", f.name, f.version))
                }),
                std::cmp::Ordering::Greater => sink.reject(Reason::FirmwareTooNew, at, || {
                    (range.to_string(), format!("{} {}", f.name, f.version))
                }),
                std::cmp::Ordering::Equal => {}
            },
        }
    }

    // Input types on the accelerators the model runs on.
    let dla = trt.and_then(|x| x.dla_core).map(|_| AcceleratorKind::Dla);
    let mut kinds: Vec<AcceleratorKind> = t.accelerators.clone();
    if let Some(k) = dla
        && !kinds.contains(&k)
    {
        kinds.push(k);
    }
    for kind in kinds {
        let Some(allowed) = caps.dtypes(kind) else {
            continue;
        };
        if caps.count(kind) == 0 {
            continue;
        }
        if let Some(input) = m.io.inputs.iter().find(|i| !allowed.contains(&i.dtype)) {
            sink.reject(Reason::InputDtypeUnsupported, at, || {
                (
                    format!("input {} as {} on {kind}", input.name, input.dtype),
                    format!("{kind} takes {}", list(allowed)),
                )
            });
        }
    }

    // Memory.
    if let Some(need) = t.min_memory_mb
        && caps.memory_mb.is_none_or(|have| have < need)
    {
        sink.reject(Reason::InsufficientMemory, at, || {
            (
                format!("{need} MiB"),
                caps.memory_mb
                    .map_or("unknown".into(), |m| format!("{m} MiB")),
            )
        });
    }
}
