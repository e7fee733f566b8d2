//! Keys, envelopes and verified packages.

use std::ffi::c_char;

use ota_core::sign::{self, PublicKey, SigningKey, TrustedKeys, VerifiedPackage};
use ota_core::{Limits, Status};

use crate::document::ota_package;
use crate::error::{Failure, call};
use crate::ffi::{
    free_handle, random, try_mut, try_ref, try_slice, try_str, write_bytes, write_handle,
    write_text,
};

/// An Ed25519 signing key. Made by `ota_signing_key_generate` or `ota_signing_key_load`,
/// freed by `ota_signing_key_free`.
#[allow(non_camel_case_types)]
pub struct ota_signing_key {
    inner: SigningKey,
}

/// A set of trusted public keys. Made by `ota_trusted_keys_new`, freed by
/// `ota_trusted_keys_free`.
#[allow(non_camel_case_types)]
pub struct ota_trusted_keys {
    inner: TrustedKeys,
}

/// A package whose envelope was verified against trusted keys. Made by
/// `ota_envelope_verify`, freed by `ota_verified_package_free`.
#[allow(non_camel_case_types)]
pub struct ota_verified_package {
    pub(crate) inner: VerifiedPackage,
}

/// Generates a signing key from the operating system's RNG.
///
/// Takes ownership of nothing. On success, `*key_out` receives a new key that the caller must
/// free with `ota_signing_key_free`.
///
/// # Safety
///
/// `key_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_generate(key_out: *mut *mut ota_signing_key) -> Status {
    call(|| {
        let secret = random::<32>()?;
        write_handle(
            key_out,
            ota_signing_key {
                inner: SigningKey::from_secret(secret),
            },
        )
    })
}

/// Loads a PKCS#8 Ed25519 private key, PEM (`-----BEGIN PRIVATE KEY-----`) or DER.
///
/// Takes ownership of nothing. On success, `*key_out` receives a new key that the caller must
/// free with `ota_signing_key_free`.
///
/// # Safety
///
/// `pkcs8` must point to `pkcs8_len` readable bytes; `key_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_load(
    pkcs8: *const u8,
    pkcs8_len: usize,
    key_out: *mut *mut ota_signing_key,
) -> Status {
    call(|| {
        let bytes = try_slice!(pkcs8, pkcs8_len);
        let inner = SigningKey::from_pkcs8(bytes)?;
        write_handle(key_out, ota_signing_key { inner })
    })
}

/// Writes the key as PKCS#8 PEM into `buf` (NUL-terminated), its length in `*out_n`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `key` must be a live key; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_to_pem(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_ref!(key);
        unsafe { write_text(&key.inner.to_pkcs8_pem(), buf, buf_len, out_n) }
    })
}

/// Writes the key as PKCS#8 DER into `buf`, its length in `*out_n` (binary, no terminator).
///
/// Takes ownership of nothing. When `buf_len` is too small, returns
/// `OTA_STATUS_INSUFFICIENT_SIZE` with the length needed in `*out_n`.
///
/// # Safety
///
/// `key` must be a live key; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_to_der(
    key: *const ota_signing_key,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_ref!(key);
        unsafe { write_bytes(&key.inner.to_pkcs8_der(), buf, buf_len, out_n) }
    })
}

/// Writes the key's public key as 64 lowercase hex characters into `buf` (NUL-terminated).
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `key` must be a live key; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_public_key(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_ref!(key);
        unsafe { write_text(&key.inner.public_key().to_hex(), buf, buf_len, out_n) }
    })
}

/// Writes the key id (hex SHA-256 of the raw public key) into `buf` (NUL-terminated).
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `key` must be a live key; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_id(
    key: *const ota_signing_key,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let key = try_ref!(key);
        unsafe { write_text(&key.inner.key_id().to_string(), buf, buf_len, out_n) }
    })
}

/// Frees a signing key. NULL is allowed and does nothing.
///
/// # Safety
///
/// `key` must be NULL or a key not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_signing_key_free(key: *mut ota_signing_key) {
    crate::panic::guard(|| unsafe { free_handle(key) })
}

/// Makes an empty set of trusted keys.
///
/// Takes ownership of nothing. On success, `*keys_out` receives a new set that the caller
/// must free with `ota_trusted_keys_free`.
///
/// # Safety
///
/// `keys_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_new(keys_out: *mut *mut ota_trusted_keys) -> Status {
    call(|| {
        write_handle(
            keys_out,
            ota_trusted_keys {
                inner: TrustedKeys::new(),
            },
        )
    })
}

/// Trusts a public key: 64 hex characters or a PEM `PUBLIC KEY`.
///
/// Takes ownership of nothing.
///
/// # Safety
///
/// `keys` must be a live set; `public_key` must point to `public_key_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_add(
    keys: *mut ota_trusted_keys,
    public_key: *const u8,
    public_key_len: usize,
) -> Status {
    call(|| {
        let keys = try_mut!(keys);
        let text = try_str!(public_key, public_key_len);
        keys.inner.add(PublicKey::parse(text)?);
        Ok(())
    })
}

/// Frees a set of trusted keys. NULL is allowed and does nothing.
///
/// # Safety
///
/// `keys` must be NULL or a set not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_trusted_keys_free(keys: *mut ota_trusted_keys) {
    crate::panic::guard(|| unsafe { free_handle(keys) })
}

/// Signs a sealed package statement with every key: writes the DSSE envelope as JSON into
/// `buf` (NUL-terminated), its length in `*out_n`.
///
/// Takes ownership of nothing. The package must carry its chunk table and seal information
/// (`ota_package_set_sealed`), else `OTA_STATUS_NOT_SEALED`. When `buf_len` is too small (or
/// `buf` is NULL and `buf_len` 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in
/// `*out_n`; the buffer needs one more byte than that.
///
/// # Safety
///
/// `package` must be a live package; `keys` must point to `keys_len` live key pointers;
/// `buf` to `buf_len` writable bytes; `out_n` to a writable `size_t`.
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
        let package = try_ref!(package);
        if keys.is_null() && keys_len > 0 {
            return Err(Failure::new(Status::NullPointer, "`keys` is NULL"));
        }
        let ptrs = if keys_len == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(keys, keys_len) }
        };
        let mut signers = Vec::with_capacity(ptrs.len());
        for (i, p) in ptrs.iter().enumerate() {
            let k = unsafe { p.as_ref() }
                .ok_or_else(|| Failure::new(Status::NullPointer, format!("`keys[{i}]` is NULL")))?;
            signers.push(&k.inner);
        }
        let envelope = sign::sign(&package.inner, &signers)?;
        unsafe { write_text(&envelope.to_json(), buf, buf_len, out_n) }
    })
}

/// Verifies a DSSE envelope: at least `threshold` distinct trusted keys must have signed it
/// validly (signatures by unknown keys are ignored, a key that signs twice counts once).
/// Only then is the statement parsed.
///
/// Takes ownership of nothing. On success, `*package_out` receives a new verified package
/// that the caller must free with `ota_verified_package_free`. Fails with
/// `OTA_STATUS_THRESHOLD_NOT_MET`, `OTA_STATUS_SIGNATURE_INVALID`,
/// `OTA_STATUS_ENVELOPE_INVALID`, `OTA_STATUS_STATEMENT_INVALID` or `OTA_STATUS_NOT_SEALED`.
///
/// # Safety
///
/// `envelope` must point to `envelope_len` readable bytes; `keys` must be a live set;
/// `package_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_envelope_verify(
    envelope: *const u8,
    envelope_len: usize,
    keys: *const ota_trusted_keys,
    threshold: usize,
    package_out: *mut *mut ota_verified_package,
) -> Status {
    call(|| {
        let bytes = try_slice!(envelope, envelope_len);
        let keys = try_ref!(keys);
        if package_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`package_out` is NULL"));
        }
        let inner = sign::verify(bytes, &keys.inner, threshold, &Limits::DEFAULT)?;
        write_handle(package_out, ota_verified_package { inner })
    })
}

/// Writes the verified package as JSON into `buf` (NUL-terminated), its length in `*out_n`:
/// `{"id", "signed_by": [key ids], "package": {...}}`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `package` must be a live verified package; `buf` must point to `buf_len` writable bytes;
/// `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_to_json(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let v = &try_ref!(package).inner;
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
/// # Safety
///
/// `package` must be NULL or a verified package not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_free(package: *mut ota_verified_package) {
    crate::panic::guard(|| unsafe { free_handle(package) })
}
