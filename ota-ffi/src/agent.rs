//! The device's update agent: `ota_agent`, driven by `ota_agent_handle_*` and drained by
//! `ota_agent_poll_command`.

use std::ffi::c_char;

use ota_core::agent::{Agent, AgentConfig, AgentRecord, Input, Output};
use ota_core::assignment::Assignment;
use ota_core::probe::ProbeResult;
use ota_core::{Limits, Status, UnixMs};

use crate::device_io::{HostIo, ota_device_io};
use crate::error::{Failure, call};
use crate::ffi::{
    free_handle, try_mut, try_ref, try_slice, try_str, write_handle, write_out, write_text,
};
use crate::sign::ota_verified_package;

/// What the agent asks the host to do; see `ota_agent_poll_command`.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(non_camel_case_types)]
pub enum ota_command_kind {
    /// No command is pending.
    None = 0,
    /// Store the record (`ota_agent_command_text`) durably, replacing the previous one,
    /// before carrying out any later command.
    Persist = 1,
    /// Fetch chunk `index` (`offset`, `length`), in any order, and give it to
    /// `ota_agent_handle_chunk`.
    Fetch = 2,
    /// Make the inactive slot active (idempotent), then call `ota_agent_handle_swapped`.
    Swap = 3,
    /// Run the probe (JSON in `ota_agent_command_text`; `swapped_at` is the swap time) and
    /// give the result to `ota_agent_handle_probe_result`.
    Probe = 4,
    /// Make the previous slot active again (idempotent), then call
    /// `ota_agent_handle_restored`.
    RestorePrevious = 5,
    /// Send the report (JSON in `ota_agent_command_text`) to the control plane.
    Report = 6,
}

/// A command from the agent; fields that do not apply to its kind are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct ota_command {
    /// What to do.
    pub kind: ota_command_kind,
    /// For a fetch: the chunk's length.
    pub length: u32,
    /// For a fetch: the chunk's index.
    pub index: u64,
    /// For a fetch: the chunk's offset.
    pub offset: u64,
    /// For a probe: when the swap happened (Unix ms).
    pub swapped_at: u64,
}

/// A device's update agent. Made by `ota_agent_new`, freed by `ota_agent_free`.
#[allow(non_camel_case_types)]
pub struct ota_agent {
    agent: Agent,
    io: HostIo,
    /// The text of the command last polled.
    text: String,
}

/// Makes the device's update agent from its configuration (JSON: `{"device", "trusted_keys",
/// "threshold", "probe_policy", "default_probe", "exec_allowlist", "max_boot_attempts"}`),
/// resuming from the last persisted record after a restart (`record` NULL and
/// `record_len` 0 for a new device). Resuming re-verifies the staged chunks through `io`.
///
/// Takes ownership of nothing; `io` is copied, and its callbacks must stay usable while the
/// agent lives. On success, `*agent_out` receives a new agent that the caller must free with
/// `ota_agent_free`. Drain `ota_agent_poll_command` after this call and after every
/// `ota_agent_handle_*`.
///
/// # Safety
///
/// `config` must point to `config_len` readable bytes and `record` to `record_len`; `io` must
/// point to a valid `ota_device_io`; `agent_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_new(
    config: *const u8,
    config_len: usize,
    record: *const u8,
    record_len: usize,
    now: u64,
    io: *const ota_device_io,
    agent_out: *mut *mut ota_agent,
) -> Status {
    call(|| {
        let limits = Limits::default();
        let config = AgentConfig::from_json(try_str!(config, config_len).as_bytes(), &limits)?;
        let record = try_slice!(record, record_len);
        let record = if record.is_empty() {
            None
        } else {
            Some(AgentRecord::from_json(record, &limits)?)
        };
        let mut io = HostIo::new(try_ref!(io))?;
        if agent_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`agent_out` is NULL"));
        }
        let agent = Agent::new(config, record, UnixMs(now), &mut io);
        write_handle(
            agent_out,
            ota_agent {
                agent,
                io,
                text: String::new(),
            },
        )
    })
}

/// Gives the agent an assignment (JSON: `{"package_id", "type", "version", "size_bytes",
/// "sha256", "envelope" | "tuf_target", "encryption_key", "rollout_id"?, "probe"?}`). It is
/// refused — with the status saying why, and a `rejected` report queued — unless its
/// signature verifies, it fits this device, and it is not a downgrade. An assignment that
/// names a TUF target needs `ota_agent_handle_verified_assignment`.
///
/// Takes ownership of nothing.
///
/// # Safety
///
/// `agent` must be a live agent; `assignment` must point to `assignment_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_assignment(
    agent: *mut ota_agent,
    assignment: *const u8,
    assignment_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let a = try_mut!(agent);
        let assignment = Assignment::from_json(
            try_slice!(assignment, assignment_len),
            &a.agent.config().limits,
        )?;
        a.agent
            .handle(Input::assignment(assignment), UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Makes the agent as `ota_agent_new` does from a persisted record (`record` not empty), with
/// the update's package as the host verified it again after the restart: an update whose
/// assignment names a TUF target needs it to resume a download (`ota_tuf_resolve` gives it);
/// `package` may be NULL otherwise. Fails with `OTA_STATUS_RECORD_INVALID` when the package is
/// not the record's update.
///
/// Takes ownership of nothing; `package` is copied; `io` is copied, and its callbacks must
/// stay usable while the agent lives. On success, `*agent_out` receives a new agent that the
/// caller must free with `ota_agent_free`.
///
/// # Safety
///
/// `config` must point to `config_len` readable bytes and `record` to `record_len`; `package`
/// must be NULL or a live verified package; `io` must point to a valid `ota_device_io`;
/// `agent_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_restore(
    config: *const u8,
    config_len: usize,
    record: *const u8,
    record_len: usize,
    package: *const ota_verified_package,
    now: u64,
    io: *const ota_device_io,
    agent_out: *mut *mut ota_agent,
) -> Status {
    call(|| {
        let limits = Limits::default();
        let config = AgentConfig::from_json(try_str!(config, config_len).as_bytes(), &limits)?;
        let record = AgentRecord::from_json(try_slice!(record, record_len), &limits)?;
        let package = unsafe { package.as_ref() }.map(|p| p.inner.clone());
        let mut io = HostIo::new(try_ref!(io))?;
        if agent_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`agent_out` is NULL"));
        }
        let agent = Agent::restore(config, record, package, UnixMs(now), &mut io)?;
        write_handle(
            agent_out,
            ota_agent {
                agent,
                io,
                text: String::new(),
            },
        )
    })
}

/// Gives the agent an assignment with the package the host verified: the TUF route (the
/// assignment names `"tuf_target"`, and `package` is what `ota_tuf_resolve` gave for it), or
/// a DSSE envelope the agent verifies itself and then requires to be `package`. Refused as
/// `ota_agent_handle_assignment` says, and with `OTA_STATUS_INVALID_ARGUMENT` when a TUF
/// target's package was verified for another target or not through TUF.
///
/// Takes ownership of nothing; `package` is copied.
///
/// # Safety
///
/// `agent` must be a live agent; `assignment` must point to `assignment_len` readable bytes;
/// `package` must be a live verified package.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_verified_assignment(
    agent: *mut ota_agent,
    assignment: *const u8,
    assignment_len: usize,
    package: *const ota_verified_package,
    now: u64,
) -> Status {
    call(|| {
        let a = try_mut!(agent);
        let package = try_ref!(package).inner.clone();
        let assignment = Assignment::from_json(
            try_slice!(assignment, assignment_len),
            &a.agent.config().limits,
        )?;
        let input = Input::Assignment {
            assignment,
            package: Some(package),
        };
        a.agent.handle(input, UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Gives the agent a fetched chunk. A chunk that does not match its signed digest is refused
/// with `OTA_STATUS_CHUNK_DIGEST_MISMATCH` and asked for again; a duplicate is harmless.
/// `*new_out` (may be NULL) says whether the chunk was new.
///
/// Takes ownership of nothing.
///
/// # Safety
///
/// `agent` must be a live agent; `data` must point to `data_len` readable bytes; `new_out`
/// must be NULL or point to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_chunk(
    agent: *mut ota_agent,
    offset: u64,
    data: *const u8,
    data_len: usize,
    now: u64,
    new_out: *mut bool,
) -> Status {
    call(|| {
        let a = try_mut!(agent);
        let data = try_slice!(data, data_len);
        let progress = a.agent.handle_chunk(offset, data, UnixMs(now), &mut a.io)?;
        if !new_out.is_null() {
            write_out(new_out, progress.new)?;
        }
        Ok(())
    })
}

/// Tells the agent the host made the new slot active (after a reboot if it needed one).
///
/// # Safety
///
/// `agent` must be a live agent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_swapped(agent: *mut ota_agent, now: u64) -> Status {
    call(|| {
        let a = try_mut!(agent);
        a.agent.handle(Input::Swapped, UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Gives the agent the result of the probe it asked for; `detail` says what the probe saw.
///
/// # Safety
///
/// `agent` must be a live agent; `detail` must point to `detail_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_probe_result(
    agent: *mut ota_agent,
    healthy: bool,
    detail: *const u8,
    detail_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let a = try_mut!(agent);
        let detail = try_str!(detail, detail_len).to_string();
        let result = ProbeResult { healthy, detail };
        a.agent
            .handle(Input::ProbeResult(result), UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Tells the agent the host made the previous slot active again.
///
/// # Safety
///
/// `agent` must be a live agent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_restored(agent: *mut ota_agent, now: u64) -> Status {
    call(|| {
        let a = try_mut!(agent);
        a.agent.handle(Input::Restored, UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Tells the agent the time: a probe may be due, or a deadline passed.
///
/// # Safety
///
/// `agent` must be a live agent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_tick(agent: *mut ota_agent, now: u64) -> Status {
    call(|| {
        let a = try_mut!(agent);
        a.agent.handle(Input::Tick, UnixMs(now), &mut a.io)?;
        Ok(())
    })
}

/// Takes the next command into `*command_out`; its kind is `OTA_COMMAND_KIND_NONE` when
/// there is none. The text of a persist, probe or report command is then in
/// `ota_agent_command_text`, until the next poll.
///
/// # Safety
///
/// `agent` must be a live agent; `command_out` must point to a writable `ota_command`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_poll_command(
    agent: *mut ota_agent,
    command_out: *mut ota_command,
) -> Status {
    call(|| {
        let a = try_mut!(agent);
        if command_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`command_out` is NULL"));
        }
        let mut c = ota_command {
            kind: ota_command_kind::None,
            length: 0,
            index: 0,
            offset: 0,
            swapped_at: 0,
        };
        a.text.clear();
        match a.agent.poll() {
            None => {}
            Some(Output::Persist(record)) => {
                c.kind = ota_command_kind::Persist;
                a.text = record.to_json();
            }
            Some(Output::Fetch(r)) => {
                c.kind = ota_command_kind::Fetch;
                c.index = r.index as u64;
                c.offset = r.offset;
                c.length = r.length;
            }
            Some(Output::Swap) => c.kind = ota_command_kind::Swap,
            Some(Output::Probe { spec, swapped_at }) => {
                c.kind = ota_command_kind::Probe;
                c.swapped_at = swapped_at.get();
                a.text = ota_core::json::to_string(&spec);
            }
            Some(Output::RestorePrevious) => c.kind = ota_command_kind::RestorePrevious,
            Some(Output::Report(r)) => {
                c.kind = ota_command_kind::Report;
                a.text = r.to_json();
            }
            Some(other) => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!("an output this library does not know: {other:?}"),
                ));
            }
        }
        write_out(command_out, c)
    })
}

/// Writes the text of the command last polled (the record of a persist, the probe of a
/// probe, the report of a report; empty otherwise) into `buf` (NUL-terminated).
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the text stays available.
///
/// # Safety
///
/// `agent` must be a live agent; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_command_text(
    agent: *const ota_agent,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let a = try_ref!(agent);
        unsafe { write_text(&a.text, buf, buf_len, out_n) }
    })
}

/// The earliest instant (Unix ms) at which to call `ota_agent_handle_tick`: `*at_out`
/// receives it (an instant already past means now), or `UINT64_MAX` when the agent waits
/// only on input.
///
/// # Safety
///
/// `agent` must be a live agent; `at_out` must point to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_timeout(agent: *const ota_agent, at_out: *mut u64) -> Status {
    call(|| {
        let a = try_ref!(agent);
        write_out(at_out, a.agent.poll_timeout().map_or(u64::MAX, UnixMs::get))
    })
}

/// The agent's state (`"idle"`, `"downloading"`, `"probing"`, ...): a static string the
/// caller must not free, or NULL for a NULL agent.
///
/// # Safety
///
/// `agent` must be NULL or a live agent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_state(agent: *const ota_agent) -> *const c_char {
    crate::panic::guard(|| match unsafe { agent.as_ref() } {
        None => std::ptr::null(),
        Some(a) => crate::error::static_cstr(a.agent.state().as_str()),
    })
}

/// Writes the active version of package `name` into `buf` (NUL-terminated); empty when the
/// device has none.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `agent` must be a live agent; `name` must point to `name_len` readable bytes; `buf` to
/// `buf_len` writable bytes; `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_installed_version(
    agent: *const ota_agent,
    name: *const u8,
    name_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let a = try_ref!(agent);
        let name = try_str!(name, name_len);
        let v = a
            .agent
            .installed(name)
            .map(ToString::to_string)
            .unwrap_or_default();
        unsafe { write_text(&v, buf, buf_len, out_n) }
    })
}

/// Frees an agent. NULL is allowed and does nothing. Freeing an agent mid-update loses
/// nothing that was persisted: a new agent made from the last record resumes.
///
/// # Safety
///
/// `agent` must be NULL or an agent not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_free(agent: *mut ota_agent) {
    crate::panic::guard(|| unsafe { free_handle(agent) })
}
