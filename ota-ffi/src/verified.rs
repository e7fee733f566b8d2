//! A verified package's signed fields, one accessor each, so a C client need not parse the
//! JSON of `ota_verified_package_to_json`.

use std::ffi::c_char;

use ota_core::{Status, VerifiedPackage};

use crate::error::call;
use crate::ffi::{try_handle, try_out, write_text};
use crate::sign::ota_verified_package;

/// The body of the text accessors: writes what `field` gives of the package into `buf`.
unsafe fn write_field(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
    field: impl FnOnce(&VerifiedPackage) -> String,
) -> Status {
    call(|| {
        let v = &try_handle!(package).inner;
        unsafe { write_text(&field(v), buf, buf_len, out_n) }
    })
}

/// Writes the package's id (`pkg_` and 16 hex digits: what assignments, reports and the
/// control plane name it by) into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_id(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    unsafe { write_field(package, buf, buf_len, out_n, |v| v.id().to_string()) }
}

/// Writes the package's name (`temp-sensor-fw`) into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_name(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    unsafe {
        write_field(package, buf, buf_len, out_n, |v| {
            v.package().name.to_string()
        })
    }
}

/// Writes the package's version (`2.0.0`, semver) into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_version(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    unsafe {
        write_field(package, buf, buf_len, out_n, |v| {
            v.package().version.to_string()
        })
    }
}

/// Writes the signed SHA-256 of the artifact (64 lowercase hex digits: a `char[65]` holds
/// it) into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_sha256(
    package: *const ota_verified_package,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    unsafe {
        write_field(package, buf, buf_len, out_n, |v| {
            v.package().sha256.to_hex()
        })
    }
}

/// The signed size of the artifact in bytes, into `*size_out`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_size(
    package: *const ota_verified_package,
    size_out: *mut u64,
) -> Status {
    call(|| {
        let out = try_out!(size_out);
        let v = &try_handle!(package).inner;
        out.write(v.package().size_bytes);
        Ok(())
    })
}

/// The number of 64 KiB chunks in the artifact's signed chunk table (what an agent fetches),
/// into `*count_out`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_verified_package_chunk_count(
    package: *const ota_verified_package,
    count_out: *mut u64,
) -> Status {
    call(|| {
        let out = try_out!(count_out);
        let v = &try_handle!(package).inner;
        let n = u64::try_from(v.chunks().len()).map_err(|_| {
            crate::error::Failure::new(Status::InvalidValue, "the chunk count exceeds 64 bits")
        })?;
        out.write(n);
        Ok(())
    })
}
