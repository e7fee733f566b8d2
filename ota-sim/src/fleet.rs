//! Simulated fleets: device profiles generated from a seed.
//!
//! - [`sensors`]: the OTA API's temperature sensors, for the rollout tests.
//! - [`mixed_jetsons`] and [`mostly_compatible_jetsons`]: Jetson fleets of any size, for the
//!   benchmarks of the compatibility engine and the rollout.
//! - [`plant`]: the push-a-model-bundle guide's line cameras, for the demo.

use ota_core::DeviceProfile;
use serde_json::json;

use crate::Rng;

/// `n` temperature sensors of device profile `prof_temp_v2`, on firmware 1.2.0, named
/// `dev-0000` and up; every `incompatible_every`-th one is a doorbell instead.
pub fn sensors(n: usize, incompatible_every: usize) -> Vec<DeviceProfile> {
    (0..n)
        .map(|i| {
            let ty = if incompatible_every > 0 && i % incompatible_every == incompatible_every - 1 {
                "doorbell"
            } else {
                "temp-sensor"
            };
            let hw = ["acme-sensor-v2", "acme-sensor-v3", "acme-sensor-lite"][i % 3];
            let json = format!(
                r#"{{"device_id":"dev-{i:04}","device_type":"{ty}","hardware_profile":"{hw}","arch":"armv7",
                    "installed":{{"temp-sensor-fw":"1.2.0"}},"labels":{{"profile":"prof_temp_v2","site":"plant-{}"}}}}"#,
                i % 7
            );
            DeviceProfile::from_json(json.as_bytes()).expect("sensor profile")
        })
        .collect()
}

/// A fleet of `n` devices of mixed Jetson profiles, runtimes and firmware, about a fifth of
/// which fit a YOLOv8n TensorRT engine built for Orin NX (TensorRT 8.6.2.3, JetPack
/// 6.0), like the benchmarks' `yolo_package`.
pub fn mixed_jetsons(n: usize, seed: u64) -> Vec<DeviceProfile> {
    fleet_with(n, seed, false)
}

/// A fleet of `n` mixed Jetson devices most of which (about 90 %) fit that engine:
/// Orin NX and AGX Orin boards on the engine's TensorRT and JetPack, with a tenth of other
/// boards and runtimes.
pub fn mostly_compatible_jetsons(n: usize, seed: u64) -> Vec<DeviceProfile> {
    fleet_with(n, seed, true)
}

fn fleet_with(n: usize, seed: u64, mostly_compatible: bool) -> Vec<DeviceProfile> {
    let mut rng = Rng::new(seed);
    let compatible = [
        ("nvidia-jetson-orin-nx", 16384),
        ("nvidia-jetson-agx-orin", 65536),
    ];
    let boards = [
        ("nvidia-jetson-orin-nx", 16384),
        ("nvidia-jetson-orin-nx", 8192),
        ("nvidia-jetson-agx-orin", 65536),
        ("nvidia-jetson-orin-nano", 8192),
        ("nvidia-jetson-xavier-nx", 8192),
        ("nvidia-jetson-nano", 4096),
    ];
    let trt = ["8.6.2.3", "8.6.2.3", "8.6.2.3", "8.5.2.2", "10.3.0.26"];
    let jetpack = ["6.0", "6.0", "6.1", "5.1.2"];
    (0..n)
        .map(|i| {
            let fits = mostly_compatible && rng.below(10) != 0;
            let (board, mem) = if fits {
                *rng.pick(&compatible)
            } else {
                *rng.pick(&boards)
            };
            let trt = if fits { "8.6.2.3" } else { rng.pick(&trt) };
            let jetpack = if fits { "6.0" } else { rng.pick(&jetpack) };
            let v = json!({
                "device_id": format!("dev-{i:07}"),
                "device_type": if !fits && rng.below(20) == 0 { "doorbell" } else { "line-camera" },
                "hardware_profile": board,
                "arch": "arm64",
                "memory_mb": mem,
                "runtimes": {"tensorrt": trt, "cuda": "12.2"},
                "firmware": {"name": "jetpack", "version": jetpack},
                "installed": {"yolo-v8n": "2.0.4"},
                "allowed_channels": ["stable"],
            });
            DeviceProfile::from_json(v.to_string().as_bytes()).expect("generated profile")
        })
        .collect()
}

/// A kind of device in the plant: how often it occurs, and whether the model is meant for it.
struct Kind {
    weight: usize,
    board: &'static str,
    memory_mb: u64,
    tensorrt: &'static str,
    jetpack: &'static str,
}

const KINDS: [Kind; 6] = [
    // The engine's target, on its TensorRT and JetPack: eligible.
    Kind {
        weight: 84,
        board: "nvidia-jetson-orin-nx",
        memory_mb: 16384,
        tensorrt: "8.6.2.3",
        jetpack: "6.0",
    },
    // Not yet upgraded to JetPack 6.
    Kind {
        weight: 5,
        board: "nvidia-jetson-orin-nx",
        memory_mb: 8192,
        tensorrt: "8.5.2.2",
        jetpack: "5.1.2",
    },
    // A TensorRT 10 pilot: engines are not portable across versions.
    Kind {
        weight: 3,
        board: "nvidia-jetson-orin-nx",
        memory_mb: 16384,
        tensorrt: "10.3.0.26",
        jetpack: "6.1",
    },
    // Older and other boards the engine was not built for.
    Kind {
        weight: 4,
        board: "nvidia-jetson-xavier-nx",
        memory_mb: 8192,
        tensorrt: "8.5.2.2",
        jetpack: "5.1.2",
    },
    Kind {
        weight: 2,
        board: "nvidia-jetson-orin-nano",
        memory_mb: 8192,
        tensorrt: "8.6.2.3",
        jetpack: "6.0",
    },
    Kind {
        weight: 2,
        board: "nvidia-jetson-agx-orin",
        memory_mb: 65536,
        tensorrt: "8.6.2.3",
        jetpack: "6.0",
    },
];

/// The plant: `n` line cameras named like the push-a-model-bundle guide's (`jetson-line7-001`), running
/// yolo-v8n 2.0.4, in the device profile `prof_line_camera`.
pub fn plant(n: usize, rng: &mut Rng) -> Vec<DeviceProfile> {
    let total: usize = KINDS.iter().map(|k| k.weight).sum();
    (0..n)
        .map(|i| {
            let mut pick = rng.index(total);
            let kind = KINDS
                .iter()
                .find(|k| {
                    if pick < k.weight {
                        true
                    } else {
                        pick -= k.weight;
                        false
                    }
                })
                .unwrap_or(&KINDS[0]);
            let v = json!({
                "device_id": format!("jetson-line{}-{:03}", 7 + i / 250, i % 250 + 1),
                "device_type": "line-camera",
                "hardware_profile": kind.board,
                "arch": "arm64",
                "memory_mb": kind.memory_mb,
                "runtimes": {"tensorrt": kind.tensorrt, "cuda": "12.2"},
                "firmware": {"name": "jetpack", "version": kind.jetpack},
                "installed": {"yolo-v8n": "2.0.4"},
                "labels": {"profile": "prof_line_camera", "site": "plant-7"},
            });
            DeviceProfile::from_json(v.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("the demo's profile: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ids(fleet: &[DeviceProfile]) -> BTreeSet<String> {
        fleet.iter().map(|d| d.device_id.to_string()).collect()
    }

    #[test]
    fn every_third_sensor_is_a_doorbell_when_asked() {
        let f = sensors(9, 3);
        assert_eq!(ids(&f).len(), 9);
        let doorbells: Vec<usize> = (0..9)
            .filter(|i| f[*i].device_type.as_str() == "doorbell")
            .collect();
        assert_eq!(doorbells, [2, 5, 8]);
        assert!(
            sensors(9, 0)
                .iter()
                .all(|d| d.device_type.as_str() == "temp-sensor")
        );
    }

    #[test]
    fn a_seed_gives_the_same_fleet_and_another_seed_another() {
        assert_eq!(mixed_jetsons(50, 7), mixed_jetsons(50, 7));
        assert_ne!(mixed_jetsons(50, 7), mixed_jetsons(50, 8));
        assert_eq!(ids(&mostly_compatible_jetsons(200, 1)).len(), 200);
        let a = plant(300, &mut Rng::stream(1, "fleet"));
        let b = plant(300, &mut Rng::stream(1, "fleet"));
        assert_eq!(a, b);
        assert_eq!(ids(&a).len(), 300);
        assert_eq!(a[0].device_id.as_str(), "jetson-line7-001");
        assert_eq!(a[250].device_id.as_str(), "jetson-line8-001");
    }

    #[test]
    fn a_mostly_compatible_fleet_is_mostly_orin() {
        let f = mostly_compatible_jetsons(1000, 42);
        let orin = f
            .iter()
            .filter(|d| {
                matches!(
                    d.hardware_profile.as_str(),
                    "nvidia-jetson-orin-nx" | "nvidia-jetson-agx-orin"
                )
            })
            .count();
        assert!(orin > 850, "{orin} of 1000");
    }
}
