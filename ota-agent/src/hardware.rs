//! What the daemon detects about the machine it runs on when the configuration leaves it
//! out: the CPU architecture, the memory, and the NVIDIA Jetson module from
//! `/proc/device-tree/model`.

use ota_core::profile::Arch;

/// This machine's CPU architecture (as compiled for).
pub fn arch() -> Arch {
    match std::env::consts::ARCH {
        "aarch64" => Arch::Arm64,
        "arm" => Arch::Armv7,
        "riscv64" => Arch::Riscv64,
        _ => Arch::X86_64,
    }
}

/// The memory in MiB (`MemTotal` of `/proc/meminfo`), if readable.
pub fn memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_mb(&text)
}

/// `MemTotal` of a `/proc/meminfo` text, in MiB.
pub fn meminfo_mb(text: &str) -> Option<u64> {
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// The built-in hardware profile of this Jetson module, when `/proc/device-tree/model` names
/// one.
pub fn jetson_profile() -> Option<&'static str> {
    let model = std::fs::read("/proc/device-tree/model").ok()?;
    jetson_model(&String::from_utf8_lossy(&model))
}

/// The built-in hardware profile a device-tree model string names
/// (`NVIDIA Jetson AGX Orin Developer Kit` is `nvidia-jetson-agx-orin`).
pub fn jetson_model(model: &str) -> Option<&'static str> {
    let m = model.trim_end_matches('\0').to_ascii_lowercase();
    if !m.contains("jetson") && !m.contains("nvidia") {
        return None;
    }
    // The most specific names first: "orin nano" before "orin", "xavier nx" before "nano".
    const NAMES: [(&[&str], &str); 8] = [
        (&["thor"], "nvidia-jetson-thor"),
        (&["agx orin"], "nvidia-jetson-agx-orin"),
        (&["orin nano"], "nvidia-jetson-orin-nano"),
        (&["orin nx", "orin"], "nvidia-jetson-orin-nx"),
        (&["agx xavier", "xavier agx"], "nvidia-jetson-agx-xavier"),
        (&["xavier nx", "xavier"], "nvidia-jetson-xavier-nx"),
        (&["tx2", "quill"], "nvidia-jetson-tx2"),
        (&["nano"], "nvidia-jetson-nano"),
    ];
    NAMES
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| m.contains(k)))
        .map(|(_, id)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jetson_models_name_their_builtin_profile() {
        for (model, id) in [
            (
                "NVIDIA Jetson AGX Orin Developer Kit\0",
                Some("nvidia-jetson-agx-orin"),
            ),
            (
                "NVIDIA Jetson Orin Nano Developer Kit",
                Some("nvidia-jetson-orin-nano"),
            ),
            (
                "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
                Some("nvidia-jetson-orin-nx"),
            ),
            (
                "NVIDIA Jetson Xavier NX Developer Kit",
                Some("nvidia-jetson-xavier-nx"),
            ),
            ("Jetson-AGX", None),
            (
                "NVIDIA Jetson Nano Developer Kit",
                Some("nvidia-jetson-nano"),
            ),
            ("quill", None),
            ("NVIDIA Jetson TX2", Some("nvidia-jetson-tx2")),
            ("Raspberry Pi 4 Model B Rev 1.4", None),
        ] {
            assert_eq!(jetson_model(model), id, "{model}");
            if let Some(id) = id {
                assert!(
                    ota_core::profile::HardwareProfile::builtin(id).is_some(),
                    "{id}"
                );
            }
        }
    }

    #[test]
    fn meminfo_is_read_in_mib() {
        assert_eq!(
            meminfo_mb("MemTotal:        8041484 kB\nMemFree: 1 kB\n"),
            Some(7853)
        );
        assert_eq!(meminfo_mb("MemFree: 1 kB\n"), None);
    }
}
