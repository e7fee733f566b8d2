//! The built-in hardware profiles: the boards whose facts (architecture, GPU compute
//! capability, DLA cores, memory) a device report may narrow but never widen.

use crate::hardware::{Arch, ComputeCapability};

/// A built-in hardware profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HardwareProfile {
    /// Its id, as devices and model targets name it.
    pub id: &'static str,
    /// A human description.
    pub description: &'static str,
    /// The CPU architecture.
    pub arch: Arch,
    /// The integrated GPU's compute capability, if any.
    pub gpu: Option<ComputeCapability>,
    /// The number of DLA cores.
    pub dla_cores: u32,
    /// The memory of the smallest variant, in MiB (assumed when a device does not report it).
    pub min_memory_mb: u64,
    /// The memory of the largest variant, in MiB (a report above it is refused), if bounded.
    pub max_memory_mb: Option<u64>,
}

macro_rules! jetson {
    ($id:literal, $desc:literal, ($maj:literal, $min:literal), $dla:literal, $lo:literal, $hi:literal) => {
        HardwareProfile {
            id: $id,
            description: $desc,
            arch: Arch::Arm64,
            gpu: Some(ComputeCapability::new($maj, $min)),
            dla_cores: $dla,
            min_memory_mb: $lo,
            max_memory_mb: Some($hi),
        }
    };
}

/// The built-in hardware profiles.
pub const BUILTIN_PROFILES: &[HardwareProfile] = &[
    jetson!(
        "nvidia-jetson-nano",
        "NVIDIA Jetson Nano (Maxwell, CC 5.3)",
        (5, 3),
        0,
        2048,
        4096
    ),
    jetson!(
        "nvidia-jetson-tx2",
        "NVIDIA Jetson TX2 (Pascal, CC 6.2)",
        (6, 2),
        0,
        4096,
        8192
    ),
    jetson!(
        "nvidia-jetson-xavier-nx",
        "NVIDIA Jetson Xavier NX (Volta, CC 7.2, 2 DLA)",
        (7, 2),
        2,
        8192,
        16384
    ),
    jetson!(
        "nvidia-jetson-agx-xavier",
        "NVIDIA Jetson AGX Xavier (Volta, CC 7.2, 2 DLA)",
        (7, 2),
        2,
        8192,
        65536
    ),
    jetson!(
        "nvidia-jetson-orin-nano",
        "NVIDIA Jetson Orin Nano (Ampere, CC 8.7, no DLA)",
        (8, 7),
        0,
        4096,
        8192
    ),
    jetson!(
        "nvidia-jetson-orin-nx",
        "NVIDIA Jetson Orin NX (Ampere, CC 8.7, 2 DLA)",
        (8, 7),
        2,
        8192,
        16384
    ),
    jetson!(
        "nvidia-jetson-agx-orin",
        "NVIDIA Jetson AGX Orin (Ampere, CC 8.7, 2 DLA)",
        (8, 7),
        2,
        32768,
        65536
    ),
    jetson!(
        "nvidia-jetson-thor",
        "NVIDIA Jetson Thor (Blackwell, CC 11.0, no DLA)",
        (11, 0),
        0,
        65536,
        131072
    ),
    HardwareProfile {
        id: "generic-arm64",
        description: "Generic 64-bit ARM CPU board",
        arch: Arch::Arm64,
        gpu: None,
        dla_cores: 0,
        min_memory_mb: 0,
        max_memory_mb: None,
    },
    HardwareProfile {
        id: "generic-x86_64",
        description: "Generic x86-64 CPU board",
        arch: Arch::X86_64,
        gpu: None,
        dla_cores: 0,
        min_memory_mb: 0,
        max_memory_mb: None,
    },
];

impl HardwareProfile {
    /// The built-in profile with this id.
    pub fn builtin(id: &str) -> Option<&'static HardwareProfile> {
        BUILTIN_PROFILES.iter().find(|p| p.id == id)
    }

    /// Whether `id` names a generic profile (`generic-arm64`), which a model target uses to
    /// mean every device of that architecture.
    pub fn is_generic(id: &str) -> bool {
        id.starts_with("generic-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cover_the_jetson_line() {
        let cc = |id: &str| {
            HardwareProfile::builtin(id)
                .unwrap()
                .gpu
                .unwrap()
                .to_string()
        };
        assert_eq!(cc("nvidia-jetson-nano"), "5.3");
        assert_eq!(cc("nvidia-jetson-tx2"), "6.2");
        assert_eq!(cc("nvidia-jetson-xavier-nx"), "7.2");
        assert_eq!(cc("nvidia-jetson-agx-xavier"), "7.2");
        assert_eq!(cc("nvidia-jetson-orin-nano"), "8.7");
        assert_eq!(cc("nvidia-jetson-orin-nx"), "8.7");
        assert_eq!(cc("nvidia-jetson-agx-orin"), "8.7");
        assert_eq!(cc("nvidia-jetson-thor"), "11.0");
        let dla = |id: &str| HardwareProfile::builtin(id).unwrap().dla_cores;
        assert_eq!(dla("nvidia-jetson-xavier-nx"), 2);
        assert_eq!(dla("nvidia-jetson-orin-nano"), 0);
        assert_eq!(dla("nvidia-jetson-agx-orin"), 2);
        assert_eq!(dla("nvidia-jetson-thor"), 0);
        assert!(HardwareProfile::builtin("generic-arm64").is_some());
        assert!(HardwareProfile::builtin("generic-x86_64").is_some());
    }
}
