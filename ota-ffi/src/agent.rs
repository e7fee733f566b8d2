//! The device's update agent: `ota_agent`, driven by `ota_agent_handle_*` and drained by
//! `ota_agent_poll`.

use std::ffi::c_char;

use ota_core::agent::{Agent, AgentConfig, AgentRecord, Input, Output};
use ota_core::assignment::Assignment;
use ota_core::probe::ProbeResult;
use ota_core::{Status, UnixMs};

use crate::device_io::{HostIo, ota_device_io};
use crate::error::{Failure, call, set_last_error};
use crate::ffi::{
    LIMITS, free, handle, handle_ref, new_handle, out_ref, try_handle, try_handle_mut,
    try_handle_opt, try_out, try_ref, try_slice, try_str, write_text,
};
use crate::sign::ota_verified_package;

/// What the agent asks the host to do; see `ota_agent_poll`.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(non_camel_case_types)]
pub enum ota_command_kind {
    /// No command is pending.
    None = 0,
    /// Store the record (the command's text) durably, replacing the previous one, before
    /// carrying out any later command.
    Persist = 1,
    /// Fetch chunk `index` (`offset`, `length`), in any order, and give it to
    /// `ota_agent_handle_chunk`.
    Fetch = 2,
    /// Make the slot holding the update active, then call `ota_agent_handle_swapped`. The
    /// command's text (JSON `{"name","version"}`) names the update. Never a toggle: when the
    /// active slot's label is that text already (the swap was done before a power cut), do
    /// nothing; otherwise label the inactive slot with the text, durably, then activate it.
    Swap = 3,
    /// Run the probe (the command's text; `swapped_at` is the swap time) and give the result
    /// to `ota_agent_handle_probe_result`.
    Probe = 4,
    /// Make the previous slot active again, then call `ota_agent_handle_restored`. The
    /// command's text (JSON `{"name","version"}`) names the failed update. Never a toggle:
    /// only when the active slot's label is that text is the other slot activated; otherwise
    /// (restored already before a power cut) do nothing.
    RestorePrevious = 5,
    /// Send the report (the command's text) to the control plane.
    Report = 6,
}

/// A command from the agent, as `ota_agent_poll` gives it with its text; fields that do not
/// apply to its kind are 0.
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

/// A device's update agent. Made by `ota_agent_new` or `ota_agent_restore`, freed by
/// `ota_agent_free`.
#[allow(non_camel_case_types)]
pub struct ota_agent {
    agent: Agent,
    io: HostIo,
    /// A command taken from the agent but not yet given out (the caller's buffer was small).
    pending: Option<(ota_command, String)>,
}
handle!(ota_agent, ota_agent_free);

impl ota_agent {
    /// The handle of a new or restored agent driving `io`, no command pending.
    fn new(agent: Agent, io: HostIo) -> Self {
        ota_agent {
            agent,
            io,
            pending: None,
        }
    }

    /// Gives the agent `input` at `now` (Unix ms), with the host's `io`.
    fn handle(&mut self, input: Input, now: u64) -> Result<(), Failure> {
        self.agent.handle(input, UnixMs(now), &mut self.io)?;
        Ok(())
    }
}

/// The agent's settings (JSON), bounded by the library's limits; the agent keeps them for
/// everything it parses later.
fn config(json: &str) -> Result<AgentConfig, Failure> {
    Ok(AgentConfig::from_json(json.as_bytes(), LIMITS)?)
}

/// Makes the device's update agent from its configuration, resuming from the last persisted
/// record after a restart (`record` NULL and `record_len` 0 for a new device). Resuming
/// re-verifies the staged chunks through `io`. Drain `ota_agent_poll` after this call and
/// after every `ota_agent_handle_*`.
///
/// The configuration (JSON; docs/c-api.md has a complete example; `?`: optional):
/// - `"device"`: this device's profile (see `ota_profile_parse`);
/// - `"trusted_keys"`: the publishers' Ed25519 public keys (hex or PEM), at least one;
/// - `"threshold"?`: how many distinct trusted keys must sign (default 1);
/// - `"probe_policy"?`: `{"initial_delay_ms"? (2000), "interval_ms"? (2000),
///   "successes_needed"? (3), "failures_tolerated"? (0), "deadline_ms"? (120000)}`: these
///   defaults are the policy when it is left out;
/// - `"default_probe"?`: the probe when an assignment names none (see `ota_probe_run`);
///   without it and without an assignment's `"probe"`, an assignment is refused with
///   `OTA_STATUS_PROBE_REFUSED` and a message saying what to add;
/// - `"exec_allowlist"?`: the executables a probe may run (default none);
/// - `"max_boot_attempts"?`: boots into a new version before it is rolled back (default 3);
/// - `"download_deadline_ms"?`: how long a download may take (default a day).
///
/// `io` is copied; its callbacks must stay callable while the agent lives.
///
/// Takes no ownership; the caller frees `*agent_out` with `ota_agent_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_new(
    config: *const c_char,
    config_len: usize,
    record: *const c_char,
    record_len: usize,
    now: u64,
    io: *const ota_device_io,
    agent_out: *mut *mut ota_agent,
) -> Status {
    call(|| {
        let out = try_out!(agent_out);
        let config = self::config(try_str!(config, config_len))?;
        let record = try_str!(record, record_len);
        let record = if record.is_empty() {
            None
        } else {
            Some(AgentRecord::from_json(record.as_bytes(), &config.limits)?)
        };
        let mut io = HostIo::new(try_ref!(io))?;
        let agent = Agent::new(config, record, UnixMs(now), &mut io);
        out.write(new_handle(ota_agent::new(agent, io)));
        Ok(())
    })
}

/// Makes the agent as `ota_agent_new` does from a persisted record (`record` not empty), with
/// the update's package as the host verified it again after the restart: an update whose
/// assignment names a TUF target needs it to resume a download (`ota_tuf_resolve` gives it);
/// `package` may be NULL otherwise. Fails with `OTA_STATUS_RECORD_INVALID` when the package is
/// not the record's update.
///
/// `package` is copied. `io` is copied; its callbacks must stay callable while the agent
/// lives.
///
/// Takes no ownership; the caller frees `*agent_out` with `ota_agent_free`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_agent_restore(
    config: *const c_char,
    config_len: usize,
    record: *const c_char,
    record_len: usize,
    package: *const ota_verified_package,
    now: u64,
    io: *const ota_device_io,
    agent_out: *mut *mut ota_agent,
) -> Status {
    call(|| {
        let out = try_out!(agent_out);
        let config = self::config(try_str!(config, config_len))?;
        let record =
            AgentRecord::from_json(try_str!(record, record_len).as_bytes(), &config.limits)?;
        let package = try_handle_opt!(package).map(|p| p.inner.clone());
        let mut io = HostIo::new(try_ref!(io))?;
        let agent = Agent::restore(config, record, package, UnixMs(now), &mut io)?;
        out.write(new_handle(ota_agent::new(agent, io)));
        Ok(())
    })
}

/// Gives the agent an assignment. It is refused — with the status saying why, and a
/// `rejected` report queued — unless its signature verifies, it fits this device, and it is
/// not a downgrade. An assignment that names a TUF target needs
/// `ota_agent_handle_verified_assignment`.
///
/// The assignment (JSON, as the control plane sends it; docs/c-api.md has a complete
/// example): `"package_id"` (`pkg_...`), `"type"` (`fw`, `sw` or `model`), `"version"`,
/// `"size_bytes"`, `"sha256"` (hex), exactly one of `"envelope"` (the package's DSSE
/// envelope) and `"tuf_target"` (a TUF target's name), `"encryption_key"` (64 hex digits),
/// `"rollout_id"?`, `"probe"?` (only an allowlisted executable without arguments, or a
/// loopback URL: the rest is the device's own policy).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_assignment(
    agent: *mut ota_agent,
    assignment: *const c_char,
    assignment_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let a = try_handle_mut!(agent);
        assign(a, try_str!(assignment, assignment_len), None, now)
    })
}

/// Parses an assignment against the agent's limits and hands it, with the package the host
/// verified if any, to the agent: the one step behind both assignment entry points.
fn assign(
    a: &mut ota_agent,
    text: &str,
    package: Option<ota_core::VerifiedPackage>,
    now: u64,
) -> Result<(), Failure> {
    let assignment = Assignment::from_json(text.as_bytes(), &a.agent.config().limits)?;
    a.handle(
        Input::Assignment {
            assignment,
            package,
        },
        now,
    )
}

/// Gives the agent an assignment with the package the host verified: the TUF route (the
/// assignment names `"tuf_target"`, and `package` is what `ota_tuf_resolve` gave for it), or
/// a DSSE envelope the agent verifies itself and then requires to be `package`. Refused as
/// `ota_agent_handle_assignment` says, and with `OTA_STATUS_INVALID_ARGUMENT` when a TUF
/// target's package was verified for another target or not through TUF.
///
/// `package` is copied.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_verified_assignment(
    agent: *mut ota_agent,
    assignment: *const c_char,
    assignment_len: usize,
    package: *const ota_verified_package,
    now: u64,
) -> Status {
    call(|| {
        let a = try_handle_mut!(agent);
        let package = try_handle!(package).inner.clone();
        assign(a, try_str!(assignment, assignment_len), Some(package), now)
    })
}

/// Gives the agent a fetched chunk. A chunk that does not match its signed digest is refused
/// with `OTA_STATUS_CHUNK_DIGEST_MISMATCH` and asked for again; a duplicate is harmless.
/// `*new_out` (may be NULL) says whether the chunk was new.
///
/// Takes no ownership; nothing to free.
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
        let new_out = unsafe { out_ref(new_out) };
        let a = try_handle_mut!(agent);
        let data = try_slice!(data, data_len);
        let progress = a.agent.handle_chunk(offset, data, UnixMs(now), &mut a.io)?;
        if let Some(new_out) = new_out {
            new_out.write(progress.new);
        }
        Ok(())
    })
}

/// Tells the agent the host made the new slot active (after a reboot if it needed one).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_swapped(agent: *mut ota_agent, now: u64) -> Status {
    unsafe { handle_input(agent, Input::Swapped, now) }
}

/// Gives the agent the result of the probe it asked for; `detail` (text) says what the probe
/// saw.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_probe_result(
    agent: *mut ota_agent,
    healthy: bool,
    detail: *const c_char,
    detail_len: usize,
    now: u64,
) -> Status {
    call(|| {
        let a = try_handle_mut!(agent);
        let detail = try_str!(detail, detail_len).to_string();
        let result = ProbeResult { healthy, detail };
        a.handle(Input::ProbeResult(result), now)
    })
}

/// The body of the `ota_agent_handle_*` calls whose input carries nothing but the time.
unsafe fn handle_input(agent: *mut ota_agent, input: Input, now: u64) -> Status {
    call(|| try_handle_mut!(agent).handle(input, now))
}

/// Tells the agent the host made the previous slot active again.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_restored(agent: *mut ota_agent, now: u64) -> Status {
    unsafe { handle_input(agent, Input::Restored, now) }
}

/// The control plane cancelled the update in progress: before the swap it fails at once
/// (nothing active was touched); after it, the agent restores the previous version. Harmless
/// when nothing is in progress.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_cancel(agent: *mut ota_agent, now: u64) -> Status {
    unsafe { handle_input(agent, Input::Cancel, now) }
}

/// Tells the agent the time: a probe may be due, or a deadline passed.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_handle_tick(agent: *mut ota_agent, now: u64) -> Status {
    unsafe { handle_input(agent, Input::Tick, now) }
}

/// The command of kind `None`, every field 0.
fn no_command() -> ota_command {
    ota_command {
        kind: ota_command_kind::None,
        length: 0,
        index: 0,
        offset: 0,
        swapped_at: 0,
    }
}

/// The agent's next command the binding knows, with its text; `None` when nothing is pending.
fn next_command(agent: &mut Agent) -> Option<(ota_command, String)> {
    loop {
        let mut c = no_command();
        let mut text = String::new();
        match agent.poll()? {
            Output::Persist(record) => {
                c.kind = ota_command_kind::Persist;
                text = record.to_json();
            }
            Output::Fetch(r) => {
                c.kind = ota_command_kind::Fetch;
                c.index = r.index as u64;
                c.offset = r.offset;
                c.length = r.length;
            }
            Output::Swap { to } => {
                c.kind = ota_command_kind::Swap;
                text = to.to_json();
            }
            Output::Probe { spec, swapped_at } => {
                c.kind = ota_command_kind::Probe;
                c.swapped_at = swapped_at.get();
                text = ota_core::json::to_string(&spec);
            }
            Output::RestorePrevious { from } => {
                c.kind = ota_command_kind::RestorePrevious;
                text = from.to_json();
            }
            Output::Report(r) => {
                c.kind = ota_command_kind::Report;
                text = r.to_json();
            }
            // A kind this binding does not know yet (the core's enum is non-exhaustive): skipped.
            _ => continue,
        }
        return Some((c, text));
    }
}

/// Takes the agent's next command: its kind and numbers into `*command_out` and its text
/// (JSON: the record of a persist, the update of a swap or a restore, the probe of a probe,
/// the report of a report; empty otherwise) into `buf`. The kind is `OTA_COMMAND_KIND_NONE`, and the text empty, when
/// nothing is pending: after creating the agent and after every other call that gives it an
/// input, call this until then. Commands come in the order to carry them out: a persist
/// before the commands that rely on its record, so a host that persists what it polls, in
/// order, never acts before it has recorded. A buffer too small loses nothing: the call
/// returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`, and the next call
/// gives the same command.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_poll(
    agent: *mut ota_agent,
    command_out: *mut ota_command,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let command_out = try_out!(command_out);
        let a = try_handle_mut!(agent);
        if a.pending.is_none() {
            a.pending = next_command(&mut a.agent);
        }
        let (command, text) = a
            .pending
            .as_ref()
            .map_or((no_command(), ""), |(c, t)| (*c, t.as_str()));
        unsafe { write_text(text, buf, buf_len, out_n)? };
        command_out.write(command);
        a.pending = None;
        Ok(())
    })
}

/// The earliest instant (Unix ms) at which to call `ota_agent_handle_tick`: `*at_out`
/// receives it (an instant already past means now), or `UINT64_MAX` when the agent waits
/// only on input.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_timeout(agent: *const ota_agent, at_out: *mut u64) -> Status {
    call(|| {
        let at = try_out!(at_out);
        let a = try_handle!(agent);
        at.write(a.agent.poll_timeout().map_or(u64::MAX, UnixMs::get));
        Ok(())
    })
}

/// The agent's state (`"idle"`, `"downloading"`, `"probing"`, ...) as a static string, or
/// NULL for a NULL agent, a handle of another type, an agent an earlier call panicked while
/// using, or one the call whose callback this is changes (the last error says which).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_state(agent: *const ota_agent) -> *const c_char {
    crate::panic::guard(|| match unsafe { handle_ref(agent, "agent") } {
        Ok(a) => crate::error::static_cstr(a.agent.state().as_str()),
        Err(f) => {
            set_last_error(f.message);
            std::ptr::null()
        }
    })
}

/// Writes the active version of package `name` into `buf`; empty when the device has none.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_installed_version(
    agent: *const ota_agent,
    name: *const c_char,
    name_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let a = try_handle!(agent);
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
/// nothing that was persisted: `ota_agent_new` (or `ota_agent_restore`) from the last record
/// resumes.
///
/// Takes ownership of `agent`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_free(agent: *mut ota_agent) {
    unsafe { free(agent) }
}
