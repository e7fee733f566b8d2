//! The rollout engine and the audit trail.

use std::ffi::c_char;

use ota_core::audit;
use ota_core::name::Name;
use ota_core::plan::RolloutSpec;
use ota_core::report::DeviceReport;
use ota_core::rollout::{Create, Rollout};
use ota_core::{DeviceProfile, Limits, Status};

use crate::error::{Failure, call};
use crate::ffi::{
    free_handle, try_mut, try_ref, try_slice, try_str, write_handle, write_out, write_text,
};
use crate::sign::{ota_trusted_keys, ota_verified_package};

/// A rollout. Made by `ota_rollout_create`, `ota_rollout_replay` or `ota_rollout_restore`, freed by
/// `ota_rollout_free`.
#[allow(non_camel_case_types)]
pub struct ota_rollout {
    inner: Rollout,
    /// Outputs taken from the engine but not yet copied out (the caller's buffer was small).
    command: Option<String>,
    event: Option<String>,
    audit: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJson {
    rollout_id: Name,
    tenant: Name,
    created_by: Name,
    spec: serde_json::Value,
}

fn rollout_error(e: ota_core::rollout::RolloutError) -> Failure {
    Failure::new(e.status(), e.to_string())
}

fn name(bytes: &str, what: &str) -> Result<Name, Failure> {
    bytes
        .parse()
        .map_err(|e| Failure::new(Status::InvalidArgument, format!("{what}: {e}")))
}

/// Creates a rollout. `config` is JSON: `{"rollout_id", "tenant", "created_by", "spec"}`,
/// where `spec` is seed 004's rollout request (`package_id`, `target_profile_id` or `target`,
/// `canary_percent`, `failure_threshold_percent`, `rollback_package_id`, and the optional
/// waves, halt rule, timeouts, retries, pacing and windows). `fleet` is a JSON array of device
/// profiles. `rollback` may be NULL when the request names no rollback package.
///
/// Takes ownership of nothing. On success, `*rollout_out` receives a new rollout that the
/// caller must free with `ota_rollout_free`; the canary's commands, the `started` event and
/// the first audit record are waiting to be polled.
///
/// # Safety
///
/// `config` must point to `config_len` readable bytes and `fleet` to `fleet_len`; `package`
/// must be a live verified package and `rollback` NULL or one; `rollout_out` must point to a
/// writable pointer.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_rollout_create(
    config: *const u8,
    config_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    fleet: *const u8,
    fleet_len: usize,
    now: u64,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let inputs =
            unsafe { Inputs::read(config, config_len, package, rollback, fleet, fleet_len)? };
        if rollout_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`rollout_out` is NULL"));
        }
        let inner = Rollout::create(inputs.create(now)).map_err(rollout_error)?;
        write_handle(rollout_out, ota_rollout::new(inner))
    })
}

/// Rebuilds a rollout from the inputs it was created with (the same arguments as
/// `ota_rollout_create`, `now` included) and its audit trail, one JSON record per line. The
/// trail is verified first; every record the replay writes must equal the trail's, or the call
/// fails with `OTA_STATUS_REPLAY_MISMATCH` naming the first record that differs.
///
/// Takes ownership of nothing. On success, `*rollout_out` receives a new rollout, in exactly
/// the state of the one that wrote the trail, that the caller must free with
/// `ota_rollout_free`; nothing is pending on it.
///
/// # Safety
///
/// As for `ota_rollout_create`; `trail` must point to `trail_len` readable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_rollout_replay(
    config: *const u8,
    config_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    fleet: *const u8,
    fleet_len: usize,
    now: u64,
    trail: *const u8,
    trail_len: usize,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let inputs =
            unsafe { Inputs::read(config, config_len, package, rollback, fleet, fleet_len)? };
        let records = audit::parse_lines(try_str!(trail, trail_len)).map_err(audit_error)?;
        if rollout_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`rollout_out` is NULL"));
        }
        let inner = Rollout::replay(inputs.create(now), &records).map_err(rollout_error)?;
        write_handle(rollout_out, ota_rollout::new(inner))
    })
}

/// What `ota_rollout_create` and `ota_rollout_replay` read.
struct Inputs<'a> {
    config: CreateJson,
    spec: RolloutSpec,
    package: &'a ota_core::sign::VerifiedPackage,
    rollback: Option<&'a ota_core::sign::VerifiedPackage>,
    fleet: Vec<DeviceProfile>,
}

impl<'a> Inputs<'a> {
    unsafe fn read(
        config: *const u8,
        config_len: usize,
        package: *const ota_verified_package,
        rollback: *const ota_verified_package,
        fleet: *const u8,
        fleet_len: usize,
    ) -> Result<Inputs<'a>, Failure> {
        let config: CreateJson =
            ota_core::json::from_slice("rollout config", try_slice!(config, config_len), 1 << 20)?;
        let spec = RolloutSpec::from_json(config.spec.to_string().as_bytes())?;
        let package = &try_ref!(package).inner;
        let rollback = unsafe { rollback.as_ref() }.map(|r| &r.inner);
        let fleet = DeviceProfile::fleet_from_json(try_slice!(fleet, fleet_len), &Limits::DEFAULT)?;
        Ok(Inputs {
            config,
            spec,
            package,
            rollback,
            fleet,
        })
    }

    fn create(&self, now: u64) -> Create<'_> {
        Create {
            rollout_id: self.config.rollout_id.clone(),
            tenant: self.config.tenant.clone(),
            spec: self.spec.clone(),
            package: self.package,
            rollback: self.rollback,
            fleet: &self.fleet,
            by: self.config.created_by.clone(),
            now,
        }
    }
}

impl ota_rollout {
    fn new(inner: Rollout) -> Self {
        ota_rollout {
            inner,
            command: None,
            event: None,
            audit: None,
        }
    }
}

fn audit_error(e: ota_core::audit::AuditError) -> Failure {
    Failure::new(e.status(), e.to_string())
}

/// Gives the rollout a device's report (seed 004: `{"device_id", "rollout_id",
/// "firmware_version", "status", "reason"}`). A late report is recorded but changes nothing.
///
/// # Safety
///
/// `rollout` must be a live rollout; `report` must point to `report_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_handle_report(
    rollout: *mut ota_rollout,
    report: *const u8,
    report_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let report = DeviceReport::from_json(try_slice!(report, report_len), &Limits::DEFAULT)?;
        r.inner.handle_report(&report, now).map_err(rollout_error)
    })
}

/// Tells the rollout the time: timers fire, soaked waves open, paced commands go out.
///
/// # Safety
///
/// `rollout` must be a live rollout.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_handle_tick(rollout: *mut ota_rollout, now: u64) -> Status {
    call(|| {
        try_mut!(rollout).inner.handle_tick(now);
        Ok(())
    })
}

/// An operator command on a rollout: `command` is `"pause"`, `"resume"`, `"abort"`,
/// `"rollback"`, `"approve"` (of wave `wave`), `"pass"` or `"fail"` (an external verdict on
/// wave `wave`); `by` names who gave it, for the audit trail. A command that does not fit the
/// rollout's state fails with `OTA_STATUS_ROLLOUT_STATE`.
///
/// # Safety
///
/// `rollout` must be a live rollout; `command` must point to `command_len` readable bytes and
/// `by` to `by_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_command(
    rollout: *mut ota_rollout,
    command: *const u8,
    command_len: usize,
    wave: usize,
    by: *const u8,
    by_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let by = name(try_str!(by, by_len), "by")?;
        let res = match try_str!(command, command_len) {
            "pause" => r.inner.handle_pause(&by, now),
            "resume" => r.inner.handle_resume(&by, now),
            "abort" => r.inner.handle_abort(&by, now),
            "rollback" => r.inner.handle_rollback(&by, now),
            "approve" => r.inner.handle_approve(wave, &by, now),
            "pass" => r.inner.handle_verdict(wave, true, &by, now),
            "fail" => r.inner.handle_verdict(wave, false, &by, now),
            other => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!(
                        "unknown command {other:?}: expected pause, resume, abort, rollback, approve, pass or fail"
                    ),
                ));
            }
        };
        res.map_err(rollout_error)
    })
}

/// A device joined the fleet (its profile as JSON): if it is in the target it is placed by
/// its bucket.
///
/// # Safety
///
/// `rollout` must be a live rollout; `profile` must point to `profile_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_join(
    rollout: *mut ota_rollout,
    profile: *const u8,
    profile_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let p = DeviceProfile::from_json(try_slice!(profile, profile_len))?;
        r.inner.handle_join(p, now).map_err(rollout_error)
    })
}

/// A device left the target: it becomes `removed`.
///
/// # Safety
///
/// `rollout` must be a live rollout; `device_id` must point to `device_id_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_leave(
    rollout: *mut ota_rollout,
    device_id: *const u8,
    device_id_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let id = name(try_str!(device_id, device_id_len), "device_id")?;
        r.inner.handle_leave(&id, now).map_err(rollout_error)
    })
}

/// Copies the next pending output (a command, an event or an audit record) as JSON into
/// `buf`; an empty string means there is none. The output stays pending until it was copied,
/// so a call that fails with `OTA_STATUS_INSUFFICIENT_SIZE` loses nothing.
fn poll(
    slot: &mut Option<String>,
    next: impl FnOnce() -> Option<String>,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Result<(), Failure> {
    if slot.is_none() {
        *slot = next();
    }
    let text = slot.as_deref().unwrap_or("");
    unsafe { write_text(text, buf, buf_len, out_n)? };
    *slot = None;
    Ok(())
}

/// Copies the next command into `buf` as JSON — `{"kind": "send", "device_id", "package_id",
/// "rollback"}` (send as a persistent command) or `{"kind": "cancel", "device_id", "forced"}`
/// — or an empty string when there is none.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the command stays pending.
///
/// # Safety
///
/// `rollout` must be a live rollout; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_poll_command(
    rollout: *mut ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let inner = &mut r.inner;
        poll(
            &mut r.command,
            || inner.poll_command().map(|c| ota_core::json::to_string(&c)),
            buf,
            buf_len,
            out_n,
        )
    })
}

/// Copies the next event into `buf` as JSON — `{"subject":
/// "profile.ota.rollout.<what>.<tenant>.<rollout_id>", "kind", "at", "data"}` — or an empty
/// string when there is none.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the event stays pending.
///
/// # Safety
///
/// `rollout` must be a live rollout; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_poll_event(
    rollout: *mut ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let inner = &mut r.inner;
        poll(
            &mut r.event,
            || inner.poll_event().map(|e| ota_core::json::to_string(&e)),
            buf,
            buf_len,
            out_n,
        )
    })
}

/// Copies the next audit record into `buf` as one line of JSON, to append to the rollout's
/// trail, or an empty string when there is none.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the record stays pending.
///
/// # Safety
///
/// `rollout` must be a live rollout; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_poll_audit(
    rollout: *mut ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        let inner = &mut r.inner;
        poll(
            &mut r.audit,
            || inner.poll_audit().map(|a| a.to_json()),
            buf,
            buf_len,
            out_n,
        )
    })
}

/// When to call `ota_rollout_handle_tick` next: `*at_out` receives the time (Unix ms), or
/// `UINT64_MAX` when nothing waits on the clock.
///
/// # Safety
///
/// `rollout` must be a live rollout; `at_out` must point to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_timeout(
    rollout: *const ota_rollout,
    at_out: *mut u64,
) -> Status {
    call(|| {
        let r = try_ref!(rollout);
        write_out(at_out, r.inner.poll_timeout().unwrap_or(u64::MAX))
    })
}

/// Writes where the rollout stands as JSON into `buf`: seed 004's `rollout_id`, `status`,
/// `canary_percent` and `scheduled_count`, and the devices per state, the waves, the halt
/// reason, the incompatibility reasons and the fleet impact.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `rollout` must be a live rollout; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_status(
    rollout: *const ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_ref!(rollout);
        unsafe {
            write_text(
                &ota_core::json::to_string(&r.inner.status()),
                buf,
                buf_len,
                out_n,
            )
        }
    })
}

/// Writes the whole rollout state as JSON into `buf`, for persisting in any database. Poll
/// every pending command, event and audit record first: they are not part of it.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `rollout` must be a live rollout; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_snapshot(
    rollout: *const ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_ref!(rollout);
        unsafe { write_text(&r.inner.snapshot(), buf, buf_len, out_n) }
    })
}

/// Restores a rollout from a snapshot; its packages' signatures are verified again against
/// `keys` with `threshold`.
///
/// Takes ownership of nothing. On success, `*rollout_out` receives a new rollout that the
/// caller must free with `ota_rollout_free`.
///
/// # Safety
///
/// `snapshot` must point to `snapshot_len` readable bytes; `keys` must be a live set;
/// `rollout_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_restore(
    snapshot: *const u8,
    snapshot_len: usize,
    keys: *const ota_trusted_keys,
    threshold: usize,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let snapshot = try_slice!(snapshot, snapshot_len);
        let keys = try_ref!(keys);
        if rollout_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`rollout_out` is NULL"));
        }
        let inner = Rollout::restore(snapshot, keys.trusted(), threshold).map_err(rollout_error)?;
        write_handle(rollout_out, ota_rollout::new(inner))
    })
}

/// Frees a rollout. NULL is allowed and does nothing.
///
/// # Safety
///
/// `rollout` must be NULL or a rollout not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_free(rollout: *mut ota_rollout) {
    crate::panic::guard(|| unsafe { free_handle(rollout) })
}

/// Verifies an audit trail stored one JSON record per line: every record's hash and every
/// link. `*records_out` receives how many records it holds. An edited, dropped, inserted or
/// reordered record fails with `OTA_STATUS_AUDIT_BROKEN`, and the last error names it.
///
/// # Safety
///
/// `trail` must point to `trail_len` readable bytes; `records_out` to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_audit_verify(
    trail: *const u8,
    trail_len: usize,
    records_out: *mut u64,
) -> Status {
    call(|| {
        let text = try_str!(trail, trail_len);
        if records_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`records_out` is NULL"));
        }
        let records = audit::parse_lines(text).map_err(audit_error)?;
        let chain = audit::verify(&records).map_err(audit_error)?;
        write_out(records_out, chain.next_seq)
    })
}
