//! Inputs shared by the benchmarks: the model package they publish, and criterion helpers
//! that report each benchmark against its reference.
//!
//! The seeded generators, synthetic weights and fleets are in `ota-sim`, shared with the
//! tests and the demo: the benchmarks call it directly.

use ota_core::Package;
use serde_json::json;

/// The encryption key the benchmarks seal with.
pub const SEAL_KEY: [u8; 32] = [0x42; 32];

/// The IV the benchmarks seal with.
pub const SEAL_IV: [u8; 16] = [0x24; 16];

/// A firmware package to seal an artifact into (its digest and size are placeholders until
/// `set_sealed`).
pub fn firmware_package() -> Package {
    Package::from_json(
        br#"{"type":"fw","name":"bench","version":"1.0.0","artifact_uri":"s3://b/x","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size_bytes":1}"#,
    )
    .expect("package")
}

/// `plain` sealed with [`SEAL_KEY`] and [`SEAL_IV`] into a [`firmware_package`]: the package
/// and the artifact.
pub fn sealed_package(plain: &[u8]) -> (Package, Vec<u8>) {
    let key = ota_core::seal::SealKey::from_bytes(SEAL_KEY);
    let (artifact, sealed) = ota_core::seal::seal_bytes(&key, SEAL_IV, plain).expect("sealing");
    let mut package = firmware_package();
    package.set_sealed(&sealed);
    (package, artifact)
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

/// The median time of a benchmark in nanoseconds, from criterion's estimates of this run
/// (the median, not the mean: one slow sample on a shared machine moves the mean).
pub fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < *START.get_or_init(std::time::SystemTime::now) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Runs each case once per round, in turn, for `rounds` rounds (so a change in the machine's
/// load hits every case alike) after one warm-up round, and returns each case's median wall
/// time in nanoseconds.
pub fn interleaved(rounds: usize, cases: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..=rounds {
        for (i, (_, run)) in cases.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            run();
            if round > 0 {
                times[i].push(start.elapsed().as_nanos() as f64);
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

/// Prints, for each `(group, ours, reference, bytes)`, both throughputs (MiB/s, or
/// operations/s when `bytes` is 0) and the ratio ours / reference, from criterion's medians.
pub fn print_ratios(rows: &[(&str, &str, &str, u64)]) {
    println!(
        "\n{:<14} {:<28} {:>12} {:<34} {:>12} {:>8}",
        "group", "ota", "", "reference", "", "ratio"
    );
    for (group, ours, reference, bytes) in rows {
        let (Some(a), Some(b)) = (median_ns(group, ours), median_ns(group, reference)) else {
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
