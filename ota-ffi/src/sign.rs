//! Keys, envelopes and verified packages.

use std::ffi::{c_char, c_int, c_void};

use ota_core::Status;
use ota_core::sign::{self, PublicKey, SigningKey, TrustedKeys, VerifiedPackage};

use crate::document::ota_package;
use crate::error::{Failure, call};
use crate::ffi::{
    LIMITS, free, handle, handle_ref, new_handle, random, try_handle, try_handle_mut, try_out,
    try_ref, try_slice, try_str, write_bytes, write_text,
};
use ota_core::chunk::TableStore;
use ota_host::table_file::TableFile;

/// An Ed25519 signing key. Made by `ota_signing_key_generate` or `ota_signing_key_load`,
/// freed by `ota_signing_key_free`.
#[allow(non_camel_case_types)]
pub struct ota_signing_key {
    inner: SigningKey,
}
handle!(ota_signing_key, ota_signing_key_free);

/// A set of trusted public keys. Made by `ota_trusted_keys_new`, freed by
/// `ota_trusted_keys_free`.
#[allow(non_camel_case_types)]
pub struct ota_trusted_keys {
    inner: TrustedKeys,
}
handle!(ota_trusted_keys, ota_trusted_keys_free);

/// A package whose envelope was verified against trusted keys, or that was resolved through
/// TUF. Made by `ota_envelope_verify` or `ota_tuf_resolve`, freed by
/// `ota_verified_package_free`.
#[allow(non_camel_case_types)]
pub struct ota_verified_package {
    pub(crate) inner: VerifiedPackage,
}
handle!(ota_verified_package, ota_verified_package_free);

/// Generates a signing key from the operating system's RNG.
///
/// Takes no ownership; the caller frees `*key_out` with `ota_signing_key_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_generate(key_out: *mut *mut ota_signing_key) -> Status {
    call(|| {
        let out = try_out!(key_out);
        let inner = SigningKey::from_secret(random::<32>()?);
        out.write(new_handle(ota_signing_key { inner }));
        Ok(())
    })
}

/// Loads a PKCS#8 Ed25519 private key, PEM (`-----BEGIN PRIVATE KEY-----`) or DER.
///
/// Takes no ownership; the caller frees `*key_out` with `ota_signing_key_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_load(
    pkcs8: *const u8,
    pkcs8_len: usize,
    key_out: *mut *mut ota_signing_key,
) -> Status {
    call(|| {
        let out = try_out!(key_out);
        let inner = SigningKey::from_pkcs8(try_slice!(pkcs8, pkcs8_len))?;
        out.write(new_handle(ota_signing_key { inner }));
        Ok(())
    })
}

/// Writes the key as PKCS#8 PEM into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_to_pem(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_handle!(key);
        unsafe { write_text(&key.inner.to_pkcs8_pem(), buf, buf_len, out_n) }
    })
}

/// Writes the key as PKCS#8 DER into `buf` (binary: no terminator, and a buffer of exactly
/// `*out_n` bytes is enough).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_to_der(
    key: *const ota_signing_key,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_handle!(key);
        unsafe { write_bytes(&key.inner.to_pkcs8_der(), buf, buf_len, out_n) }
    })
}

/// Writes the key's public key as 64 lowercase hex characters into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_public_key(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_handle!(key);
        unsafe { write_text(&key.inner.public_key().to_hex(), buf, buf_len, out_n) }
    })
}

/// Writes the key id (hex SHA-256 of the raw public key) into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_id(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_handle!(key);
        unsafe { write_text(&key.inner.key_id().to_string(), buf, buf_len, out_n) }
    })
}

/// Frees a signing key. NULL is allowed and does nothing.
///
/// Takes ownership of `key`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_free(key: *mut ota_signing_key) {
    unsafe { free(key) }
}

/// Makes an empty set of trusted keys.
///
/// Takes no ownership; the caller frees `*keys_out` with `ota_trusted_keys_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_new(keys_out: *mut *mut ota_trusted_keys) -> Status {
    call(|| {
        let out = try_out!(keys_out);
        out.write(new_handle(ota_trusted_keys {
            inner: TrustedKeys::new(),
        }));
        Ok(())
    })
}

/// Trusts a public key: 64 hex characters or a PEM `PUBLIC KEY`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_add(
    keys: *mut ota_trusted_keys,
    public_key: *const c_char,
    public_key_len: usize,
) -> Status {
    call(|| {
        let keys = try_handle_mut!(keys);
        let text = try_str!(public_key, public_key_len);
        keys.inner.add(PublicKey::parse(text)?);
        Ok(())
    })
}

/// Frees a set of trusted keys. NULL is allowed and does nothing.
///
/// Takes ownership of `keys`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_free(keys: *mut ota_trusted_keys) {
    unsafe { free(keys) }
}

/// Signs a sealed package statement with every key of the array `keys` (`keys_len` of them)
/// and writes the DSSE envelope as JSON into `buf`. The package must carry its chunk table
/// and seal information (`ota_package_set_sealed`), else `OTA_STATUS_NOT_SEALED`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_envelope_sign(
    package: *const ota_package,
    keys: *const *const ota_signing_key,
    keys_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let package = try_handle!(package);
        let ptrs = unsafe { crate::ffi::slice_of(keys, keys_len, "keys", "keys_len") }?;
        let mut signers = Vec::with_capacity(ptrs.len());
        for (i, p) in ptrs.iter().enumerate() {
            let k = unsafe { handle_ref(*p, &format!("keys[{i}]")) }?;
            signers.push(&k.inner);
        }
        let envelope = sign::sign(&package.inner, &signers)?;
        unsafe { write_text(&envelope.to_json(), buf, buf_len, out_n) }
    })
}

/// Verifies a DSSE envelope: at least `threshold` distinct trusted keys must have signed it
/// validly (signatures by unknown keys are ignored, a key that signs twice counts once).
/// Only then is the statement parsed. Fails with `OTA_STATUS_THRESHOLD_NOT_MET`,
/// `OTA_STATUS_SIGNATURE_INVALID`, `OTA_STATUS_ENVELOPE_INVALID`,
/// `OTA_STATUS_STATEMENT_INVALID` or `OTA_STATUS_NOT_SEALED`.
///
/// Takes no ownership; the caller frees `*package_out` with `ota_verified_package_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_envelope_verify(
    envelope: *const c_char,
    envelope_len: usize,
    keys: *const ota_trusted_keys,
    threshold: usize,
    package_out: *mut *mut ota_verified_package,
) -> Status {
    call(|| {
        let out = try_out!(package_out);
        let bytes = try_slice!(envelope, envelope_len);
        let keys = try_handle!(keys);
        let inner = sign::verify(bytes, &keys.inner, threshold, LIMITS)?;
        out.write(new_handle(ota_verified_package { inner }));
        Ok(())
    })
}

/// Verifies the DSSE envelope in the file `envelope_path` as `ota_envelope_verify` does,
/// without holding it: the envelope is streamed past the signature checks, and the
/// statement's chunk table is written to the file `table_path` (created, or emptied first,
/// whatever the outcome) and read back from there, checked, as chunks are verified. Memory
/// does not grow with the artifact's size; the statement is parsed and its table written only
/// once the signatures hold.
/// The table file must outlive the package (and every download and install made from it);
/// the package has no envelope to persist. Fails as `ota_envelope_verify` does, with
/// `OTA_STATUS_IO` when a file cannot be read or written, or `OTA_STATUS_INVALID_ARGUMENT`
/// when `table_path` names the envelope's own file (which is left as it was).
///
/// Takes no ownership; the caller frees `*package_out` with `ota_verified_package_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_envelope_verify_file(
    envelope_path: *const c_char,
    envelope_path_len: usize,
    table_path: *const c_char,
    table_path_len: usize,
    keys: *const ota_trusted_keys,
    threshold: usize,
    package_out: *mut *mut ota_verified_package,
) -> Status {
    call(|| {
        let out = try_out!(package_out);
        let envelope_path = try_str!(envelope_path, envelope_path_len);
        let table_path = try_str!(table_path, table_path_len);
        let keys = try_handle!(keys);
        let io = |what: &str, path: &str, e: std::io::Error| {
            Failure::new(Status::Io, format!("{what} {path:?}: {e}"))
        };
        let envelope = std::fs::File::open(envelope_path)
            .map_err(|e| io("`envelope_path`", envelope_path, e))?;
        // The table's file is emptied, so it must not be the envelope's (which would be lost):
        // compared before it is opened for writing.
        let same = match (envelope.metadata(), std::fs::metadata(table_path)) {
            (Ok(a), Ok(b)) => {
                use std::os::unix::fs::MetadataExt;
                a.dev() == b.dev() && a.ino() == b.ino()
            }
            _ => false,
        };
        if same {
            return Err(Failure::new(
                Status::InvalidArgument,
                format!("`table_path` {table_path:?} is the envelope's file"),
            ));
        }
        let table = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(table_path)
            .map_err(|e| io("`table_path`", table_path, e))?;
        let inner = sign::verify_reader(
            envelope,
            &keys.inner,
            threshold,
            LIMITS,
            Box::new(TableFile::new(table)),
        )?;
        out.write(new_handle(ota_verified_package { inner }));
        Ok(())
    })
}

/// Where `ota_envelope_verify_io` keeps a statement's chunk table: the host's storage (a
/// flash region, a file), as callbacks. Each returns 0 on success.
///
/// - `write(ctx, offset, data, len)`: store `len` bytes at `offset` (called while the
///   statement is verified, once its signatures hold).
/// - `read(ctx, offset, buf, len)`: fill `buf` with the `len` bytes stored at `offset`. It may
///   be called from several threads at once (a download's chunks checked on two threads).
///
/// What is read back is checked against a hash the library keeps for each 2 KiB block, so
/// storage that changed is found, never trusted. The block read last is kept as checked, so
/// a device checking chunks in order reads each block about once.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ota_table_io {
    /// Passed back to both callbacks untouched.
    pub ctx: *mut c_void,
    /// Stores table bytes.
    pub write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, data: *const u8, len: usize) -> c_int,
    >,
    /// Reads table bytes.
    pub read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int,
    >,
}

/// Reads `len` bytes of the envelope at `offset` into `buf`: 0 on success (all `len` bytes
/// read), anything else to stop (the verification then fails with `OTA_STATUS_IO`).
#[allow(non_camel_case_types)]
pub type ota_read_at_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int>;

/// `ota_table_io` as the core's `TableStore`.
struct HostTable {
    io: ota_table_io,
    write: unsafe extern "C" fn(*mut c_void, u64, *const u8, usize) -> c_int,
    read: unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> c_int,
}

// The host promises, as `ota_envelope_verify_io` documents, that the callbacks and `ctx` stay
// usable while the package lives, and that `read` may be called from several threads.
unsafe impl Send for HostTable {}
unsafe impl Sync for HostTable {}

impl TableStore for HostTable {
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        match unsafe { (self.write)(self.io.ctx, offset, data.as_ptr(), data.len()) } {
            0 => Ok(()),
            rc => Err(std::io::Error::other(format!("table write returned {rc}"))),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match unsafe { (self.read)(self.io.ctx, offset, buf.as_mut_ptr(), buf.len()) } {
            0 => Ok(()),
            rc => Err(std::io::Error::other(format!("table read returned {rc}"))),
        }
    }
}

/// The envelope as the host reads it: a `Read + Seek` over `envelope_read`.
struct HostEnvelope {
    read: unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> c_int,
    ctx: *mut c_void,
    size: u64,
    pos: u64,
}

impl std::io::Read for HostEnvelope {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.size.saturating_sub(self.pos))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        match unsafe { (self.read)(self.ctx, self.pos, buf.as_mut_ptr(), n) } {
            0 => {
                self.pos += n as u64;
                Ok(n)
            }
            rc => Err(std::io::Error::other(format!(
                "envelope_read returned {rc}"
            ))),
        }
    }
}

impl std::io::Seek for HostEnvelope {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            pos.ok_or_else(|| std::io::Error::other("a seek before the envelope's start"))?;
        Ok(self.pos)
    }
}

/// Verifies an envelope of `envelope_size` bytes that the host reads with `envelope_read`
/// (its context `envelope_ctx`), as `ota_envelope_verify` does, without holding it: it is
/// streamed past the signature checks, and the statement's chunk table goes to `table`'s
/// storage and is read back from there, checked, as chunks are verified. For a device with no
/// file system (`ota_envelope_verify_file` is the same over files). Memory does not grow with
/// the artifact's size; the statement is parsed and its table written only once the
/// signatures hold. `table->ctx` and its callbacks must stay usable until the package, and
/// every download, install and opener made from it, are freed; `envelope_read` is not called
/// after this returns. Fails as `ota_envelope_verify` does, or with `OTA_STATUS_IO` when a
/// callback fails.
///
/// Takes no ownership; the caller frees `*package_out` with `ota_verified_package_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_envelope_verify_io(
    envelope_size: u64,
    envelope_read: ota_read_at_fn,
    envelope_ctx: *mut c_void,
    table: *const ota_table_io,
    keys: *const ota_trusted_keys,
    threshold: usize,
    package_out: *mut *mut ota_verified_package,
) -> Status {
    call(|| {
        let out = try_out!(package_out);
        let read = envelope_read
            .ok_or_else(|| Failure::new(Status::NullPointer, "`envelope_read` is NULL"))?;
        let io = *try_ref!(table);
        let missing =
            |what: &str| Failure::new(Status::NullPointer, format!("`table->{what}` is NULL"));
        let store = HostTable {
            io,
            write: io.write.ok_or_else(|| missing("write"))?,
            read: io.read.ok_or_else(|| missing("read"))?,
        };
        let keys = try_handle!(keys);
        let source = HostEnvelope {
            read,
            ctx: envelope_ctx,
            size: envelope_size,
            pos: 0,
        };
        let inner = sign::verify_reader(source, &keys.inner, threshold, LIMITS, Box::new(store))?;
        out.write(new_handle(ota_verified_package { inner }));
        Ok(())
    })
}

/// Writes the verified package as JSON into `buf`: `{"id", "signed_by": [key ids],
/// "package": {...}}`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_to_json(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let v = &try_handle!(package).inner;
        let json = serde_json::json!({
            "id": v.id(),
            "signed_by": v.signed_by(),
            "package": v.package(),
        });
        unsafe { write_text(&json.to_string(), buf, buf_len, out_n) }
    })
}

/// Frees a verified package. NULL is allowed and does nothing.
///
/// Takes ownership of `package`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_free(package: *mut ota_verified_package) {
    unsafe { free(package) }
}
