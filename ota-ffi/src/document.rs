//! Manifests, packages and device profiles: parsed from JSON into handles, written back as
//! JSON.

use std::ffi::c_char;

use ota_core::{DeviceProfile, ModelManifest, Package, ParseError, Status};

use crate::error::{Failure, call};
use crate::ffi::{free_handle, try_ref, try_str, write_handle, write_text};

/// A validated model manifest. Made by `ota_manifest_parse`, freed by `ota_manifest_free`.
#[allow(non_camel_case_types)]
pub struct ota_manifest {
    pub(crate) inner: ModelManifest,
}

/// A validated package. Made by `ota_package_parse`, freed by `ota_package_free`.
#[allow(non_camel_case_types)]
pub struct ota_package {
    pub(crate) inner: Package,
}

/// A validated device profile. Made by `ota_profile_parse`, freed by `ota_profile_free`.
#[allow(non_camel_case_types)]
pub struct ota_profile {
    pub(crate) inner: DeviceProfile,
}

/// Parses UTF-8 JSON with `parse` and hands the result to C wrapped by `wrap`.
fn parse_into<T, H>(
    json: &str,
    parse: fn(&[u8]) -> Result<T, ParseError>,
    wrap: fn(T) -> H,
    out: *mut *mut H,
) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            "the output handle pointer is NULL",
        ));
    }
    let value = parse(json.as_bytes())?;
    write_handle(out, wrap(value))
}

/// Parses and validates a model manifest from UTF-8 JSON.
///
/// Takes ownership of nothing. On success, `*manifest_out` receives a new manifest that the
/// caller must free with `ota_manifest_free`. On failure nothing is written, and
/// `ota_last_error_message` names the offending field (`io.inputs[2].shape: ...`) or lists
/// every fault.
///
/// # Safety
///
/// `json` must point to `json_len` readable bytes; `manifest_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_parse(
    json: *const u8,
    json_len: usize,
    manifest_out: *mut *mut ota_manifest,
) -> Status {
    call(|| {
        let json = try_str!(json, json_len);
        parse_into(
            json,
            ModelManifest::from_json,
            |inner| ota_manifest { inner },
            manifest_out,
        )
    })
}

/// Writes the manifest as compact JSON into `buf` (NUL-terminated), its length in `*out_n`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `manifest` must be a live manifest; `buf` must point to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_to_json(
    manifest: *const ota_manifest,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let manifest = try_ref!(manifest);
        unsafe { write_text(&manifest.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a manifest made by `ota_manifest_parse`. NULL is allowed and does nothing.
///
/// # Safety
///
/// `manifest` must be NULL or a manifest not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_free(manifest: *mut ota_manifest) {
    crate::panic::guard(|| unsafe { free_handle(manifest) })
}

/// Parses and validates a package from UTF-8 JSON.
///
/// Takes ownership of nothing. On success, `*package_out` receives a new package that the
/// caller must free with `ota_package_free`. On failure nothing is written, and
/// `ota_last_error_message` names the offending field or lists every fault.
///
/// # Safety
///
/// `json` must point to `json_len` readable bytes; `package_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_parse(
    json: *const u8,
    json_len: usize,
    package_out: *mut *mut ota_package,
) -> Status {
    call(|| {
        let json = try_str!(json, json_len);
        parse_into(
            json,
            Package::from_json,
            |inner| ota_package { inner },
            package_out,
        )
    })
}

/// Writes the package as compact JSON into `buf` (NUL-terminated), its length in `*out_n`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `package` must be a live package; `buf` must point to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_to_json(
    package: *const ota_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let package = try_ref!(package);
        unsafe { write_text(&package.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a package made by `ota_package_parse`. NULL is allowed and does nothing.
///
/// # Safety
///
/// `package` must be NULL or a package not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_free(package: *mut ota_package) {
    crate::panic::guard(|| unsafe { free_handle(package) })
}

/// Parses and validates a device profile from UTF-8 JSON.
///
/// Takes ownership of nothing. On success, `*profile_out` receives a new profile that the
/// caller must free with `ota_profile_free`. On failure nothing is written, and
/// `ota_last_error_message` names the offending field or lists every fault.
///
/// # Safety
///
/// `json` must point to `json_len` readable bytes; `profile_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_parse(
    json: *const u8,
    json_len: usize,
    profile_out: *mut *mut ota_profile,
) -> Status {
    call(|| {
        let json = try_str!(json, json_len);
        parse_into(
            json,
            DeviceProfile::from_json,
            |inner| ota_profile { inner },
            profile_out,
        )
    })
}

/// Writes the profile as compact JSON into `buf` (NUL-terminated), its length in `*out_n`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `profile` must be a live profile; `buf` must point to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_to_json(
    profile: *const ota_profile,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let profile = try_ref!(profile);
        unsafe { write_text(&profile.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a profile made by `ota_profile_parse`. NULL is allowed and does nothing.
///
/// # Safety
///
/// `profile` must be NULL or a profile not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_free(profile: *mut ota_profile) {
    crate::panic::guard(|| unsafe { free_handle(profile) })
}
