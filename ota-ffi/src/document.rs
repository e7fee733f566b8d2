//! Manifests, packages and device profiles: parsed from JSON into handles, written back as
//! JSON.

use std::ffi::c_char;

use ota_core::{DeviceProfile, ModelManifest, Package, ParseError, Status};

use crate::error::{Failure, call};
use crate::ffi::{free, handle, new_handle, try_handle, try_out, try_str, write_text};

/// A validated model manifest. Made by `ota_manifest_parse`, freed by `ota_manifest_free`.
#[allow(non_camel_case_types)]
pub struct ota_manifest {
    pub(crate) inner: ModelManifest,
}
handle!(ota_manifest, ota_manifest_free);

/// A validated package. Made by `ota_package_parse`, freed by `ota_package_free`.
#[allow(non_camel_case_types)]
pub struct ota_package {
    pub(crate) inner: Package,
}
handle!(ota_package, ota_package_free);

/// A validated device profile. Made by `ota_profile_parse`, freed by `ota_profile_free`.
#[allow(non_camel_case_types)]
pub struct ota_profile {
    pub(crate) inner: DeviceProfile,
}
handle!(ota_profile, ota_profile_free);

/// Parses UTF-8 JSON with `parse`: the value to wrap in a new handle.
fn parse<T>(json: &str, parse: fn(&[u8]) -> Result<T, ParseError>) -> Result<T, Failure> {
    Ok(parse(json.as_bytes())?)
}

/// Parses and validates a model manifest from UTF-8 JSON. On failure,
/// `ota_last_error_message` names the offending field (`io.inputs[2].shape: ...`) or lists
/// every fault.
///
/// Takes no ownership; the caller frees `*manifest_out` with `ota_manifest_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_parse(
    json: *const c_char,
    json_len: usize,
    manifest_out: *mut *mut ota_manifest,
) -> Status {
    call(|| {
        let out = try_out!(manifest_out);
        let inner = parse(try_str!(json, json_len), ModelManifest::from_json)?;
        out.write(new_handle(ota_manifest { inner }));
        Ok(())
    })
}

/// Writes the manifest as compact JSON into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_to_json(
    manifest: *const ota_manifest,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let manifest = try_handle!(manifest);
        unsafe { write_text(&manifest.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a manifest. NULL is allowed and does nothing.
///
/// Takes ownership of `manifest`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_manifest_free(manifest: *mut ota_manifest) {
    unsafe { free(manifest) }
}

/// Parses and validates a package from UTF-8 JSON. On failure, `ota_last_error_message`
/// names the offending field or lists every fault.
///
/// Takes no ownership; the caller frees `*package_out` with `ota_package_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_parse(
    json: *const c_char,
    json_len: usize,
    package_out: *mut *mut ota_package,
) -> Status {
    call(|| {
        let out = try_out!(package_out);
        let inner = parse(try_str!(json, json_len), Package::from_json)?;
        out.write(new_handle(ota_package { inner }));
        Ok(())
    })
}

/// Writes the package as compact JSON into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_to_json(
    package: *const ota_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let package = try_handle!(package);
        unsafe { write_text(&package.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a package. NULL is allowed and does nothing.
///
/// Takes ownership of `package`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_package_free(package: *mut ota_package) {
    unsafe { free(package) }
}

/// Parses and validates a device profile from UTF-8 JSON. On failure,
/// `ota_last_error_message` names the offending field or lists every fault.
///
/// The profile (docs/c-api.md has a complete example): `"device_id"`, `"device_type"`,
/// `"hardware_profile"` (names), `"arch"` (`arm64`, `armv7`, `x86_64`, `riscv64`),
/// `"accelerators"?`, `"memory_mb"?`, `"runtimes"?`, `"firmware"?`, `"installed"?` (package
/// name to installed version), `"allowed_channels"?` (default `["stable"]`), `"labels"?`
/// (name to text; a rollout's `target_profile_id` matches the label `profile`).
///
/// Takes no ownership; the caller frees `*profile_out` with `ota_profile_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_parse(
    json: *const c_char,
    json_len: usize,
    profile_out: *mut *mut ota_profile,
) -> Status {
    call(|| {
        let out = try_out!(profile_out);
        let inner = parse(try_str!(json, json_len), DeviceProfile::from_json)?;
        out.write(new_handle(ota_profile { inner }));
        Ok(())
    })
}

/// Writes the profile as compact JSON into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_to_json(
    profile: *const ota_profile,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let profile = try_handle!(profile);
        unsafe { write_text(&profile.inner.to_json(), buf, buf_len, out_n) }
    })
}

/// Frees a profile. NULL is allowed and does nothing.
///
/// Takes ownership of `profile`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_profile_free(profile: *mut ota_profile) {
    unsafe { free(profile) }
}
