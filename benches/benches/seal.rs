//! The publisher's primitives against OpenSSL, gzip and sha256sum, measured in the same run:
//!
//! - seal (gzip -6, then AES-256-CBC) vs `gzip -6 | openssl enc -aes-256-cbc`;
//! - open (verify every chunk, decrypt, gunzip) vs `openssl enc -d | gzip -d`;
//! - SHA-256 of a 256 MiB buffer vs `openssl dgst -sha256` and `sha256sum`, and of one
//!   in-cache 64 KiB buffer vs `openssl speed`;
//! - AES-256-CBC decryption of a 64 MiB stream: the cbc crate's block mode (what `Opener`
//!   uses) and the aes crate's many-block call with the chaining done after, vs
//!   `openssl enc -d -nopad`; and of one in-cache 64 KiB buffer vs `openssl speed`;
//! - Ed25519 sign and verify of a 20-byte message vs `openssl speed ed25519` (which signs
//!   20 bytes).
//!
//! The ratios are printed at the end (ota / reference; above 1 is faster), from criterion's
//! medians; `openssl speed` runs with `-elapsed`, so its rates are wall clock like ours.

use std::hint::black_box;
use std::io::Write as _;

use aes::cipher::{Array, BlockCipherDecrypt, BlockModeDecrypt, KeyInit, KeyIvInit};
use criterion::{Criterion, Throughput};
use ota_benches::{SEAL_IV, SEAL_KEY, print_ratios, scratch_file, shell};
use ota_core::seal::{self, SealKey};
use ota_core::sign::SigningKey;
use ota_sim::dense_weights;

const MB: usize = 1 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn seal_and_open(c: &mut Criterion) {
    let size = 32 * MB;
    let plain = dense_weights(size, 1);
    let plain_path = scratch_file("weights.bin", &plain);
    let key = SealKey::from_bytes(SEAL_KEY);
    let (sealed_bytes, sealed) = seal::seal_bytes(&key, SEAL_IV, &plain).unwrap();
    let body_path = scratch_file("weights.body", &sealed_bytes[16..]);
    let k = hex(&SEAL_KEY);
    let iv = hex(&SEAL_IV);

    let mut g = c.benchmark_group("seal");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("ota", |b| {
        b.iter(|| seal::seal_bytes(&key, SEAL_IV, black_box(&plain)).unwrap())
    });
    g.bench_function("reference-gzip-openssl", |b| {
        b.iter(|| {
            shell(&format!(
                "gzip -6 -c {} | openssl enc -aes-256-cbc -K {k} -iv {iv} > /dev/null",
                plain_path.display()
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size as u64));
    let expected = sealed.expected();
    g.bench_function("ota", |b| {
        b.iter(|| {
            seal::open_chunked(
                sealed_bytes.as_slice(),
                &key,
                &sealed.chunks,
                expected.clone(),
                std::io::sink(),
            )
            .unwrap()
        })
    });
    g.bench_function("reference-openssl-gzip", |b| {
        b.iter(|| {
            shell(&format!(
                "openssl enc -d -aes-256-cbc -K {k} -iv {iv} -in {} | gzip -dc > /dev/null",
                body_path.display()
            ))
        })
    });
    g.finish();
}

fn sha256(c: &mut Criterion) {
    let size = 256 * MB;
    let data = dense_weights(size, 2);
    let path = scratch_file("hash.bin", &data);
    let mut g = c.benchmark_group("sha256");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("ota", |b| {
        b.iter(|| ota_core::Sha256Digest::of(black_box(&data)))
    });
    g.bench_function("reference-openssl-dgst", |b| {
        b.iter(|| {
            shell(&format!(
                "openssl dgst -sha256 {} > /dev/null",
                path.display()
            ))
        })
    });
    g.bench_function("reference-sha256sum", |b| {
        b.iter(|| shell(&format!("sha256sum {} > /dev/null", path.display())))
    });
    g.finish();
    // Like for like with `openssl speed -bytes 65536 -evp sha256`: one 64 KiB buffer in
    // cache, hashed over and over.
    let mut g = c.benchmark_group("sha256-64k");
    g.throughput(Throughput::Bytes(64 * 1024));
    let piece = &data[..64 * 1024];
    g.bench_function("ota", |b| {
        b.iter(|| ota_core::Sha256Digest::of(black_box(piece)))
    });
    g.finish();
}

type Block = Array<u8, aes::cipher::consts::U16>;

fn cbc_decrypt(c: &mut Criterion) {
    let size = 64 * MB;
    let ct = dense_weights(size, 3);
    let path = scratch_file("cbc.bin", &ct);
    let mut g = c.benchmark_group("cbc-decrypt");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(size as u64));
    // Many blocks through AES at once, with the chaining done after: the path PERF-NOTES
    // suggested trying.
    g.bench_function("aes-blocks-then-xor", |b| {
        let cipher = aes::Aes256::new(&SEAL_KEY.into());
        let mut scratch = vec![0u8; 64 * 1024];
        b.iter(|| {
            let mut prev = Block::from(SEAL_IV);
            for piece in ct.chunks(64 * 1024) {
                scratch[..piece.len()].copy_from_slice(piece);
                let (blocks, _) = Block::slice_as_chunks_mut(&mut scratch[..piece.len()]);
                cipher.decrypt_blocks(blocks);
                let (cblocks, _) = Block::slice_as_chunks(piece);
                for (p, c) in blocks.iter_mut().zip(cblocks) {
                    let x = u128::from_ne_bytes((*p).into()) ^ u128::from_ne_bytes(prev.into());
                    *p = x.to_ne_bytes().into();
                    prev = *c;
                }
                black_box(&scratch);
            }
        })
    });
    // The cbc crate's block mode, from the input into a scratch buffer in 64 KiB calls:
    // what ota's Opener does.
    g.bench_function("ota", |b| {
        let mut scratch = vec![0u8; 64 * 1024];
        b.iter(|| {
            let mut d = cbc::Decryptor::<aes::Aes256>::new(&SEAL_KEY.into(), &SEAL_IV.into());
            for piece in ct.chunks(64 * 1024) {
                let (input, _) = Block::slice_as_chunks(piece);
                let (output, _) = Block::slice_as_chunks_mut(&mut scratch[..piece.len()]);
                d.decrypt_blocks_b2b(input, output).unwrap();
                black_box(&scratch);
            }
        })
    });
    g.bench_function("reference-openssl-enc", |b| {
        b.iter(|| {
            shell(&format!(
                "openssl enc -d -nopad -aes-256-cbc -K {} -iv {} -in {} > /dev/null",
                hex(&SEAL_KEY),
                hex(&SEAL_IV),
                path.display()
            ))
        })
    });
    g.finish();
    // Like for like with `openssl speed -bytes 65536 -decrypt -evp aes-256-cbc`, which sets up
    // one context and decrypts one 64 KiB buffer in place, in cache, over and over (the IV
    // carried over): the same with the block mode ota uses. The 64 MiB stream above also
    // reads memory.
    let mut g = c.benchmark_group("cbc-decrypt-64k");
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("ota", |b| {
        let mut buf = ct[..64 * 1024].to_vec();
        let mut d = cbc::Decryptor::<aes::Aes256>::new(&SEAL_KEY.into(), &SEAL_IV.into());
        b.iter(|| {
            let (blocks, _) = Block::slice_as_chunks_mut(black_box(&mut buf[..]));
            d.decrypt_blocks(blocks);
            black_box(&buf);
        })
    });
    g.finish();
}

/// Runs `openssl speed` with `args` in this run and returns the numbers of the last line
/// that mentions `label`.
fn openssl_speed(args: &[&str], label: &str) -> Vec<f64> {
    let Ok(out) = std::process::Command::new("openssl")
        .args(["speed", "-elapsed"])
        .args(args)
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rfind(|l| l.contains(label)) else {
        return Vec::new();
    };
    line.split_whitespace()
        .filter_map(|w| w.trim_end_matches('k').parse().ok())
        .collect()
}

fn ed25519(c: &mut Criterion) {
    let key = SigningKey::from_secret([7; 32]);
    let public = key.public_key();
    // The size `openssl speed ed25519` signs and verifies.
    let msg = vec![0x5a; 20];
    let sig = key.sign(&msg);
    let mut g = c.benchmark_group("ed25519");
    g.bench_function("sign", |b| b.iter(|| key.sign(black_box(&msg))));
    g.bench_function("verify", |b| {
        b.iter(|| assert!(public.verify(black_box(&msg), &sig)))
    });
    g.finish();
}

fn main() {
    let mut c = ota_benches::criterion();
    seal_and_open(&mut c);
    sha256(&mut c);
    cbc_decrypt(&mut c);
    ed25519(&mut c);
    c.final_summary();
    print_ratios(&[
        ("seal", "ota", "reference-gzip-openssl", 32 * MB as u64),
        ("open", "ota", "reference-openssl-gzip", 32 * MB as u64),
        ("sha256", "ota", "reference-openssl-dgst", 256 * MB as u64),
        ("sha256", "ota", "reference-sha256sum", 256 * MB as u64),
        (
            "cbc-decrypt",
            "ota",
            "reference-openssl-enc",
            64 * MB as u64,
        ),
        (
            "cbc-decrypt",
            "aes-blocks-then-xor",
            "reference-openssl-enc",
            64 * MB as u64,
        ),
    ]);
    // The primitives as `openssl speed` measures them (no process or file I/O), in 64 KiB
    // blocks: its output is in thousands of bytes per second.
    let kbps = |args: &[&str], label| {
        openssl_speed(args, label)
            .last()
            .map(|k| k * 1000.0 / (1 << 20) as f64)
    };
    let ours = |group, id, bytes: usize| {
        ota_benches::median_ns(group, id).map(|ns| bytes as f64 / (1 << 20) as f64 / (ns / 1e9))
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "\nagainst openssl speed (primitives, 64 KiB blocks):");
    if let (Some(o), Some(r)) = (
        ours("cbc-decrypt-64k", "ota", 64 * 1024),
        kbps(
            &[
                "-seconds",
                "2",
                "-bytes",
                "65536",
                "-decrypt",
                "-evp",
                "aes-256-cbc",
            ],
            "AES-256-CBC",
        ),
    ) {
        let _ = writeln!(
            out,
            "aes-256-cbc decrypt  ota {o:>8.0} MiB/s  openssl {r:>8.0} MiB/s  {:>5.2}x",
            o / r
        );
    }
    if let (Some(o), Some(r)) = (
        ours("sha256-64k", "ota", 64 * 1024),
        kbps(
            &["-seconds", "2", "-bytes", "65536", "-evp", "sha256"],
            "sha256",
        ),
    ) {
        let _ = writeln!(
            out,
            "sha256               ota {o:>8.0} MiB/s  openssl {r:>8.0} MiB/s  {:>5.2}x",
            o / r
        );
    }
    let ed = openssl_speed(&["-seconds", "2", "ed25519"], "Ed25519");
    let per_s = |id| ota_benches::median_ns("ed25519", id).map(|ns| 1e9 / ns);
    if let (Some(s), Some(v), [.., sign, verify]) = (per_s("sign"), per_s("verify"), ed.as_slice())
    {
        let _ = writeln!(
            out,
            "ed25519 sign         ota {s:>8.0} /s     openssl {sign:>8.0} /s     {:>5.2}x",
            s / sign
        );
        let _ = writeln!(
            out,
            "ed25519 verify       ota {v:>8.0} /s     openssl {verify:>8.0} /s     {:>5.2}x",
            v / verify
        );
    }
}
