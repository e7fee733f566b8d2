//! The device path against OpenSSL and gzip, measured in the same run:
//!
//! - per-chunk verification (SHA-256 of each 64 KiB chunk against the signed table) vs
//!   `openssl dgst -sha256` on the same bytes, and vs `openssl speed -evp sha256`;
//! - the fused pipeline on one core (verify every chunk, decrypt, gunzip, confirm the digests)
//!   vs `openssl enc -d -aes-256-cbc | gzip -d | sha256sum` on the same file;
//! - the agent's any-order path (accept every chunk into staging, then install the prefix,
//!   checking each chunk again as it leaves staging), for comparison.

use std::hint::black_box;
use std::io::Write as _;

use criterion::Throughput;
use ota_benches::{SEAL_IV, SEAL_KEY, print_ratios, scratch_file, sealed_package, shell};
use ota_core::Limits;
use ota_core::download::{Download, Install};
use ota_core::seal::{self, SealKey};
use ota_core::sign::{self, SigningKey};
use ota_sim::dense_weights;

const MB: usize = 1 << 20;

fn main() {
    let mut c = ota_benches::criterion();

    // A verified package of dense float weights.
    let size = 64 * MB;
    let plain = dense_weights(size, 11);
    let key = SealKey::from_bytes(SEAL_KEY);
    let (package, artifact) = sealed_package(&plain);
    let signer = SigningKey::from_secret([1; 32]);
    let env = sign::sign(&package, &[&signer]).unwrap();
    let trusted = [signer.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
    let artifact_path = scratch_file("device.enc", &artifact);
    let body_path = scratch_file("device.body", &artifact[16..]);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    let mut g = c.benchmark_group("chunk-verify");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(artifact.len() as u64));
    g.bench_function("ota", |b| {
        b.iter(|| {
            for (i, chunk) in artifact.chunks(65536).enumerate() {
                black_box(
                    verified
                        .chunks()
                        .verify(i, artifact.len() as u64, chunk)
                        .unwrap(),
                );
            }
        })
    });
    g.bench_function("reference-openssl-dgst", |b| {
        b.iter(|| {
            shell(&format!(
                "openssl dgst -sha256 {} > /dev/null",
                artifact_path.display()
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("device-pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(artifact.len() as u64));
    g.bench_function("ota", |b| {
        b.iter(|| {
            seal::open_chunked(
                artifact.as_slice(),
                &key,
                verified.chunks(),
                verified.expected(),
                std::io::sink(),
            )
            .unwrap()
        })
    });
    g.bench_function("reference-openssl-gzip-sha256sum", |b| {
        b.iter(|| {
            shell(&format!(
                "openssl enc -d -aes-256-cbc -K {} -iv {} -in {} | gzip -dc | sha256sum > /dev/null",
                hex(key.as_bytes()),
                hex(&SEAL_IV),
                body_path.display()
            ))
        })
    });
    g.bench_function("ota-any-order-accept-then-install", |b| {
        b.iter(|| {
            let mut staging = Vec::with_capacity(artifact.len());
            let mut d = Download::new(&verified);
            for req in d.plan(usize::MAX).into_iter().rev() {
                let end = req.offset as usize + req.length as usize;
                d.accept(
                    req.offset,
                    &artifact[req.offset as usize..end],
                    &mut staging,
                )
                .unwrap();
            }
            let mut install = Install::new(&verified, &key, std::io::sink());
            install.advance(&mut d, &mut staging).unwrap();
            install.finish().unwrap()
        })
    });
    g.finish();

    c.final_summary();
    let n = artifact.len() as u64;
    print_ratios(&[
        ("chunk-verify", "ota", "reference-openssl-dgst", n),
        (
            "device-pipeline",
            "ota",
            "reference-openssl-gzip-sha256sum",
            n,
        ),
        (
            "device-pipeline",
            "ota-any-order-accept-then-install",
            "reference-openssl-gzip-sha256sum",
            n,
        ),
    ]);
    // SHA-256 as `openssl speed` measures it (no process or file I/O), 64 KiB blocks.
    let out = std::process::Command::new("openssl")
        .args([
            "speed", "-seconds", "2", "-bytes", "65536", "-evp", "sha256",
        ])
        .output();
    if let (Ok(out), Some(ns)) = (out, ota_benches::mean_ns("chunk-verify", "ota")) {
        let text = String::from_utf8_lossy(&out.stdout);
        let k = text
            .lines()
            .rfind(|l| l.contains("sha256"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|w| w.trim_end_matches('k').parse::<f64>().ok());
        if let Some(k) = k {
            let ours = n as f64 / MB as f64 / (ns / 1e9);
            let theirs = k * 1000.0 / MB as f64;
            let _ = writeln!(
                std::io::stdout(),
                "chunk-verify   ota {ours:.0} MiB/s  openssl speed sha256 {theirs:.0} MiB/s  {:.2}x",
                ours / theirs
            );
        }
    }
}
