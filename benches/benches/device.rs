//! The device path against OpenSSL and gzip, measured in the same run:
//!
//! - per-chunk verification (SHA-256 of each 64 KiB chunk against the signed table) vs
//!   `openssl dgst -sha256` on the same bytes; and of one chunk in cache, over and over, vs
//!   `openssl speed -evp sha256` (which hashes one 64 KiB buffer in cache);
//! - the device pipeline (verify every chunk, decrypt, gunzip) on one thread and on two
//!   (`ota_host::pipeline`), and the agent's any-order path (accept every chunk, last first,
//!   into staging, each hashed once on its way in — on both threads with two, through
//!   `ota_host::pipeline::stage` — then install, not hashing again a chunk verified in this
//!   session), against gunzip alone
//!   (flate2 + zlib-rs inflating the same gzip stream in this process) and against
//!   `openssl enc -d -aes-256-cbc | gzip -d | sha256sum` on the same file: all measured
//!   interleaved, round by round, median wall time of each (`OTA_BENCH_ROUNDS`, 15).
//!
//! Staging is the host's storage, there before an update starts: the any-order rows stage
//! into one buffer made (and its pages touched) before the rounds, as gunzip alone reads a
//! stream made before them. One more row allocates a new staging buffer every round, as this
//! bench did before, to show what the allocator and the kernel's page faults cost.

use std::cell::RefCell;
use std::hint::black_box;
use std::io::Write as _;

use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use criterion::Throughput;
use ota_benches::{
    SEAL_IV, SEAL_KEY, interleaved, print_ratios, scratch_file, sealed_package, shell,
};
use ota_core::Limits;
use ota_core::download::Download;
use ota_core::seal::{self, SealKey};
use ota_core::sign::{self, SigningKey};
use ota_host::pipeline;
use ota_sim::dense_weights;

const MB: usize = 1 << 20;

fn main() {
    let mut c = ota_benches::criterion();

    // A verified package of dense float weights.
    // OTA_BENCH_MIB sets the plaintext size (64 MiB unless given).
    let size = std::env::var("OTA_BENCH_MIB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(64)
        * MB;
    let plain = dense_weights(size, 11);
    let key = SealKey::from_bytes(SEAL_KEY);
    let (package, artifact) = sealed_package(&plain);
    let signer = SigningKey::from_secret([1; 32]);
    let env = sign::sign(&package, &[&signer]).unwrap();
    let trusted = [signer.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
    let artifact_path = scratch_file("device.enc", &artifact);
    let body_path = scratch_file("device.body", &artifact[16..]);

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
    // Like for like with `openssl speed -bytes 65536 -evp sha256`, which hashes one 64 KiB
    // buffer in cache over and over: one chunk, checked against the signed table over and
    // over. The 64 MiB rows above read their bytes from memory, as a device does.
    let mut g = c.benchmark_group("chunk-verify-in-cache");
    g.throughput(Throughput::Bytes(65536));
    let first = &artifact[..65536];
    g.bench_function("ota", |b| {
        b.iter(|| {
            black_box(
                verified
                    .chunks()
                    .verify(0, artifact.len() as u64, black_box(first))
                    .unwrap(),
            )
        })
    });
    g.finish();

    // The device pipeline, its references measured interleaved in this run (round-robin,
    // median wall time of each): gunzip alone is flate2 + zlib-rs inflating the same gzip
    // stream in this process, fed from memory in the same 64 KiB pieces.
    let n = artifact.len() as u64;
    let gz_stream = decrypt_body(&artifact[16..]);
    let gunzip_alone = || {
        let mut d = flate2::write::GzDecoder::new(std::io::sink());
        for piece in gz_stream.chunks(65536) {
            d.write_all(piece).unwrap();
        }
        d.finish().unwrap();
    };
    let shell_pipeline = format!(
        "openssl enc -d -aes-256-cbc -K {} -iv {} -in {} | gzip -dc | sha256sum > /dev/null",
        hex(key.as_bytes()),
        hex(&SEAL_IV),
        body_path.display()
    );
    let open = |threads: usize| {
        pipeline::open_chunked(
            artifact.as_slice(),
            &key,
            verified.chunks(),
            verified.expected(),
            std::io::sink(),
            threads,
        )
        .unwrap();
    };
    // The staging store, its pages touched once before the rounds.
    let staging = RefCell::new(vec![1u8; artifact.len()]);
    let stage_and_install = |staging: &mut Vec<u8>, threads: usize| {
        let mut d = Download::new(&verified);
        let batch: Vec<(u64, &[u8])> = d
            .plan(usize::MAX)
            .into_iter()
            .rev()
            .map(|req| {
                let end = req.offset as usize + req.length as usize;
                (req.offset, &artifact[req.offset as usize..end])
            })
            .collect();
        for r in pipeline::stage(&mut d, &batch, staging, threads) {
            r.unwrap();
        }
        pipeline::install(&verified, &key, &mut d, staging, std::io::sink(), threads).unwrap();
    };
    let any_order = |threads: usize| stage_and_install(&mut staging.borrow_mut(), threads);
    let any_order_fresh_staging = || stage_and_install(&mut Vec::with_capacity(artifact.len()), 2);
    // Before this change, reconstructed with today's stages: each chunk checked, then the
    // whole artifact hashed again (`Opener::new`) and the plaintext hashed (its digest not
    // taken as declared), all on one thread; the any-order path did the same after `accept`.
    let mut before_expected = verified.expected();
    before_expected.plaintext_sha256 = None;
    let before = || {
        let mut o = seal::Opener::new(&key, before_expected.clone(), std::io::sink());
        for (i, chunk) in artifact.chunks(65536).enumerate() {
            let v = verified.chunks().verify(i, n, chunk).unwrap();
            o.push(v).unwrap();
        }
        o.finish().unwrap();
    };
    let before_any_order = || {
        let mut staging = staging.borrow_mut();
        let mut d = Download::new(&verified);
        for req in d.plan(usize::MAX).into_iter().rev() {
            let end = req.offset as usize + req.length as usize;
            d.accept(
                req.offset,
                &artifact[req.offset as usize..end],
                &mut *staging,
            )
            .unwrap();
        }
        let mut o = seal::Opener::new(&key, before_expected.clone(), std::io::sink());
        for (i, chunk) in staging.chunks(65536).enumerate() {
            let v = verified.chunks().verify(i, n, chunk).unwrap();
            o.push(v).unwrap();
        }
        o.finish().unwrap();
    };
    // What `ota unpack --package` and `ota verify` do, file to file, against the shell and
    // `openssl dgst` on the same files.
    let out_path = artifact_path.with_file_name("device.out");
    let unpack = || {
        let src = std::fs::File::open(&artifact_path).unwrap();
        let out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out_path).unwrap());
        pipeline::open_chunked(
            src,
            &key,
            verified.chunks(),
            verified.expected(),
            out,
            pipeline::default_threads(),
        )
        .unwrap();
    };
    let shell_unpack = format!(
        "openssl enc -d -aes-256-cbc -K {} -iv {} -in {} | gzip -dc > {}",
        hex(key.as_bytes()),
        hex(&SEAL_IV),
        body_path.display(),
        out_path.display()
    );
    let verify = || {
        let src = std::fs::File::open(&artifact_path).unwrap();
        assert!(verified.chunks().check_stream(n, src).unwrap().matches(n));
    };
    let openssl_dgst = format!(
        "openssl dgst -sha256 {} > /dev/null",
        artifact_path.display()
    );
    let rounds = std::env::var("OTA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let names = [
        "gunzip alone (flate2 + zlib-rs)",
        "ota, one thread",
        "ota, two threads",
        "any-order stage+install, one thread",
        "any-order stage+install, two threads",
        "openssl enc -d | gzip -d | sha256sum",
        "before: 3 hashes, one thread",
        "before: any-order, 4 hashes, one thread",
        "unpack: file to file (ota unpack's call)",
        "unpack: openssl enc -d | gzip -d > file",
        "verify: every chunk from the file, 1 pass",
        "verify: openssl dgst -sha256 file",
        "any-order, two threads, staging allocated every round",
    ];
    let ns = interleaved(
        rounds,
        &mut [
            (names[0], &mut || gunzip_alone()),
            (names[1], &mut || open(1)),
            (names[2], &mut || open(2)),
            (names[3], &mut || any_order(1)),
            (names[4], &mut || any_order(2)),
            (names[5], &mut || shell(&shell_pipeline)),
            (names[6], &mut || before()),
            (names[7], &mut || before_any_order()),
            (names[8], &mut || unpack()),
            (names[9], &mut || shell(&shell_unpack)),
            (names[10], &mut || verify()),
            (names[11], &mut || shell(&openssl_dgst)),
            (names[12], &mut || any_order_fresh_staging()),
        ],
    );
    let rate = |ns: f64| n as f64 / MB as f64 / (ns / 1e9);
    println!(
        "\ndevice pipeline, {} MiB artifact, median of {rounds} interleaved rounds (wall clock); load average {}",
        n >> 20,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for (name, t) in names.iter().zip(&ns).take(8).chain([(&names[12], &ns[12])]) {
        println!(
            "  {name:<40} {:>6.0} MiB/s of artifact   {:.2}x gunzip alone   {:.2}x the shell",
            rate(*t),
            ns[0] / t,
            ns[5] / t
        );
    }

    println!(
        "  ota unpack's call {:.2}x the shell ({:.0} vs {:.0} MiB/s); ota verify's pass {:.2}x openssl dgst ({:.0} vs {:.0} MiB/s)",
        ns[9] / ns[8],
        rate(ns[8]),
        rate(ns[9]),
        ns[11] / ns[10],
        rate(ns[10]),
        rate(ns[11])
    );

    c.final_summary();
    print_ratios(&[("chunk-verify", "ota", "reference-openssl-dgst", n)]);
    // SHA-256 as `openssl speed` measures it (no process or file I/O), 64 KiB blocks, its
    // rate in wall-clock time (`-elapsed`) like ours.
    let out = std::process::Command::new("openssl")
        .args([
            "speed", "-elapsed", "-seconds", "2", "-bytes", "65536", "-evp", "sha256",
        ])
        .output();
    if let (Ok(out), Some(ns)) = (out, ota_benches::median_ns("chunk-verify-in-cache", "ota")) {
        let text = String::from_utf8_lossy(&out.stdout);
        let k = text
            .lines()
            .rfind(|l| l.contains("sha256"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|w| w.trim_end_matches('k').parse::<f64>().ok());
        if let Some(k) = k {
            let ours = 65536.0 / MB as f64 / (ns / 1e9);
            let theirs = k * 1000.0 / MB as f64;
            let _ = writeln!(
                std::io::stdout(),
                "chunk-verify   ota {ours:.0} MiB/s (one chunk, in cache)  openssl speed sha256 {theirs:.0} MiB/s  {:.2}x",
                ours / theirs
            );
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The gzip stream inside a sealed artifact's body (the bytes after the IV).
fn decrypt_body(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let (blocks, _) =
        aes::cipher::Array::<u8, aes::cipher::consts::U16>::slice_as_chunks_mut(&mut out);
    cbc::Decryptor::<aes::Aes256>::new(&SEAL_KEY.into(), &SEAL_IV.into()).decrypt_blocks(blocks);
    let pad = usize::from(out[out.len() - 1]);
    out.truncate(out.len() - pad);
    out
}
