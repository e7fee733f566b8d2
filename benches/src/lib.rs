//! Inputs shared by the benchmarks: synthetic fleets and packages, generated deterministically
//! from a seed.

use ota_core::{DeviceProfile, Package};
use serde_json::json;

/// A small, fast, deterministic generator (SplitMix64), so inputs are the same in every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

/// A fleet of `n` devices of mixed Jetson profiles, runtimes and firmware, about half of which
/// fit [`yolo_package`].
pub fn fleet(n: usize, seed: u64) -> Vec<DeviceProfile> {
    let mut rng = Rng::new(seed);
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
            let (board, mem) = *rng.pick(&boards);
            let v = json!({
                "device_id": format!("dev-{i:07}"),
                "device_type": if rng.below(20) == 0 { "doorbell" } else { "line-camera" },
                "hardware_profile": board,
                "arch": "arm64",
                "memory_mb": mem,
                "runtimes": {"tensorrt": rng.pick(&trt), "cuda": "12.2"},
                "firmware": {"name": "jetpack", "version": rng.pick(&jetpack)},
                "installed": {"yolo-v8n": "2.0.4"},
                "allowed_channels": ["stable"],
            });
            DeviceProfile::from_json(v.to_string().as_bytes()).expect("generated profile")
        })
        .collect()
}

/// The TensorRT model package for Orin NX used by the benchmarks.
pub fn yolo_package() -> Package {
    let manifest: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/manifests/valid/tensorrt-orin-nx.json"
    ))
    .expect("fixture");
    let mut manifest = manifest;
    // Two targets, so the engine looks at more than one candidate.
    let mut second = manifest["targets"][0].clone();
    second["hardware_profile"] = json!("nvidia-jetson-agx-orin");
    manifest["targets"]
        .as_array_mut()
        .expect("targets")
        .push(second);
    let v = json!({
        "type": "model", "name": "yolo-v8n", "version": "2.1.0",
        "artifact_uri": "s3://models/yolo-v8n-2.1.0.enc",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size_bytes": 8765432,
        "compatibility": {"device_types": ["line-camera"]},
        "manifest": manifest,
    });
    Package::from_json(v.to_string().as_bytes()).expect("package")
}
