//! What the demo is made of, all from its seed: keys, a synthetic TensorRT engine and its
//! manifest, and a plant of mixed Jetson devices.

use ota_core::DeviceProfile;
use serde_json::{Value, json};

/// SplitMix64: a small, fixed generator, so a seed gives the same demo on every platform.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` and a purpose, so independent streams do not overlap.
    pub fn new(seed: u64, stream: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in stream.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(seed ^ h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// 32 random bytes (keys).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// A synthetic engine of `n` bytes: float32 weights around zero, which compress about as
/// much as real ones do.
pub fn engine(n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 4);
    while out.len() < n {
        let s: f64 = (0..4)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 2.0;
        out.extend_from_slice(&((s * 0.05) as f32).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The manifest of the YOLOv8n TensorRT engine built for Jetson Orin NX, at `version`, listing
/// `engine` as its one file.
pub fn manifest(version: &str, engine_size: u64, engine_sha256: &str) -> Value {
    let mut m: Value =
        serde_json::from_str(include_str!("yolo-v8n-orin-nx.json")).unwrap_or_default();
    m["version"] = json!(version);
    m["files"] = json!([{"path": "model/yolo-v8n.engine", "role": "engine",
                         "size_bytes": engine_size, "sha256": engine_sha256}]);
    m
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

/// The plant: `n` line cameras named like seed 000's (`jetson-line7-001`), running
/// yolo-v8n 2.0.4, in the device profile `prof_line_camera`.
pub fn plant(n: usize, rng: &mut Rng) -> Vec<DeviceProfile> {
    let total: usize = KINDS.iter().map(|k| k.weight).sum();
    (0..n)
        .map(|i| {
            let mut pick = rng.below(total);
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
