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

/// A fleet of `n` devices of mixed Jetson profiles, runtimes and firmware, about a fifth of
/// which fit [`yolo_package`].
pub fn fleet(n: usize, seed: u64) -> Vec<DeviceProfile> {
    fleet_with(n, seed, false)
}

/// A fleet of `n` mixed Jetson devices most of which (about 90 %) fit [`yolo_package`]:
/// Orin NX and AGX Orin boards on the engine's TensorRT and JetPack, with a tenth of other
/// boards and runtimes.
pub fn compatible_fleet(n: usize, seed: u64) -> Vec<DeviceProfile> {
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

/// Where criterion writes its results for this run: `target/criterion`.
pub fn criterion_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/deps/<bench> -> target/criterion
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("criterion"))
        .unwrap_or_else(|| "target/criterion".into())
}

static START: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// A criterion configured from the command line, writing to [`criterion_dir`]. Call it
/// first: it marks the start of the run.
pub fn criterion() -> criterion::Criterion {
    START.get_or_init(std::time::SystemTime::now);
    criterion::Criterion::default()
        .output_directory(&criterion_dir())
        .configure_from_args()
}

/// The mean time of a benchmark in nanoseconds, from criterion's estimates of this run.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    // Only what this run measured: criterion keeps the results of earlier runs.
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < *START.get_or_init(std::time::SystemTime::now) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// Prints, for each `(group, ours, reference, bytes)`, both throughputs (MiB/s, or
/// operations/s when `bytes` is 0) and the ratio ours / reference.
pub fn print_ratios(rows: &[(&str, &str, &str, u64)]) {
    println!(
        "\n{:<14} {:<28} {:>12} {:<34} {:>12} {:>8}",
        "group", "ota", "", "reference", "", "ratio"
    );
    for (group, ours, reference, bytes) in rows {
        let (Some(a), Some(b)) = (mean_ns(group, ours), mean_ns(group, reference)) else {
            println!("{group:<14} {ours:<28} (not measured in this run)");
            continue;
        };
        let rate = |ns: f64| {
            if *bytes == 0 {
                format!("{:.0} op/s", 1e9 / ns)
            } else {
                format!("{:.0} MiB/s", *bytes as f64 / (1 << 20) as f64 / (ns / 1e9))
            }
        };
        println!(
            "{group:<14} {ours:<28} {:>12} {reference:<34} {:>12} {:>7.2}x",
            rate(a),
            rate(b),
            b / a
        );
    }
}

/// `n` bytes that look like dense float32 model weights (small normal-ish values): they
/// compress by about 7 %, like real weights.
pub fn dense_weights(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 4);
    while out.len() < n {
        // Sum of uniforms: roughly normal around 0 with sigma ~0.05.
        let s: f64 = (0..4)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 2.0;
        out.extend_from_slice(&((s * 0.05) as f32).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Runs a shell pipeline and fails loudly if it does not succeed.
pub fn shell(script: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("running sh");
    assert!(status.success(), "reference command failed: {script}");
}

/// A file in a scratch directory under `target/`, holding `bytes`.
pub fn scratch_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = criterion_dir().with_file_name("bench-scratch");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}
