//! Device profiles: what a device is and has, and the built-in hardware profiles.
//!
//! A device reports a [`DeviceProfile`]. When it names a built-in hardware profile
//! ([`HardwareProfile::builtin`]), the built-in fills in what the device leaves out, and the
//! device's report may narrow it (fewer DLA cores, less memory) but never widen it: a report
//! that claims more than the hardware has is rejected when parsed. A hardware profile that is
//! not built in is taken as reported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::hardware::DType;
use crate::json::{self, Fault, ParseError, Validate, duplicates, fault, field, index};
use crate::limits::Limits;
use crate::name::Name;
use crate::version::{RuntimeVersion, Version};

pub use crate::hardware::{AcceleratorKind, Arch, ComputeCapability, ComputeCapabilityError};
pub use builtin::{BUILTIN_PROFILES, HardwareProfile};

mod builtin;

/// What a device is and has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// The device's identifier.
    pub device_id: Name,
    /// The kind of device (`temp-sensor`, `line-camera`).
    pub device_type: Name,
    /// The hardware profile: a built-in one (`nvidia-jetson-orin-nx`) or a custom name.
    pub hardware_profile: Name,
    /// The CPU architecture.
    pub arch: Arch,
    /// The accelerators; absent means those of the built-in hardware profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<Vec<Accelerator>>,
    /// The memory in MiB; absent means the smallest variant of the built-in hardware profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// The installed runtimes.
    #[serde(default, skip_serializing_if = "Runtimes::is_empty")]
    pub runtimes: Runtimes,
    /// The firmware (on Jetson, the JetPack release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// The installed version of each package, by package name.
    #[serde(default)]
    pub installed: BTreeMap<Name, Version>,
    /// The channels the device takes packages from (default: `stable` only).
    #[serde(default = "default_channels")]
    pub allowed_channels: Vec<Channel>,
    /// Free-form labels (`site: plant-7`).
    #[serde(default)]
    pub labels: BTreeMap<Name, String>,
}

fn default_channels() -> Vec<Channel> {
    vec![Channel::Stable]
}

impl DeviceProfile {
    /// Parses and validates one profile with [`Limits::DEFAULT`]; see [`Self::from_json_with_limits`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_json_with_limits(bytes, &Limits::DEFAULT)
    }

    /// Parses and validates one profile.
    pub fn from_json_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("profile", bytes, limits.max_document_bytes)
    }

    /// Parses and validates a fleet: a JSON array of profiles with unique device ids.
    pub fn fleet_from_json(bytes: &[u8], limits: &Limits) -> Result<Vec<Self>, ParseError> {
        let fleet: Fleet = json::parse("fleet", bytes, limits.max_fleet_bytes)?;
        Ok(fleet.0)
    }

    /// The profile as compact JSON; [`DeviceProfile::from_json`] reads it back unchanged.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// The built-in hardware profile this device names, if any.
    pub fn builtin(&self) -> Option<&'static HardwareProfile> {
        HardwareProfile::builtin(self.hardware_profile.as_str())
    }

    /// What the device effectively has: its report, with the built-in profile filling in what
    /// the report leaves out.
    pub fn capabilities(&self) -> Capabilities<'_> {
        let builtin = self.builtin();
        let mut caps = Capabilities {
            arch: self.arch,
            gpu: None,
            dla_cores: 0,
            dla_dtypes: DLA_DTYPES,
            npus: 0,
            npu_dtypes: None,
            memory_mb: self.memory_mb.or(builtin.map(|b| b.min_memory_mb)),
        };
        match &self.accelerators {
            None => {
                if let Some(b) = builtin {
                    caps.gpu = b.gpu.map(|cc| (cc, 1));
                    caps.dla_cores = b.dla_cores;
                }
            }
            Some(list) => {
                for a in list {
                    match a.kind {
                        AcceleratorKind::Gpu => {
                            let cc = a
                                .compute_capability
                                .or(builtin.and_then(|b| b.gpu))
                                .unwrap_or(ComputeCapability::new(0, 0));
                            caps.gpu = Some((cc, a.count));
                        }
                        AcceleratorKind::Dla => {
                            caps.dla_cores = a.count;
                            if let Some(d) = &a.dtypes {
                                caps.dla_dtypes = d;
                            }
                        }
                        AcceleratorKind::Npu => {
                            caps.npus = a.count;
                            caps.npu_dtypes = a.dtypes.as_deref();
                        }
                    }
                }
            }
        }
        caps
    }
}

const DLA_DTYPES: &[DType] = &[DType::Fp16, DType::Int8];

/// What a device effectively has, after the built-in profile fills in its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities<'a> {
    /// The CPU architecture.
    pub arch: Arch,
    /// The GPU's compute capability and count.
    pub gpu: Option<(ComputeCapability, u32)>,
    /// The number of DLA cores.
    pub dla_cores: u32,
    /// The tensor types the DLA cores take (at most fp16 and int8).
    pub dla_dtypes: &'a [DType],
    /// The number of NPUs.
    pub npus: u32,
    /// The tensor types the NPUs take, if reported.
    pub npu_dtypes: Option<&'a [DType]>,
    /// The memory in MiB, if known.
    pub memory_mb: Option<u64>,
}

impl Capabilities<'_> {
    /// How many accelerators of `kind` the device has.
    pub fn count(&self, kind: AcceleratorKind) -> u32 {
        match kind {
            AcceleratorKind::Gpu => self.gpu.map_or(0, |(_, n)| n),
            AcceleratorKind::Dla => self.dla_cores,
            AcceleratorKind::Npu => self.npus,
        }
    }

    /// The tensor types an accelerator of `kind` takes; `None` means any.
    pub fn dtypes(&self, kind: AcceleratorKind) -> Option<&[DType]> {
        match kind {
            AcceleratorKind::Gpu => None,
            AcceleratorKind::Dla => Some(self.dla_dtypes),
            AcceleratorKind::Npu => self.npu_dtypes,
        }
    }
}

/// An accelerator a device has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// What it is.
    pub kind: AcceleratorKind,
    /// For a GPU, its compute capability (required unless the built-in profile gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<ComputeCapability>,
    /// How many (at least 1).
    #[serde(default = "one")]
    pub count: u32,
    /// The tensor types it takes, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtypes: Option<Vec<DType>>,
}

fn one() -> u32 {
    1
}

/// The runtimes installed on a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtimes {
    /// TensorRT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorrt: Option<RuntimeVersion>,
    /// ONNX Runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<OnnxRuntime>,
    /// TFLite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflite: Option<TfliteRuntime>,
    /// CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<RuntimeVersion>,
}

impl Runtimes {
    /// Whether no runtime is installed.
    pub fn is_empty(&self) -> bool {
        self.tensorrt.is_none()
            && self.onnxruntime.is_none()
            && self.tflite.is_none()
            && self.cuda.is_none()
    }
}

/// An installed ONNX Runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntime {
    /// Its version.
    pub version: RuntimeVersion,
    /// The newest default-domain opset it runs.
    pub max_opset: u32,
    /// The newest IR version it reads.
    pub max_ir_version: u32,
}

/// An installed TFLite runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfliteRuntime {
    /// Its version.
    pub version: RuntimeVersion,
    /// The delegates available.
    #[serde(default)]
    pub delegates: Vec<Name>,
}

/// A device's firmware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firmware {
    /// Its name (`jetpack`).
    pub name: Name,
    /// Its version (`6.0`).
    pub version: RuntimeVersion,
}

impl Validate for DeviceProfile {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        let builtin = self.builtin();
        if let Some(b) = builtin
            && b.arch != self.arch
        {
            fault(
                faults,
                field(path, "arch"),
                format!("{} is {}, not {}", b.id, b.arch, self.arch),
            );
        }
        if self.memory_mb == Some(0) {
            fault(
                faults,
                field(path, "memory_mb"),
                "must be more than 0 when given",
            );
        }
        if let (Some(b), Some(m)) = (builtin, self.memory_mb)
            && let Some(max) = b.max_memory_mb
            && m > max
        {
            fault(
                faults,
                field(path, "memory_mb"),
                format!(
                    "{m} MiB widens the built-in profile {} (at most {max} MiB)",
                    b.id
                ),
            );
        }
        if let Some(list) = &self.accelerators {
            let p = field(path, "accelerators");
            duplicates(faults, &p, Some("kind"), list.iter().map(|a| &a.kind));
            for (i, a) in list.iter().enumerate() {
                validate_accelerator(a, builtin, &index(&p, i), faults);
            }
        }
        let p = field(path, "allowed_channels");
        if self.allowed_channels.is_empty() {
            fault(faults, p.clone(), "at least one channel is required");
        }
        duplicates(faults, &p, None, &self.allowed_channels);
        if let Some(tfl) = &self.runtimes.tflite {
            duplicates(
                faults,
                &field(&field(&field(path, "runtimes"), "tflite"), "delegates"),
                None,
                &tfl.delegates,
            );
        }
    }
}

fn validate_accelerator(
    a: &Accelerator,
    builtin: Option<&HardwareProfile>,
    p: &str,
    faults: &mut Vec<Fault>,
) {
    if a.count == 0 {
        fault(faults, field(p, "count"), "must be at least 1");
    }
    if a.kind != AcceleratorKind::Gpu && a.compute_capability.is_some() {
        fault(
            faults,
            field(p, "compute_capability"),
            "only a gpu has a compute capability",
        );
    }
    if a.kind == AcceleratorKind::Dla
        && let Some(d) = &a.dtypes
        && let Some(bad) = d.iter().find(|t| !DLA_DTYPES.contains(t))
    {
        fault(
            faults,
            field(p, "dtypes"),
            format!("a DLA takes only fp16 and int8, not {bad}"),
        );
    }
    let Some(b) = builtin else {
        if a.kind == AcceleratorKind::Gpu && a.compute_capability.is_none() {
            fault(
                faults,
                field(p, "compute_capability"),
                "a gpu on a custom hardware profile must report its compute capability",
            );
        }
        return;
    };
    let widen = |what: String| format!("{what} widens the built-in profile {}", b.id);
    match a.kind {
        AcceleratorKind::Gpu => match b.gpu {
            None => fault(faults, field(p, "kind"), widen("a gpu".into())),
            Some(cc) => {
                if let Some(rep) = a.compute_capability
                    && rep != cc
                {
                    fault(
                        faults,
                        field(p, "compute_capability"),
                        format!("{} has compute capability {cc}, not {rep}", b.id),
                    );
                }
                if a.count > 1 {
                    fault(
                        faults,
                        field(p, "count"),
                        widen(format!("{} gpus", a.count)),
                    );
                }
            }
        },
        AcceleratorKind::Dla => {
            if a.count > b.dla_cores {
                fault(
                    faults,
                    field(p, "count"),
                    widen(format!("{} DLA cores (it has {})", a.count, b.dla_cores)),
                );
            }
        }
        AcceleratorKind::Npu => fault(faults, field(p, "kind"), widen("an npu".into())),
    }
}

/// A fleet: profiles with unique device ids.
#[derive(Deserialize)]
#[serde(transparent)]
struct Fleet(Vec<DeviceProfile>);

impl Validate for Fleet {
    const IS_OBJECT: bool = false;

    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        for (i, p) in self.0.iter().enumerate() {
            p.validate_at(&index(path, i), faults);
        }
        duplicates(
            faults,
            path,
            Some("device_id"),
            self.0.iter().map(|p| &p.device_id),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(extra: &str) -> Result<DeviceProfile, ParseError> {
        let json = format!(
            r#"{{"device_id":"d1","device_type":"cam","hardware_profile":"nvidia-jetson-orin-nano","arch":"arm64"{extra}}}"#
        );
        DeviceProfile::from_json(json.as_bytes())
    }

    #[test]
    fn a_report_may_narrow_but_not_widen() {
        let p = profile("").unwrap();
        let caps = p.capabilities();
        assert_eq!(caps.gpu, Some((ComputeCapability::new(8, 7), 1)));
        assert_eq!(caps.dla_cores, 0);
        assert_eq!(caps.memory_mb, Some(4096));
        assert_eq!(
            profile(r#","memory_mb":8192"#)
                .unwrap()
                .capabilities()
                .memory_mb,
            Some(8192)
        );
        let e = profile(r#","memory_mb":16384"#).unwrap_err();
        assert!(e.to_string().contains("memory_mb: 16384 MiB widens"), "{e}");
        let e = profile(r#","accelerators":[{"kind":"dla","count":1}]"#).unwrap_err();
        assert!(e.to_string().contains("accelerators[0].count"), "{e}");
        let e =
            profile(r#","accelerators":[{"kind":"gpu","compute_capability":"8.9"}]"#).unwrap_err();
        assert!(
            e.to_string().contains("accelerators[0].compute_capability"),
            "{e}"
        );
        let e = profile(r#","arch":"x86_64""#).unwrap_err();
        assert!(
            e.to_string().contains("duplicate field") || e.to_string().contains("arch"),
            "{e}"
        );
        // No accelerators reported at all is a narrowing: a CPU-only view of the board.
        let p = profile(r#","accelerators":[]"#).unwrap();
        assert_eq!(p.capabilities().gpu, None);
    }
}
