//! Streaming seal and open, encryption keys, and publish_artifact.py's registration record.

use std::ffi::{c_char, c_void};
use std::io::Write as _;

use ota_core::Status;
use ota_core::digest::Sha256Digest;
use ota_core::name::Name;
use ota_core::registration::{Registration, Store};
use ota_core::seal::{self, ChunkedOpener, Opened, SealKey, Sealed, Sealer};
use ota_host::pipeline;

use crate::document::ota_package;
use crate::error::{Failure, call};
use crate::ffi::{
    CallbackWriter, Disarm, LIMITS, free, handle, key32, new_handle, ota_write_fn, random,
    try_handle, try_handle_mut, try_out, try_slice, try_str, write_text,
};
use crate::fs::Named;
use crate::sign::ota_verified_package;
use crate::stream::Stream;

/// A streaming sealer. Made by `ota_sealer_new` or `ota_sealer_new_reproducible`, freed by
/// `ota_sealer_free`.
#[allow(non_camel_case_types)]
pub struct ota_sealer {
    /// Stops the write callback before the rest is dropped: freeing never calls back.
    _disarm: Disarm,
    state: Stream<Sealer<CallbackWriter>, Sealed>,
}
handle!(ota_sealer, ota_sealer_free);

/// A streaming opener that checks every chunk against a verified package's chunk table
/// before decrypting it. Made by `ota_opener_new`, freed by `ota_opener_free`.
#[allow(non_camel_case_types)]
pub struct ota_opener {
    /// Stops the write callback before the rest is dropped: freeing never calls back.
    _disarm: Disarm,
    state: Stream<ChunkedOpener<CallbackWriter>, Opened>,
}
handle!(ota_opener, ota_opener_free);

/// Fills `key_out` (`key_len` bytes, which must be 32) with a new encryption key from the
/// operating system's RNG.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_seal_key_generate(key_out: *mut u8, key_len: usize) -> Status {
    call(|| {
        if key_len != 32 {
            return Err(Failure::new(
                Status::InvalidKey,
                format!("an encryption key is 32 bytes, not {key_len}"),
            ));
        }
        if key_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`key_out` is NULL"));
        }
        let key = random::<32>()?;
        unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), key_out, 32) };
        Ok(())
    })
}

fn seal_key(key: &[u8]) -> Result<SealKey, Failure> {
    Ok(SealKey::from_bytes(key32(key, "an encryption key")?))
}

/// Makes a sealer with a random IV that writes the sealed artifact to `write(ctx, ...)`.
///
/// `ctx` is passed back to `write` untouched; `write` must stay callable until the sealer is
/// finished or freed.
///
/// Takes no ownership; the caller frees `*sealer_out` with `ota_sealer_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sealer_new(
    key: *const u8,
    key_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    sealer_out: *mut *mut ota_sealer,
) -> Status {
    call(|| {
        let handle_out = try_out!(sealer_out);
        let key = seal_key(try_slice!(key, key_len))?;
        let out = CallbackWriter::new(write, ctx)?;
        let disarm = out.disarm();
        let sealer = Sealer::new(&key, random::<16>()?, out)?;
        handle_out.write(new_handle(ota_sealer {
            _disarm: disarm,
            state: Stream::new(sealer),
        }));
        Ok(())
    })
}

/// Makes a reproducible sealer: the IV is derived from the key and the plaintext's SHA-256
/// (32 raw bytes, computed by the caller first), so the same input and key always give the
/// same bytes. `ota_sealer_finish` fails with `OTA_STATUS_PLAINTEXT_MISMATCH` if the plaintext
/// written has another digest.
///
/// `ctx` is passed back to `write` untouched; `write` must stay callable until the sealer is
/// finished or freed.
///
/// Takes no ownership; the caller frees `*sealer_out` with `ota_sealer_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sealer_new_reproducible(
    key: *const u8,
    key_len: usize,
    plaintext_sha256: *const u8,
    plaintext_sha256_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    sealer_out: *mut *mut ota_sealer,
) -> Status {
    call(|| {
        let handle_out = try_out!(sealer_out);
        let key = seal_key(try_slice!(key, key_len))?;
        let digest = try_slice!(plaintext_sha256, plaintext_sha256_len);
        let digest: [u8; 32] = digest.try_into().map_err(|_| {
            Failure::new(
                Status::InvalidArgument,
                "`plaintext_sha256` is 32 raw bytes",
            )
        })?;
        let out = CallbackWriter::new(write, ctx)?;
        let disarm = out.disarm();
        let sealer = Sealer::reproducible(&key, Sha256Digest::from_bytes(digest), out)?;
        handle_out.write(new_handle(ota_sealer {
            _disarm: disarm,
            state: Stream::new(sealer),
        }));
        Ok(())
    })
}

/// Seals the next plaintext bytes; sealed bytes go to the write callback as they are ready.
///
/// After a failure the sealer refuses further calls.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sealer_write(
    sealer: *mut ota_sealer,
    data: *const u8,
    data_len: usize,
) -> Status {
    call(|| {
        let sealer = try_handle_mut!(sealer);
        let data = try_slice!(data, data_len);
        sealer.state.step("sealer", |s| {
            s.write_all(data)
                .map_err(|e| Failure::from(seal::SealError::from(e)))
        })
    })
}

/// Finishes sealing (the gzip trailer and the padding go to the write callback) and writes
/// what was sealed as JSON into `buf`: `{"sha256", "size_bytes",
/// "plaintext_size", "plaintext_sha256", "iv", "chunks"}`, and `"segments"` when the
/// plaintext is longer than one 1 MiB segment (where each starts in the gzip stream).
/// Calling it again returns the same JSON.
///
/// `OTA_STATUS_INSUFFICIENT_SIZE` loses nothing: the sealer stays finished, and the call can
/// be repeated with a larger buffer.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sealer_finish(
    sealer: *mut ota_sealer,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let sealer = try_handle_mut!(sealer);
        let sealed = sealer.state.finish("sealer", |s| Ok(s.finish()?.0))?;
        unsafe { write_text(&ota_core::json::to_string(sealed), buf, buf_len, out_n) }
    })
}

/// Frees a sealer. NULL is allowed and does nothing.
///
/// Takes ownership of `sealer`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sealer_free(sealer: *mut ota_sealer) {
    unsafe { free(sealer) }
}

/// Sets a package's artifact fields from a finished sealer: `sha256`, `size_bytes`, the
/// chunk table and the seal information. The package can then be signed.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_set_sealed(
    package: *mut ota_package,
    sealer: *const ota_sealer,
) -> Status {
    call(|| {
        let package = try_handle_mut!(package);
        let sealer = try_handle!(sealer);
        package.inner.set_sealed(sealer.state.finished("sealer")?);
        Ok(())
    })
}

/// Makes an opener for a verified package's artifact, with its encryption key. Plaintext
/// goes to `write(ctx, ...)`; it is complete only when `ota_opener_finish` succeeds.
///
/// `ctx` is passed back to `write` untouched; `write` must stay callable until the opener is
/// finished or freed.
///
/// Takes no ownership; the caller frees `*opener_out` with `ota_opener_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_opener_new(
    package: *const ota_verified_package,
    key: *const u8,
    key_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    opener_out: *mut *mut ota_opener,
) -> Status {
    call(|| {
        let handle_out = try_out!(opener_out);
        let package = &try_handle!(package).inner;
        let key = seal_key(try_slice!(key, key_len))?;
        let out = CallbackWriter::new(write, ctx)?;
        let disarm = out.disarm();
        let opener = ChunkedOpener::new(&key, package.chunks().clone(), package.expected(), out);
        handle_out.write(new_handle(ota_opener {
            _disarm: disarm,
            state: Stream::new(opener),
        }));
        Ok(())
    })
}

/// Takes the next bytes of the sealed artifact, in order. Each 64 KiB chunk is checked
/// against the signed chunk table as soon as it is complete, and only then decrypted.
///
/// After a failure (`OTA_STATUS_CHUNK_DIGEST_MISMATCH` naming the chunk,
/// `OTA_STATUS_TOO_LONG`, `OTA_STATUS_PLAINTEXT_TOO_LARGE`, ...) the opener refuses further
/// calls and the plaintext written so far must be discarded.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_opener_write(
    opener: *mut ota_opener,
    data: *const u8,
    data_len: usize,
) -> Status {
    call(|| {
        let opener = try_handle_mut!(opener);
        let data = try_slice!(data, data_len);
        opener
            .state
            .step("opener", |o| o.update(data).map_err(Failure::from))
    })
}

/// Ends the artifact: checks its size and SHA-256, the padding, the gzip stream, and the
/// plaintext's size and digest, and writes `{"plaintext_size", "plaintext_sha256"}` into
/// `buf`. Only success means the plaintext is complete. Calling it again
/// returns the same JSON.
///
/// `OTA_STATUS_INSUFFICIENT_SIZE` loses nothing: the opener stays finished, and the call can
/// be repeated with a larger buffer.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_opener_finish(
    opener: *mut ota_opener,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let opener = try_handle_mut!(opener);
        let opened = opener.state.finish("opener", |o| Ok(o.finish()?.0))?;
        unsafe { write_text(&ota_core::json::to_string(opened), buf, buf_len, out_n) }
    })
}

/// Frees an opener. NULL is allowed and does nothing.
///
/// Takes ownership of `opener`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_opener_free(opener: *mut ota_opener) {
    unsafe { free(opener) }
}

/// The most inflating threads `ota_verified_package_open_file` takes: each holds about two
/// segments in flight (4 MiB for the 1 MiB segments `ota` seals).
const MAX_OPEN_THREADS: u64 = 16;

/// Opens a verified package's sealed artifact file into `out_path`, as `ota unpack` does: every
/// 64 KiB chunk is checked against the signed chunk table before it is decrypted, the
/// plaintext's length, gzip CRC-32 and declared size are checked (its declared SHA-256 is not
/// recomputed: the signed chunk table fixes every byte), and it is written through a temporary
/// file beside `out_path`, synced and renamed over it only on success. A failure leaves no
/// output file behind and an existing `out_path` untouched. A symbolic link at `out_path` is
/// replaced, never followed; a directory, or a path with no file name, is
/// `OTA_STATUS_INVALID_ARGUMENT` before anything is read.
///
/// `threads`: 1 opens on the calling thread alone; 2 or more verify and decrypt on the calling
/// thread while that many others inflate the package's segments (a package sealed without
/// segments: one other thread inflates); 0 chooses for this machine (2 with two cores or
/// more, else 1). More than 16 is `OTA_STATUS_INVALID_ARGUMENT`. The output is the same bytes
/// whatever the count. A read error names `artifact_path`, a write error `out_path`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_open_file(
    package: *const ota_verified_package,
    key: *const u8,
    key_len: usize,
    artifact_path: *const c_char,
    artifact_path_len: usize,
    out_path: *const c_char,
    out_path_len: usize,
    threads: u64,
) -> Status {
    call(|| {
        let package = &try_handle!(package).inner;
        let key = seal_key(try_slice!(key, key_len))?;
        let artifact_path = try_str!(artifact_path, artifact_path_len);
        let out_path = try_str!(out_path, out_path_len);
        let threads = match threads {
            0 => pipeline::default_threads(),
            n if n <= MAX_OPEN_THREADS => n as usize,
            n => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!("threads: {n} is more than {MAX_OPEN_THREADS}"),
                ));
            }
        };
        let source = std::fs::File::open(artifact_path)
            .map_err(|e| Failure::new(Status::Io, format!("{artifact_path}: {e}")))?;
        crate::fs::write_atomically("out_path", std::path::Path::new(out_path), |out| {
            pipeline::open_chunked(
                Named::new(artifact_path, source),
                &key,
                package.chunks(),
                package.expected(),
                out,
                threads,
            )
            .map(|_| ())
            .map_err(Failure::from)
        })
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationParams {
    resource_name: Name,
    dev_stage: Name,
    architecture: Name,
    version: Name,
    s3_endpoint: String,
    bucket: String,
    #[serde(default)]
    cdn_base: Option<String>,
}

/// Builds publish_artifact.py's registration record for an artifact a finished sealer produced with
/// `key`, and writes it as JSON into `buf`. `params` is JSON:
/// `{"resource_name", "dev_stage", "architecture", "version", "s3_endpoint", "bucket",
/// "cdn_base"?}`. The record holds the key: treat it as a secret.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_registration_build(
    sealer: *const ota_sealer,
    key: *const u8,
    key_len: usize,
    params: *const c_char,
    params_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let sealer = try_handle!(sealer);
        let key = seal_key(try_slice!(key, key_len))?;
        let params = try_str!(params, params_len);
        let p: RegistrationParams = ota_core::json::from_slice(
            "registration parameters",
            params.as_bytes(),
            LIMITS.max_document_bytes,
        )?;
        let sealed = sealer.state.finished("sealer")?;
        let store = Store {
            s3_endpoint: p.s3_endpoint,
            bucket: p.bucket,
            cdn_base: p.cdn_base,
        };
        let r = Registration::new(
            p.resource_name,
            p.dev_stage,
            p.architecture,
            p.version,
            sealed,
            &key,
            &store,
        );
        unsafe { write_text(&r.to_json(), buf, buf_len, out_n) }
    })
}

/// Writes a registration record's object key, `{dev_stage}/{resource_name}-{architecture}-
/// {version}.enc`, into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_registration_object_key(
    registration: *const c_char,
    registration_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let json = try_str!(registration, registration_len);
        let r = Registration::from_json(json.as_bytes())?;
        unsafe { write_text(&r.object_key(), buf, buf_len, out_n) }
    })
}

/// Opens a sealed artifact file known by its registration record alone (as in
/// publish_artifact.py): checks its size and SHA-256 before decrypting anything, bounds the
/// plaintext by `max_plaintext`, and writes it to `out_path` through a temporary file renamed
/// only on success, so a failure leaves no output file behind.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_registration_open_file(
    registration: *const c_char,
    registration_len: usize,
    artifact_path: *const c_char,
    artifact_path_len: usize,
    out_path: *const c_char,
    out_path_len: usize,
    max_plaintext: u64,
) -> Status {
    call(|| {
        let r = Registration::from_json(try_str!(registration, registration_len).as_bytes())?;
        let artifact_path = try_str!(artifact_path, artifact_path_len);
        let out_path = try_str!(out_path, out_path_len);
        let io = |what: &str, e: std::io::Error| Failure::new(Status::Io, format!("{what}: {e}"));
        let source = std::fs::File::open(artifact_path).map_err(|e| io(artifact_path, e))?;
        crate::fs::write_atomically("out_path", std::path::Path::new(out_path), |out| {
            seal::open_checked(
                Named::new(artifact_path, source),
                &r.encryption_key,
                r.expected(max_plaintext),
                out,
            )
            .map(|_| ())
            .map_err(Failure::from)
        })
    })
}
