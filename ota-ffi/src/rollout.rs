//! The rollout engine and the audit trail.

use std::ffi::c_char;

use ota_core::audit::{self, AuditHead};
use ota_core::name::Name;
use ota_core::plan::RolloutSpec;
use ota_core::report::DeviceReport;
use ota_core::rollout::{Create, Input, Output, Rollout, Snapshot};
use ota_core::{DeviceProfile, Limits, Status, UnixMs};

use crate::error::{Failure, call};
use crate::ffi::{
    free_handle, try_mut, try_ref, try_slice, try_str, write_handle, write_out, write_text,
};
use crate::sign::ota_verified_package;

/// A rollout. Made by `ota_rollout_create`, `ota_rollout_replay` or `ota_rollout_restore`, freed by
/// `ota_rollout_free`.
#[allow(non_camel_case_types)]
pub struct ota_rollout {
    inner: Rollout,
    /// An output taken from the engine but not yet copied out (the caller's buffer was small).
    pending: Option<(ota_rollout_output, String)>,
}

/// What `ota_rollout_poll` wrote.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(non_camel_case_types)]
pub enum ota_rollout_output {
    /// Nothing is pending; the text is empty.
    None = 0,
    /// An audit record, one line of JSON: append it to the rollout's trail.
    Audit = 1,
    /// A command for a device: `{"kind": "send", "device_id", "package_id", "rollback"}` (send
    /// as a persistent command) or `{"kind": "cancel", "device_id", "forced"}`.
    Command = 2,
    /// An event for the message bus: `{"subject":
    /// "profile.ota.rollout.<kind>.<tenant>.<rollout_id>", "kind", "data"}`.
    Event = 3,
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
        let spec = RolloutSpec::from_json(config.spec.to_string().as_bytes(), &Limits::DEFAULT)?;
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
            now: UnixMs(now),
        }
    }
}

impl ota_rollout {
    fn new(inner: Rollout) -> Self {
        ota_rollout {
            inner,
            pending: None,
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
        r.inner
            .handle(Input::Report(report), UnixMs(now))
            .map_err(rollout_error)
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
        try_mut!(rollout)
            .inner
            .handle(Input::Tick, UnixMs(now))
            .map_err(rollout_error)
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
        let input = match try_str!(command, command_len) {
            "pause" => Input::Pause { by },
            "resume" => Input::Resume { by },
            "abort" => Input::Abort { by },
            "rollback" => Input::Rollback { by },
            "approve" => Input::Approve { wave, by },
            "pass" => Input::Verdict {
                wave,
                pass: true,
                by,
            },
            "fail" => Input::Verdict {
                wave,
                pass: false,
                by,
            },
            other => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!(
                        "unknown command {other:?}: expected pause, resume, abort, rollback, approve, pass or fail"
                    ),
                ));
            }
        };
        r.inner.handle(input, UnixMs(now)).map_err(rollout_error)
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
        r.inner
            .handle(Input::Join(Box::new(p)), UnixMs(now))
            .map_err(rollout_error)
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
        r.inner
            .handle(Input::Leave { device_id: id }, UnixMs(now))
            .map_err(rollout_error)
    })
}

/// The JSON text of an output, and its kind.
fn output_text(r: &Rollout, o: Output) -> (ota_rollout_output, String) {
    match o {
        Output::Audit(a) => (ota_rollout_output::Audit, a.to_json()),
        Output::Command(c) => (ota_rollout_output::Command, ota_core::json::to_string(&c)),
        Output::Event(e) => (
            ota_rollout_output::Event,
            serde_json::json!({"subject": r.subject(&e), "kind": e.kind(), "data": e.payload()})
                .to_string(),
        ),
        // A kind this binding does not know yet: dropped, as the core's enum is
        // non-exhaustive.
        _ => (ota_rollout_output::None, String::new()),
    }
}

/// Copies the rollout's next output into `buf` as JSON and its kind into `*kind_out`: after
/// each input, call it until the kind is `OTA_ROLLOUT_OUTPUT_NONE`. Outputs come in the order
/// to take them: a step's audit record (append it to the trail) before the commands (carry
/// them out) and events (publish them) it caused, so a host that persists what it polls, in
/// order, never acts before it has recorded.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the output stays pending.
///
/// # Safety
///
/// `rollout` must be a live rollout; `kind_out` must point to a writable
/// `ota_rollout_output`; `buf` to `buf_len` writable bytes; `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_poll(
    rollout: *mut ota_rollout,
    kind_out: *mut ota_rollout_output,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_mut!(rollout);
        if kind_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`kind_out` is NULL"));
        }
        if r.pending.is_none() {
            r.pending = r.inner.poll().map(|o| output_text(&r.inner, o));
        }
        let (kind, text) = r
            .pending
            .as_ref()
            .map_or((ota_rollout_output::None, ""), |(k, t)| (*k, t.as_str()));
        unsafe { write_text(text, buf, buf_len, out_n)? };
        write_out(kind_out, kind)?;
        r.pending = None;
        Ok(())
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
        write_out(at_out, r.inner.poll_timeout().map_or(u64::MAX, UnixMs::get))
    })
}

/// Writes where the rollout stands as JSON into `buf`: seed 004's `rollout_id`, `status`,
/// `canary_percent` and `scheduled_count`, and the devices per state, the waves, the halt
/// reason, the incompatibility reasons, the fleet impact and the audit trail's head
/// (`"audit_head": {"seq", "hash"}`; pass it as `SEQ:HASH` to `ota_audit_verify_head`).
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

/// Writes the whole rollout state as JSON into `buf`, for persisting in any database; it holds
/// the audit trail's head. Poll every pending output first: they are not part of it.
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
        unsafe { write_text(&r.inner.snapshot().to_json(), buf, buf_len, out_n) }
    })
}

/// Restores a rollout from a snapshot, with the packages the caller verified (by
/// `ota_envelope_verify` or through TUF): `package` must be the snapshot's package and
/// `rollback` its rollback package (NULL when it has none), or the call fails with
/// `OTA_STATUS_PLAN_INVALID`.
///
/// Takes ownership of nothing. On success, `*rollout_out` receives a new rollout that the
/// caller must free with `ota_rollout_free`.
///
/// # Safety
///
/// `snapshot` must point to `snapshot_len` readable bytes; `package` must be a live verified
/// package and `rollback` NULL or one; `rollout_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_restore(
    snapshot: *const u8,
    snapshot_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let snapshot = Snapshot::from_json(try_slice!(snapshot, snapshot_len), &Limits::DEFAULT)?;
        let package = &try_ref!(package).inner;
        let rollback = unsafe { rollback.as_ref() }.map(|r| &r.inner);
        if rollout_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`rollout_out` is NULL"));
        }
        let inner = Rollout::restore(snapshot, package, rollback).map_err(rollout_error)?;
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

/// Verifies an audit trail, as `ota_audit_verify` does, and that it ends at `head`: the
/// rollout's head, `SEQ:HASH` (the last record's sequence number and hash, as the rollout's
/// status and snapshot carry it). A trail whose last records were dropped still links; only
/// the head shows it, and the call fails with `OTA_STATUS_AUDIT_BROKEN`. A malformed head
/// fails with `OTA_STATUS_INVALID_ARGUMENT`. `*records_out` receives how many records the
/// trail holds.
///
/// Takes ownership of nothing.
///
/// # Safety
///
/// `trail` must point to `trail_len` readable bytes, `head` to `head_len`; `records_out` to a
/// writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_audit_verify_head(
    trail: *const u8,
    trail_len: usize,
    head: *const u8,
    head_len: usize,
    records_out: *mut u64,
) -> Status {
    call(|| {
        let text = try_str!(trail, trail_len);
        let head: AuditHead =
            try_str!(head, head_len)
                .parse()
                .map_err(|e: audit::AuditHeadError| {
                    Failure::new(Status::InvalidArgument, e.to_string())
                })?;
        if records_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`records_out` is NULL"));
        }
        let records = audit::parse_lines(text).map_err(audit_error)?;
        let chain = audit::verify_with_head(&records, &head).map_err(audit_error)?;
        write_out(records_out, chain.next_seq)
    })
}
