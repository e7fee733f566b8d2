//! The rollout engine and the audit trail.

use std::ffi::c_char;

use ota_core::audit::{self, AuditHead};
use ota_core::name::Name;
use ota_core::plan::RolloutSpec;
use ota_core::report::DeviceReport;
use ota_core::rollout::{Create, Input, Output, Rollout, Snapshot};
use ota_core::{DeviceProfile, Status, UnixMs};

use crate::error::{Failure, call};
use crate::ffi::{
    LIMITS, free, handle, new_handle, try_handle, try_handle_mut, try_handle_opt, try_out,
    try_slice, try_str, write_text,
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
handle!(ota_rollout, ota_rollout_free);

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
/// where `spec` is the OTA API's rollout request (`package_id`, `target_profile_id` or `target`,
/// `canary_percent`, `failure_threshold_percent`, `rollback_package_id`, and the optional
/// waves, halt rule, timeouts, retries, pacing and windows). `fleet` is a JSON array of device
/// profiles. `rollback` may be NULL when the request names no rollback package.
///
/// The request's fields (docs/c-api.md has a complete example): `"package_id"` (the id of
/// `package`), `"target_profile_id"` or `"target"`, `"canary_percent"?` (5),
/// `"waves"?` (`[{"percent", "max_devices"?, "min_soak_ms"?, "success_gate_percent"?,
/// "gate"?}]`), `"failure_threshold_percent"?` (10), `"halt"?`, `"rollback_package_id"?`,
/// `"rollback_scope"?`, `"in_flight"?`, `"timeouts"?`, `"retries"?`, `"pacing"?`,
/// `"window"?`, `"stratify"?`, `"salt"?`.
///
/// The new rollout's first outputs (its audit record, the `started` event, the canary's
/// commands) wait to be polled.
///
/// A fleet of 16,384 devices or more has its compatibility judged on two threads when the
/// machine has two cores (the calling thread and one the call starts and joins before it
/// returns); the rollout is the same as on one.
///
/// Takes no ownership; the caller frees `*rollout_out` with `ota_rollout_free`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_rollout_create(
    config: *const c_char,
    config_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    fleet: *const c_char,
    fleet_len: usize,
    now: u64,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let out = try_out!(rollout_out);
        let inputs =
            unsafe { Inputs::read(config, config_len, package, rollback, fleet, fleet_len)? };
        // A large fleet is judged on the machine's cores (`ota_host::rollout::create`).
        let inner = ota_host::rollout::create(inputs.create(now), 0).map_err(rollout_error)?;
        out.write(new_handle(ota_rollout::new(inner)));
        Ok(())
    })
}

/// Rebuilds a rollout from the inputs it was created with (the same arguments as
/// `ota_rollout_create`, `now` included) and its audit trail, one JSON record per line. The
/// trail is verified first; every record the replay writes must equal the trail's (a routine
/// report stored whole by an earlier release is taken for the report line written now), or the
/// call fails with `OTA_STATUS_REPLAY_MISMATCH` naming the first record that differs. The new
/// rollout is in exactly the state of the one that wrote the trail; nothing is pending on it.
///
/// Takes no ownership; the caller frees `*rollout_out` with `ota_rollout_free`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_rollout_replay(
    config: *const c_char,
    config_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    fleet: *const c_char,
    fleet_len: usize,
    now: u64,
    trail: *const c_char,
    trail_len: usize,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let out = try_out!(rollout_out);
        let inputs =
            unsafe { Inputs::read(config, config_len, package, rollback, fleet, fleet_len)? };
        let records = audit::parse_lines(try_str!(trail, trail_len)).map_err(audit_error)?;
        let inner = Rollout::replay(inputs.create(now), &records).map_err(rollout_error)?;
        out.write(new_handle(ota_rollout::new(inner)));
        Ok(())
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
        config: *const c_char,
        config_len: usize,
        package: *const ota_verified_package,
        rollback: *const ota_verified_package,
        fleet: *const c_char,
        fleet_len: usize,
    ) -> Result<Inputs<'a>, Failure> {
        let config: CreateJson = ota_core::json::from_slice(
            "rollout config",
            try_slice!(config, config_len),
            LIMITS.max_document_bytes,
        )?;
        let spec = RolloutSpec::from_json(config.spec.to_string().as_bytes(), LIMITS)?;
        let (package, rollback) = unsafe { packages(package, rollback)? };
        let fleet = DeviceProfile::fleet_from_json(try_slice!(fleet, fleet_len), LIMITS)?;
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

/// The package argument and the optional rollback package argument (NULL for none).
unsafe fn packages<'a>(
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
) -> Result<
    (
        &'a ota_core::sign::VerifiedPackage,
        Option<&'a ota_core::sign::VerifiedPackage>,
    ),
    Failure,
> {
    let package = &try_handle!(package).inner;
    let rollback = try_handle_opt!(rollback).map(|r| &r.inner);
    Ok((package, rollback))
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

/// Gives the rollout a device's report (the OTA API: `{"device_id", "rollout_id",
/// "firmware_version", "status", "reason"}`, and the `"attempt"` the device says back). A
/// late report is recorded but changes nothing. A report must match the rollout, the
/// package's version (a success names it) and the device's current attempt; one that does
/// not is refused with its error and recorded (poll its audit record). A report naming no
/// attempt is about the first of the device's current command (the update's first, or the
/// rollback's): once a retry went out it is refused with `OTA_STATUS_ROLLOUT_STATE`. A success
/// on an earlier attempt of the update counts when every earlier attempt timed out.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_handle_report(
    rollout: *mut ota_rollout,
    report: *const c_char,
    report_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_handle_mut!(rollout);
        let report = DeviceReport::from_json(try_slice!(report, report_len), LIMITS)?;
        r.inner
            .handle(Input::device_report(report), UnixMs(now))
            .map_err(rollout_error)
    })
}

/// `ota_rollout_handle_report` for a report about `attempt` of the device's command (1 is the
/// first; `ota_rollout_attempt` says the current one when the command goes out), for a host
/// that tells the device its attempt by other means than the report: refused with
/// `OTA_STATUS_ROLLOUT_STATE` when a retry replaced that attempt, so a replayed report of an
/// earlier attempt counts for nothing. An attempt of 0, or a report naming another attempt,
/// fails with `OTA_STATUS_INVALID_ARGUMENT`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_handle_report_attempt(
    rollout: *mut ota_rollout,
    report: *const c_char,
    report_len: usize,
    attempt: u32,
    now: u64,
) -> Status {
    call(|| {
        let r = try_handle_mut!(rollout);
        let mut report = DeviceReport::from_json(try_slice!(report, report_len), LIMITS)?;
        if attempt == 0 {
            return Err(Failure::new(
                Status::InvalidArgument,
                "attempt: an attempt counts from 1",
            ));
        }
        if let Some(said) = report.attempt.take()
            && said != attempt
        {
            return Err(Failure::new(
                Status::InvalidArgument,
                format!("attempt: the report names attempt {said}, the call {attempt}"),
            ));
        }
        r.inner
            .handle(Input::AttemptReport { report, attempt }, UnixMs(now))
            .map_err(rollout_error)
    })
}

/// The attempt of a device's current command: `*attempt_out` receives it (1 is the first;
/// each retry after a failure or a timeout adds one; a rollback is one more than the update's
/// last). Tell it to the device with the command
/// a `send` output asks for (read it right after polling that output); the device says it
/// back in its report's `"attempt"`. A device the rollout does not have fails with
/// `OTA_STATUS_ROLLOUT_NOT_FOUND`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_attempt(
    rollout: *const ota_rollout,
    device_id: *const c_char,
    device_id_len: usize,
    attempt_out: *mut u32,
) -> Status {
    call(|| {
        let out = try_out!(attempt_out);
        let r = try_handle!(rollout);
        let id = try_str!(device_id, device_id_len);
        let attempt = r.inner.attempt(id).ok_or_else(|| {
            Failure::new(
                Status::RolloutNotFound,
                format!("device_id: the rollout has no device {id}"),
            )
        })?;
        out.write(attempt);
        Ok(())
    })
}

/// Tells the rollout the time: timers fire, soaked waves open, paced commands go out.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_handle_tick(rollout: *mut ota_rollout, now: u64) -> Status {
    call(|| {
        try_handle_mut!(rollout)
            .inner
            .handle(Input::Tick, UnixMs(now))
            .map_err(rollout_error)
    })
}

/// An operator command on a rollout: `command` is `"pause"`, `"resume"`, `"abort"`,
/// `"rollback"`, `"approve"` (of wave `wave`, the next to open), `"pass"` or `"fail"` (an
/// external verdict on wave `wave`); `by` names who gave it, for the audit trail. A command
/// that does not fit the rollout's state, or an approval of another wave than the next,
/// fails with `OTA_STATUS_ROLLOUT_STATE` (of a wave the rollout lacks,
/// `OTA_STATUS_ROLLOUT_NOT_FOUND`).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_command(
    rollout: *mut ota_rollout,
    command: *const c_char,
    command_len: usize,
    wave: usize,
    by: *const c_char,
    by_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_handle_mut!(rollout);
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
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_join(
    rollout: *mut ota_rollout,
    profile: *const c_char,
    profile_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_handle_mut!(rollout);
        let p = DeviceProfile::from_json_with_limits(try_slice!(profile, profile_len), LIMITS)?;
        r.inner
            .handle(Input::Join(Box::new(p)), UnixMs(now))
            .map_err(rollout_error)
    })
}

/// A device left the target: it becomes `removed`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_leave(
    rollout: *mut ota_rollout,
    device_id: *const c_char,
    device_id_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let r = try_handle_mut!(rollout);
        let id = name(try_str!(device_id, device_id_len), "device_id")?;
        r.inner
            .handle(Input::Leave { device_id: id }, UnixMs(now))
            .map_err(rollout_error)
    })
}

/// The rollout's next output the binding knows, as its kind and JSON text; `None` when nothing
/// is pending.
fn next_output(r: &mut Rollout) -> Option<(ota_rollout_output, String)> {
    loop {
        let text = match r.poll()? {
            Output::Audit(a) => (ota_rollout_output::Audit, a.to_json()),
            Output::Command(c) => (ota_rollout_output::Command, ota_core::json::to_string(&c)),
            Output::Event(e) => (
                ota_rollout_output::Event,
                serde_json::json!({"subject": r.subject(&e), "kind": e.kind(), "data": e.payload()})
                    .to_string(),
            ),
            // A kind this binding does not know yet (the core's enum is non-exhaustive): skipped.
            _ => continue,
        };
        return Some(text);
    }
}

/// Takes the rollout's next output: its kind into `*kind_out` and its text (JSON) into `buf`.
/// The kind is `OTA_ROLLOUT_OUTPUT_NONE`, and the text empty, when nothing is pending: after
/// creating the rollout and after every other call that gives it an input, call this until
/// then. Outputs come in the order to act on them: a step's audit record (append it to the
/// trail) before the commands (carry them out) and events (publish them) it caused, so a host
/// that persists what it polls, in order, never acts before it has recorded. A buffer too
/// small loses nothing: the call returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in
/// `*out_n`, and the next call gives the same output.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_poll(
    rollout: *mut ota_rollout,
    kind_out: *mut ota_rollout_output,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let kind_out = try_out!(kind_out);
        let r = try_handle_mut!(rollout);
        if r.pending.is_none() {
            r.pending = next_output(&mut r.inner);
        }
        let (kind, text) = r
            .pending
            .as_ref()
            .map_or((ota_rollout_output::None, ""), |(k, t)| (*k, t.as_str()));
        unsafe { write_text(text, buf, buf_len, out_n)? };
        kind_out.write(kind);
        r.pending = None;
        Ok(())
    })
}

/// The earliest instant (Unix ms) at which to call `ota_rollout_handle_tick`: `*at_out`
/// receives it (an instant already past means now), or `UINT64_MAX` when the rollout waits
/// only on input.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_timeout(
    rollout: *const ota_rollout,
    at_out: *mut u64,
) -> Status {
    call(|| {
        let at = try_out!(at_out);
        let r = try_handle!(rollout);
        at.write(r.inner.poll_timeout().map_or(u64::MAX, UnixMs::get));
        Ok(())
    })
}

/// Writes where the rollout stands as JSON into `buf`: the OTA API's `rollout_id`, `status`,
/// `canary_percent` and `scheduled_count`, and the devices per state, the waves, the halt
/// reason, the incompatibility reasons, the fleet impact and the audit trail's head
/// (`"audit_head": {"seq", "hash"}`; pass it as `SEQ:HASH` to `ota_audit_verify_head`).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_status(
    rollout: *const ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_handle!(rollout);
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
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_snapshot(
    rollout: *const ota_rollout,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let r = try_handle!(rollout);
        unsafe { write_text(&r.inner.snapshot().to_json(), buf, buf_len, out_n) }
    })
}

/// Restores a rollout from a snapshot, with the packages the caller verified (by
/// `ota_envelope_verify` or through TUF): `package` must be the snapshot's package and
/// `rollback` its rollback package (NULL when it has none), or the call fails with
/// `OTA_STATUS_PLAN_INVALID`.
///
/// Takes no ownership; the caller frees `*rollout_out` with `ota_rollout_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_restore(
    snapshot: *const c_char,
    snapshot_len: usize,
    package: *const ota_verified_package,
    rollback: *const ota_verified_package,
    rollout_out: *mut *mut ota_rollout,
) -> Status {
    call(|| {
        let out = try_out!(rollout_out);
        let snapshot = Snapshot::from_json(try_slice!(snapshot, snapshot_len), LIMITS)?;
        let (package, rollback) = unsafe { packages(package, rollback)? };
        let inner = Rollout::restore(snapshot, package, rollback).map_err(rollout_error)?;
        out.write(new_handle(ota_rollout::new(inner)));
        Ok(())
    })
}

/// Frees a rollout. NULL is allowed and does nothing.
///
/// Takes ownership of `rollout`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_rollout_free(rollout: *mut ota_rollout) {
    unsafe { free(rollout) }
}

/// Verifies an audit trail stored one JSON record per line: every whole record's hash and
/// every link. `*records_out` receives how many records it holds. An edited, dropped,
/// inserted or reordered record, or an empty trail, fails with `OTA_STATUS_AUDIT_BROKEN`, and
/// the last error names where: the record itself, or, for a report line (a routine report's
/// short line, which has no hash of its own; docs/audit-trail.md), the next whole record. A
/// trail whose last records were dropped, or whose report lines after its last whole record
/// were edited, still passes: to prove the trail whole, verify it against its head with
/// `ota_audit_verify_head`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_audit_verify(
    trail: *const c_char,
    trail_len: usize,
    records_out: *mut u64,
) -> Status {
    call(|| {
        let out = try_out!(records_out);
        let records = audit::parse_lines(try_str!(trail, trail_len)).map_err(audit_error)?;
        let chain = audit::verify(&records).map_err(audit_error)?;
        out.write(chain.next_seq);
        Ok(())
    })
}

/// Verifies an audit trail, as `ota_audit_verify` does, and that it ends at `head`: the
/// rollout's head, `SEQ:HASH` (the last record's sequence number and hash, as the rollout's
/// status and snapshot carry it). A trail whose last records were dropped still links; only
/// the head shows it, and the call fails with `OTA_STATUS_AUDIT_BROKEN`. A malformed head
/// fails with `OTA_STATUS_INVALID_ARGUMENT`. `*records_out` receives how many records the
/// trail holds.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_audit_verify_head(
    trail: *const c_char,
    trail_len: usize,
    head: *const c_char,
    head_len: usize,
    records_out: *mut u64,
) -> Status {
    call(|| {
        let out = try_out!(records_out);
        let text = try_str!(trail, trail_len);
        let head: AuditHead =
            try_str!(head, head_len)
                .parse()
                .map_err(|e: audit::AuditHeadError| {
                    Failure::new(Status::InvalidArgument, e.to_string())
                })?;
        let records = audit::parse_lines(text).map_err(audit_error)?;
        let chain = audit::verify_with_head(&records, &head).map_err(audit_error)?;
        out.write(chain.next_seq);
        Ok(())
    })
}
