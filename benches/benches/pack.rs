//! Packing: gzip -6, AES-256-CBC, SHA-256 and the chunk table, as `ota pack` seals, against
//! `pigz -6 -p 2 | openssl enc -aes-256-cbc` (both cores) and `gzip -6 | openssl enc` (one),
//! on the same input in the same run, interleaved, wall clock against wall clock, median of
//! the runs; the output sizes are compared too (the sealed artifact less its 16-byte IV,
//! against openssl's ciphertext of pigz's or gzip's member).
//!
//! `cargo bench -p ota-benches --bench pack` (`OTA_BENCH_MIB`, default 64; `OTA_BENCH_RUNS`,
//! default 7). The references need `pigz` and `openssl` (Debian: `apt-get install pigz`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use ota_core::seal::{SealKey, Sealer};
use ota_host::seal::seal_parallel;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `sh -c pipeline` with `input` on the pipeline's stdin (the redirection comes first, so
/// it feeds the first command, not the last); the time and the output's size.
fn shell(pipeline: &str, input: &std::path::Path) -> (f64, u64) {
    let start = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("< '{}' {pipeline} | wc -c", input.display()))
        .stderr(Stdio::inherit())
        .output()
        .expect("sh");
    let t = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{pipeline} failed");
    let n = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("wc -c");
    (t, n)
}

/// Seals the file on `threads` threads into a sink; the time and the sealed size.
fn ours(input: &std::path::Path, threads: usize) -> (f64, u64) {
    let start = Instant::now();
    let file = std::fs::File::open(input).expect("input");
    let key = SealKey::from_bytes(ota_benches::SEAL_KEY);
    let sealer = Sealer::new(&key, ota_benches::SEAL_IV, std::io::sink()).expect("sealer");
    let (sealed, _) = seal_parallel(
        sealer,
        std::io::BufReader::with_capacity(1 << 20, file),
        threads,
    )
    .expect("seal");
    (start.elapsed().as_secs_f64(), sealed.size_bytes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench --workspace -- --list` (no criterion here)
    }
    let mib = env("OTA_BENCH_MIB", 64);
    let runs = env("OTA_BENCH_RUNS", 7);
    for tool in ["pigz", "gzip", "openssl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("{tool} is not installed: the pack bench needs it as its reference");
            std::process::exit(1);
        }
    }
    let dir = std::env::temp_dir().join(format!("ota-bench-pack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("weights.bin");
    std::fs::File::create(&input)
        .and_then(|mut f| f.write_all(&ota_sim::bytes::dense_weights(mib << 20, 7)))
        .expect("input");
    let enc = format!(
        "openssl enc -aes-256-cbc -K {} -iv {}",
        hex(&ota_benches::SEAL_KEY),
        hex(&ota_benches::SEAL_IV)
    );
    let pigz = format!("pigz -6 -p 2 -n -c | {enc}");
    let gzip = format!("gzip -6 -n -c | {enc}");
    let (mut t_ours2, mut t_ours1, mut t_pigz, mut t_gzip) = (vec![], vec![], vec![], vec![]);
    let mut sizes = (0, 0, 0);
    for _ in 0..runs {
        let (t, n) = ours(&input, 2);
        t_ours2.push(t);
        sizes.0 = n - 16;
        let (t, n) = shell(&pigz, &input);
        t_pigz.push(t);
        sizes.1 = n;
        let (t, _) = ours(&input, 1);
        t_ours1.push(t);
        let (t, n) = shell(&gzip, &input);
        t_gzip.push(t);
        sizes.2 = n;
    }
    let mb = (mib << 20) as f64 / 1e6;
    let (o2, o1, p, g) = (
        median(t_ours2),
        median(t_ours1),
        median(t_pigz),
        median(t_gzip),
    );
    println!("pack {mib} MiB of dense float32 weights, median of {runs} interleaved runs:");
    println!("  ota seal, 2 threads          {:7.1} MB/s", mb / o2);
    println!("  pigz -6 -p 2 | openssl enc   {:7.1} MB/s", mb / p);
    println!("  ota seal, 1 thread           {:7.1} MB/s", mb / o1);
    println!("  gzip -6 | openssl enc        {:7.1} MB/s", mb / g);
    println!(
        "  ratio, 2 threads vs pigz:     {:.2}x (goal >= 1.0)",
        p / o2
    );
    println!("  ratio, 1 thread vs gzip:      {:.2}x", g / o1);
    println!(
        "  size: ota {} B, pigz {} B ({:+.2} %), gzip {} B ({:+.2} %)",
        sizes.0,
        sizes.1,
        (sizes.0 as f64 / sizes.1 as f64 - 1.0) * 100.0,
        sizes.2,
        (sizes.0 as f64 / sizes.2 as f64 - 1.0) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
