//! The C ABI of `ota`, declared in `include/ota.h`.
//!
//! Conventions (the same in every function):
//!
//! - Functions are named `ota_<object>_<verb>`; the object comes first, then inputs, then
//!   outputs named `*_out`, written only on success.
//! - Every function that can fail returns an `ota_status`; `OTA_STATUS_OK` is 0. The detail of
//!   the last failure on the calling thread is in `ota_last_error_message`.
//! - Bytes are a `const uint8_t *` and a `size_t` length, text a `const char *` (UTF-8, no
//!   terminator needed) and its length; a zero-length input may be NULL.
//! - Output text goes into a caller buffer `(buf, buf_len, out_n)`: NUL-terminated, with its
//!   length (without the NUL) in `*out_n`. A buffer that is too small (or NULL with
//!   `buf_len` 0) gives `OTA_STATUS_INSUFFICIENT_SIZE` and the length in `*out_n`: call again
//!   with `*out_n + 1` bytes; nothing is lost. Binary output is the same without the NUL.
//! - Handles are opaque and type-checked: a NULL handle gives `OTA_STATUS_NULL_POINTER`, a
//!   handle of another type `OTA_STATUS_WRONG_HANDLE`. Every constructor has a `_free` that
//!   accepts NULL. Each function's documentation ends with what it takes ownership of and
//!   what the caller frees, in the same words each time.
//! - No panic crosses the boundary: it becomes `OTA_STATUS_PANIC` (or NULL).
//!
//! The safety contract is the same for every function and is stated here once, not per
//! function: each pointer is NULL (where allowed) or valid for its documented length or
//! type, handles are live (not freed) handles of this library, and a callback stays callable
//! as long as the object it was given to.
//!
//! The Python module in `python/ota` wraps this library with ctypes.
#![deny(missing_docs)]
// The safety contract is stated once above, not in a `# Safety` section per function.
#![allow(clippy::missing_safety_doc)]

// The modules in the order `include/ota.h` presents them (cbindgen follows this order): the
// machinery and errors, documents, the publisher, the control plane, the device, TUF. Each
// group is its own block so rustfmt keeps the order.
mod ffi;
mod fs;
mod panic;
mod stream;

mod error;

mod document;

mod sign;
mod verified;

mod seal;

mod compat;

mod rollout;

mod device_io;
mod download;
mod file_device;

mod agent;
mod report;

#[cfg(feature = "probe-runners")]
mod probe;

#[cfg(feature = "tuf")]
mod tuf;

pub use agent::{
    ota_agent, ota_agent_free, ota_agent_handle_assignment, ota_agent_handle_chunk,
    ota_agent_handle_probe_result, ota_agent_handle_restored, ota_agent_handle_swapped,
    ota_agent_handle_tick, ota_agent_handle_verified_assignment, ota_agent_installed_version,
    ota_agent_new, ota_agent_poll, ota_agent_restore, ota_agent_state, ota_agent_timeout,
    ota_command, ota_command_kind,
};
pub use compat::{ota_compat_check, ota_compat_check_fleet, ota_sbom_validate};
pub use device_io::ota_device_io;
pub use document::{
    ota_manifest, ota_manifest_free, ota_manifest_parse, ota_manifest_to_json, ota_package,
    ota_package_free, ota_package_parse, ota_package_to_json, ota_profile, ota_profile_free,
    ota_profile_parse, ota_profile_to_json,
};
pub use download::{
    ota_download, ota_download_accept, ota_download_free, ota_download_new, ota_download_plan,
    ota_download_progress, ota_download_resume, ota_download_state, ota_install,
    ota_install_advance, ota_install_finish, ota_install_free, ota_install_new,
};
pub use error::{ota_last_error_message, ota_status_message, ota_status_name};
pub use ffi::ota_write_fn;
pub use file_device::{
    ota_file_device, ota_file_device_active_file, ota_file_device_free, ota_file_device_io,
    ota_file_device_open, ota_file_device_persist, ota_file_device_record, ota_file_device_restore,
    ota_file_device_swap,
};
pub use ota_core::Status;
#[cfg(feature = "probe-runners")]
pub use probe::ota_probe_run;
pub use report::{ota_report_parse_status, ota_report_status};
pub use rollout::{
    ota_audit_verify, ota_audit_verify_head, ota_rollout, ota_rollout_command, ota_rollout_create,
    ota_rollout_free, ota_rollout_handle_report, ota_rollout_handle_tick, ota_rollout_join,
    ota_rollout_leave, ota_rollout_output, ota_rollout_poll, ota_rollout_replay,
    ota_rollout_restore, ota_rollout_snapshot, ota_rollout_status, ota_rollout_timeout,
};
pub use seal::{
    ota_opener, ota_opener_finish, ota_opener_free, ota_opener_new, ota_opener_write,
    ota_package_set_sealed, ota_registration_build, ota_registration_object_key,
    ota_registration_open_file, ota_seal_key_generate, ota_sealer, ota_sealer_finish,
    ota_sealer_free, ota_sealer_new, ota_sealer_new_reproducible, ota_sealer_write,
    ota_verified_package_open_file,
};
pub use sign::{
    ota_envelope_sign, ota_envelope_verify, ota_signing_key, ota_signing_key_free,
    ota_signing_key_generate, ota_signing_key_id, ota_signing_key_load, ota_signing_key_public_key,
    ota_signing_key_to_der, ota_signing_key_to_pem, ota_trusted_keys, ota_trusted_keys_add,
    ota_trusted_keys_free, ota_trusted_keys_new, ota_verified_package, ota_verified_package_free,
    ota_verified_package_to_json,
};
#[cfg(feature = "tuf")]
pub use tuf::{
    ota_tuf_client, ota_tuf_client_free, ota_tuf_client_new, ota_tuf_download,
    ota_tuf_download_file, ota_tuf_refresh, ota_tuf_repo, ota_tuf_repo_free, ota_tuf_resolve,
    ota_tuf_trust_center,
};
pub use verified::{
    ota_verified_package_chunk_count, ota_verified_package_id, ota_verified_package_name,
    ota_verified_package_sha256, ota_verified_package_size, ota_verified_package_version,
};

/// `ota_build.h` of this build: its version and feature macros (`OTA_VERSION_MAJOR`, ...,
/// `OTA_HAS_TUF`, `OTA_HAS_PROBE_RUNNERS`), as the build script wrote it from Cargo's
/// metadata. `include/ota_build.h` is the default build's.
pub const BUILD_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/ota_build.h"));

/// The SONAME of `libota.so` (`libota.so.0.1`: the ABI part of the version).
pub const SONAME: &str = env!("OTA_SONAME");

/// The version of the library (`"0.1.0"`): a static string.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn ota_version() -> *const std::ffi::c_char {
    panic::guard(|| {
        static VERSION: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
        VERSION
            .get_or_init(|| std::ffi::CString::new(ota_core::VERSION).unwrap_or_default())
            .as_ptr()
    })
}
