//! `ota verify`: the signature, then the artifact's size and every chunk against the signed
//! chunk table, in one pass (the table covers every byte, so the whole artifact is not
//! hashed again).

use std::fs::File;
use std::path::PathBuf;

use ota_core::chunk::ChunkTable;
use serde_json::json;
use sha2::Digest as _;

use crate::input;
use crate::keys;
use crate::out::{CliError, Outcome};
use crate::progress;

/// `ota verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The package envelope (`package.json` from `ota pack`).
    #[arg(long)]
    package: PathBuf,
    /// The sealed artifact.
    #[arg(long)]
    artifact: PathBuf,
    /// A trusted public key: a PEM file, or 64 hex characters (repeat for several).
    #[arg(long = "trusted-key", required = true)]
    trusted_keys: Vec<String>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Also decrypt with this AES key (hex, or a file) and check the plaintext's digest.
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// Also decrypt with the AES key in this file (64 hex characters).
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// How many bad chunks are listed by index.
const LISTED: usize = 20;

/// Exit 0 when everything matches; 1 naming the first failure (every bad chunk is listed).
pub fn verify(a: &VerifyArgs, json: bool) -> Result<Outcome, CliError> {
    // Streamed, its chunk table in a file with no name in the temporary directory: memory
    // stays the same whatever the artifact's size.
    let v = input::verified_streamed(
        &a.package,
        &a.trusted_keys,
        a.threshold,
        &std::env::temp_dir(),
    )?;
    let pkg = v.package();
    let table = v.chunks();
    let file = File::open(&a.artifact).map_err(|e| CliError::io(&a.artifact, e))?;
    let size = file
        .metadata()
        .map_err(|e| CliError::io(&a.artifact, e))?
        .len();
    let bar = progress::bytes(size, "verifying", json);
    let mut r = progress::Reading {
        inner: file,
        bar: bar.clone(),
    };
    // One pass: each chunk's digest against the signed table, which covers every byte (the
    // whole artifact is not hashed again), and the size; the chunks hashed on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let check = ota_host::check::check_stream(table, pkg.size_bytes, &mut r, threads)
        .map_err(|e| CliError::io(&a.artifact, e))?;
    let (size_bytes, bad) = (check.size_bytes, check.bad);
    bar.finish_and_clear();
    let file = a.artifact.display();
    let fail = |message: String, extra: serde_json::Value| {
        let mut j = json!({"ok": false, "artifact": file.to_string(), "package_id": v.id(),
                           "error": format!("{file}: {message}")});
        if let (Some(o), Some(e)) = (j.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        Ok(Outcome::failed(format!("{file}: {message}"), j))
    };
    if size_bytes > pkg.size_bytes {
        return fail(
            format!(
                "the artifact is longer than the {} bytes the package declares (read no further)",
                pkg.size_bytes
            ),
            json!({"size_bytes": null, "expected_size_bytes": pkg.size_bytes}),
        );
    }
    if size_bytes != pkg.size_bytes {
        return fail(
            format!(
                "the artifact is {} bytes, the package declares {} ({} chunks, {} expected)",
                size_bytes,
                pkg.size_bytes,
                ChunkTable::count_for(size_bytes),
                table.len()
            ),
            json!({"size_bytes": size_bytes, "expected_size_bytes": pkg.size_bytes}),
        );
    }
    if !bad.is_empty() {
        let range = ChunkTable::range(bad[0], pkg.size_bytes);
        let listed: Vec<String> = bad.iter().take(LISTED).map(ToString::to_string).collect();
        return fail(
            format!(
                "chunk {} (bytes {}..{}) does not match its signed digest; bad chunks: {}{}",
                bad[0],
                range.start,
                range.end,
                listed.join(", "),
                if bad.len() > LISTED {
                    format!(" and {} more", bad.len() - LISTED)
                } else {
                    String::new()
                }
            ),
            json!({"bad_chunks": bad}),
        );
    }
    let mut opened = None;
    // Only when asked on the command line: OTA_SEAL_KEY alone does not make verify decrypt.
    let asked = a.key.is_some() || a.key_file.is_some();
    let key = match asked {
        true => keys::seal_key_from(a.key.as_deref(), a.key_file.as_deref(), "--key")?,
        false => None,
    };
    if let Some(key) = key {
        let src = File::open(&a.artifact).map_err(|e| CliError::io(&a.artifact, e))?;
        let expected = v.expected();
        let threads = ota_host::pipeline::default_threads();
        // Opening trusts a declared plaintext digest (the signed chunk table fixes every byte
        // it inflates, and gzip's CRC-32 checks the inflating); verify hashes the plaintext
        // and compares, so a statement whose digest does not match its artifact is caught.
        match ota_host::pipeline::open_chunked(
            src,
            &key,
            table,
            expected,
            Hashing::default(),
            threads,
        ) {
            Ok((o, hashed)) => {
                let digest = ota_core::Sha256Digest::from_bytes(hashed.0.finalize().into());
                if let Some(declared) = v.seal().map(|s| s.plaintext_sha256)
                    && declared != digest
                {
                    return fail(
                        format!(
                            "opening: the plaintext's SHA-256 is {digest}, not the signed \
                             seal.plaintext_sha256 {declared}"
                        ),
                        json!({"status": ota_core::Status::DigestMismatch.name()}),
                    );
                }
                opened = Some((o.plaintext_size, digest));
            }
            Err(e) => {
                return fail(
                    format!("opening: {e}"),
                    json!({"status": e.status().name()}),
                );
            }
        }
    }
    let signers: Vec<String> = v.signed_by().iter().map(ToString::to_string).collect();
    Ok(Outcome::ok(
        format!(
            "{file}: verified {} {} ({}): signed by {}; {} bytes, all {} chunks match the signed \
             chunk table, which covers every byte (the statement's whole-artifact sha256 is not \
             recomputed){}",
            pkg.name,
            pkg.version,
            v.id(),
            signers.join(", "),
            pkg.size_bytes,
            table.len(),
            opened
                .map(|(n, d)| format!(
                    "; opens to {n} bytes, sha256 {d}, the signed plaintext digest"
                ))
                .unwrap_or_default()
        ),
        json!({"ok": true, "artifact": file.to_string(), "package_id": v.id(), "signed_by": signers,
               "size_bytes": pkg.size_bytes, "sha256": pkg.sha256, "chunks": table.len(),
               "plaintext_size": opened.map(|o| o.0),
               "plaintext_sha256": opened.map(|o| o.1)}),
    ))
}

/// A sink that hashes what it is given.
#[derive(Default)]
struct Hashing(sha2::Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
