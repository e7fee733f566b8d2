//! The device path: the update agent, the download and install it is built from, and the
//! health-probe runner.

use std::ffi::{c_char, c_int, c_void};
use std::io::{self, Write};

use ota_core::Status;
use ota_core::agent::{Agent, AgentConfig, AgentRecord, Command, DeviceIo};
use ota_core::assignment::Assignment;
use ota_core::download::{Accepted, Download, DownloadState, Install, Staging};
use ota_core::probe::ProbeResult;

use crate::error::{Failure, call};
use crate::ffi::{
    CallbackWriter, free_handle, key32, ota_write_fn, try_mut, try_ref, try_slice, try_str,
    write_handle, write_out, write_text,
};
use crate::sign::ota_verified_package;

/// The device's storage, as callbacks the host implements. Each returns 0 on success.
///
/// - `stage_write(ctx, offset, data, len)`: store a verified chunk at `offset` of the staging
///   area.
/// - `stage_read(ctx, offset, buf, len)`: read `len` staged bytes at `offset` into `buf`.
/// - `slot_open(ctx)`: empty the inactive slot for a new install.
/// - `slot_write(ctx, data, len)`: append to the inactive slot.
/// - `slot_flush(ctx)`: make what was written to the inactive slot durable.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ota_device_io {
    /// Passed back to every callback untouched.
    pub ctx: *mut c_void,
    /// Stores a chunk in staging.
    pub stage_write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, data: *const u8, len: usize) -> c_int,
    >,
    /// Reads staged bytes.
    pub stage_read: Option<
        unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int,
    >,
    /// Empties the inactive slot.
    pub slot_open: Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>,
    /// Appends to the inactive slot.
    pub slot_write: ota_write_fn,
    /// Makes the inactive slot durable.
    pub slot_flush: Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>,
}

fn rc(what: &str, code: c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what} returned {code}")))
    }
}

/// `ota_device_io` as the core's `DeviceIo`.
#[derive(Clone, Copy)]
pub(crate) struct HostIo(ota_device_io);

impl HostIo {
    pub(crate) fn new(io: &ota_device_io) -> Result<Self, Failure> {
        let missing =
            |what: &str| Failure::new(Status::NullPointer, format!("`io->{what}` is NULL"));
        io.stage_write.ok_or_else(|| missing("stage_write"))?;
        io.stage_read.ok_or_else(|| missing("stage_read"))?;
        io.slot_open.ok_or_else(|| missing("slot_open"))?;
        io.slot_write.ok_or_else(|| missing("slot_write"))?;
        io.slot_flush.ok_or_else(|| missing("slot_flush"))?;
        Ok(HostIo(*io))
    }
}

// The callbacks and `ctx` belong to the host, which promises they stay usable while the agent
// lives; the agent calls them only from the thread that calls into it.
unsafe impl Send for HostIo {}

impl Staging for HostIo {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = self
            .0
            .stage_write
            .ok_or_else(|| io::Error::other("no stage_write"))?;
        rc("stage_write", unsafe {
            f(self.0.ctx, offset, data.as_ptr(), data.len())
        })
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let f = self
            .0
            .stage_read
            .ok_or_else(|| io::Error::other("no stage_read"))?;
        rc("stage_read", unsafe {
            f(self.0.ctx, offset, buf.as_mut_ptr(), buf.len())
        })
    }
}

struct SlotWriter {
    io: HostIo,
    out: CallbackWriter,
}

unsafe impl Send for SlotWriter {}

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let f = self
            .io
            .0
            .slot_flush
            .ok_or_else(|| io::Error::other("no slot_flush"))?;
        rc("slot_flush", unsafe { f(self.io.0.ctx) })
    }
}

impl DeviceIo for HostIo {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        let f = self
            .0
            .slot_open
            .ok_or_else(|| io::Error::other("no slot_open"))?;
        rc("slot_open", unsafe { f(self.0.ctx) })?;
        let out = CallbackWriter::new(self.0.slot_write, self.0.ctx)
            .map_err(|f| io::Error::other(f.message))?;
        Ok(Box::new(SlotWriter { io: *self, out }))
    }
}

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
        let config = AgentConfig::from_json(try_str!(config, config_len).as_bytes())?;
        let record = try_slice!(record, record_len);
        let record = if record.is_empty() {
            None
        } else {
            Some(AgentRecord::from_json(record)?)
        };
        let mut io = HostIo::new(try_ref!(io))?;
        if agent_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`agent_out` is NULL"));
        }
        let agent = Agent::new(config, record, now, &mut io);
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
/// "sha256", "envelope", "encryption_key", "rollout_id"?, "probe"?}`). It is refused — with
/// the status saying why, and a `rejected` report queued — unless its signature verifies,
/// it fits this device, and it is not a downgrade.
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
        let assignment = Assignment::from_json(try_slice!(assignment, assignment_len))?;
        a.agent.handle_assignment(assignment, now, &mut a.io)?;
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
        let progress = a.agent.handle_chunk(offset, data, now, &mut a.io)?;
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
        try_mut!(agent).agent.handle_swapped(now)?;
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
        a.agent
            .handle_probe_result(ProbeResult { healthy, detail }, now)?;
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
        try_mut!(agent).agent.handle_restored(now)?;
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
        try_mut!(agent).agent.handle_tick(now);
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
        match a.agent.poll_command() {
            None => {}
            Some(Command::Persist { record }) => {
                c.kind = ota_command_kind::Persist;
                a.text = record;
            }
            Some(Command::Fetch(r)) => {
                c.kind = ota_command_kind::Fetch;
                c.index = r.index as u64;
                c.offset = r.offset;
                c.length = r.length;
            }
            Some(Command::Swap) => c.kind = ota_command_kind::Swap,
            Some(Command::Probe { spec, swapped_at }) => {
                c.kind = ota_command_kind::Probe;
                c.swapped_at = swapped_at;
                a.text = ota_core::json::to_string(&spec);
            }
            Some(Command::RestorePrevious) => c.kind = ota_command_kind::RestorePrevious,
            Some(Command::Report(r)) => {
                c.kind = ota_command_kind::Report;
                a.text = r.to_json();
            }
            Some(other) => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!("unknown command {other:?}"),
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

/// When to call `ota_agent_handle_tick` next (Unix ms): `*at_out` receives the time, or
/// `UINT64_MAX` when the agent is not waiting on the clock.
///
/// # Safety
///
/// `agent` must be a live agent; `at_out` must point to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_agent_timeout(agent: *const ota_agent, at_out: *mut u64) -> Status {
    call(|| {
        let a = try_ref!(agent);
        write_out(at_out, a.agent.poll_timeout().unwrap_or(u64::MAX))
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

/// A download of a verified package's artifact, any order, every chunk verified. Made by
/// `ota_download_new` or `ota_download_resume`, freed by `ota_download_free`.
#[allow(non_camel_case_types)]
pub struct ota_download {
    inner: Download,
}

/// Starts a download of a verified package's artifact: nothing verified yet.
///
/// Takes ownership of nothing. On success, `*download_out` receives a new download that the
/// caller must free with `ota_download_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `download_out` must point to a writable
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_new(
    package: *const ota_verified_package,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let p = try_ref!(package);
        write_handle(
            download_out,
            ota_download {
                inner: Download::new(&p.inner),
            },
        )
    })
}

/// Resumes a download from its saved state (`ota_download_state`): every chunk the state
/// marks is read back through `io->stage_read` and checked again; one that no longer matches
/// is missing again.
///
/// Takes ownership of nothing. On success, `*download_out` receives a new download that the
/// caller must free with `ota_download_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `state` must point to `state_len` readable
/// bytes; `io` to a valid `ota_device_io`; `download_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_resume(
    package: *const ota_verified_package,
    state: *const u8,
    state_len: usize,
    io: *const ota_device_io,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let p = try_ref!(package);
        let state: DownloadState =
            ota_core::json::from_slice("download state", try_slice!(state, state_len), 1 << 24)?;
        let mut io = HostIo::new(try_ref!(io))?;
        if download_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`download_out` is NULL"));
        }
        let (inner, _) = Download::resume(&p.inner, &state, &mut io)?;
        write_handle(download_out, ota_download { inner })
    })
}

/// Lists up to `max` missing chunks, in order: their offsets into `offsets` and lengths into
/// `lengths`; `*out_n` receives how many were written.
///
/// # Safety
///
/// `download` must be a live download; `offsets` and `lengths` must each point to `max`
/// writable elements (or be NULL when `max` is 0); `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_plan(
    download: *const ota_download,
    offsets: *mut u64,
    lengths: *mut u32,
    max: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        if max > 0 && (offsets.is_null() || lengths.is_null()) {
            return Err(Failure::new(
                Status::NullPointer,
                "`offsets` or `lengths` is NULL",
            ));
        }
        let plan = d.inner.plan(max);
        for (i, r) in plan.iter().enumerate() {
            unsafe {
                offsets.add(i).write(r.offset);
                lengths.add(i).write(r.length);
            }
        }
        write_out(out_n, plan.len())
    })
}

/// Takes a chunk that arrived at `offset`: checks its place and its signed digest, then
/// stores it through `io->stage_write`. A bad chunk is refused with its index in the last
/// error and stays missing; `*new_out` (may be NULL) says whether the chunk was new.
///
/// # Safety
///
/// `download` must be a live download; `data` must point to `data_len` readable bytes; `io`
/// to a valid `ota_device_io`; `new_out` must be NULL or point to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_accept(
    download: *mut ota_download,
    offset: u64,
    data: *const u8,
    data_len: usize,
    io: *const ota_device_io,
    new_out: *mut bool,
) -> Status {
    call(|| {
        let d = try_mut!(download);
        let data = try_slice!(data, data_len);
        let mut io = HostIo::new(try_ref!(io))?;
        let accepted = d.inner.accept(offset, data, &mut io)?;
        if !new_out.is_null() {
            write_out(new_out, matches!(accepted, Accepted::New { .. }))?;
        }
        Ok(())
    })
}

/// Writes the download's state (which chunks are verified) as JSON into `buf`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `download` must be a live download; `buf` must point to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_state(
    download: *const ota_download,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        unsafe {
            write_text(
                &ota_core::json::to_string(&d.inner.state()),
                buf,
                buf_len,
                out_n,
            )
        }
    })
}

/// How far the download is: chunks verified and chunks in all.
///
/// # Safety
///
/// `download` must be a live download; `verified_out` and `total_out` must point to writable
/// `size_t`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_progress(
    download: *const ota_download,
    verified_out: *mut usize,
    total_out: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        if verified_out.is_null() || total_out.is_null() {
            return Err(Failure::new(
                Status::NullPointer,
                "an output pointer is NULL",
            ));
        }
        write_out(verified_out, d.inner.verified_count())?;
        write_out(total_out, d.inner.chunk_count())
    })
}

/// Frees a download. NULL is allowed and does nothing.
///
/// # Safety
///
/// `download` must be NULL or a download not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_free(download: *mut ota_download) {
    crate::panic::guard(|| unsafe { free_handle(download) })
}

/// An install of a download's verified prefix into a slot. Made by `ota_install_new`, freed
/// by `ota_install_free`.
#[allow(non_camel_case_types)]
pub struct ota_install {
    inner: Option<Install<CallbackWriter>>,
}

/// Starts installing a verified package's artifact, opened with `key`, into a slot written
/// through `write(ctx, ...)` (which must start empty).
///
/// Takes ownership of nothing; `ctx` is passed back to `write` untouched. On success,
/// `*install_out` receives a new install that the caller must free with `ota_install_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `key` must point to `key_len` (32) readable
/// bytes; `write` must be callable with `ctx` until the install is finished or freed;
/// `install_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_new(
    package: *const ota_verified_package,
    key: *const u8,
    key_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    install_out: *mut *mut ota_install,
) -> Status {
    call(|| {
        let p = try_ref!(package);
        let key = ota_core::seal::SealKey::from_bytes(key32(
            try_slice!(key, key_len),
            "an encryption key",
        )?);
        let out = CallbackWriter::new(write, ctx)?;
        if install_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`install_out` is NULL"));
        }
        write_handle(
            install_out,
            ota_install {
                inner: Some(Install::new(&p.inner, &key, out)),
            },
        )
    })
}

/// Installs every verified chunk that continues the installed prefix, reading each back
/// through `io->stage_read` and checking it again first. A stored chunk that went bad is
/// marked missing in `download` (`OTA_STATUS_STORED_CHUNK_CORRUPT`, naming it).
/// `*installed_out` (may be NULL) receives how many chunks are installed.
///
/// # Safety
///
/// `install` and `download` must be live; `io` must point to a valid `ota_device_io`;
/// `installed_out` must be NULL or point to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_advance(
    install: *mut ota_install,
    download: *mut ota_download,
    io: *const ota_device_io,
    installed_out: *mut usize,
) -> Status {
    call(|| {
        let i = try_mut!(install);
        let d = try_mut!(download);
        let mut io = HostIo::new(try_ref!(io))?;
        let inst = i
            .inner
            .as_mut()
            .ok_or_else(|| Failure::new(Status::InvalidArgument, "the install is finished"))?;
        inst.advance(&mut d.inner, &mut io)?;
        if !installed_out.is_null() {
            write_out(installed_out, inst.installed())?;
        }
        Ok(())
    })
}

/// Ends the install once every chunk is in: confirms the artifact's SHA-256 and the
/// plaintext's size and digest, and writes `{"plaintext_size", "plaintext_sha256"}` into
/// `buf`. Only success means the slot holds the complete new version.
///
/// Takes ownership of nothing. When `buf_len` is too small, returns
/// `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the install is finished all
/// the same, and a second call fails.
///
/// # Safety
///
/// `install` must be live; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_finish(
    install: *mut ota_install,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let i = try_mut!(install);
        let inst = i
            .inner
            .take()
            .ok_or_else(|| Failure::new(Status::InvalidArgument, "the install is finished"))?;
        let (opened, _) = inst.finish()?;
        unsafe { write_text(&ota_core::json::to_string(&opened), buf, buf_len, out_n) }
    })
}

/// Frees an install. NULL is allowed and does nothing.
///
/// # Safety
///
/// `install` must be NULL or an install not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_free(install: *mut ota_install) {
    crate::panic::guard(|| unsafe { free_handle(install) })
}

/// Runs a health probe (JSON, as in a probe command) for real: an allowlisted executable
/// (killed at its timeout), an HTTP GET to loopback, or a readiness file newer than
/// `swapped_at` (Unix ms). `allowlist` is a JSON array of the executables allowed.
/// `*healthy_out` receives the verdict and `buf` what the probe saw. A probe the allowlist
/// refuses is unhealthy.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n` (the probe ran).
///
/// # Safety
///
/// `spec` must point to `spec_len` readable bytes and `allowlist` to `allowlist_len`;
/// `healthy_out` must point to a writable `bool`; `buf` to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[cfg(feature = "probe-runners")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_probe_run(
    spec: *const u8,
    spec_len: usize,
    allowlist: *const u8,
    allowlist_len: usize,
    swapped_at: u64,
    healthy_out: *mut bool,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let spec: ota_core::probe::ProbeSpec =
            ota_core::json::from_slice("probe", try_str!(spec, spec_len).as_bytes(), 1 << 16)?;
        let allow: Vec<String> = ota_core::json::from_slice(
            "allowlist",
            try_str!(allowlist, allowlist_len).as_bytes(),
            1 << 16,
        )?;
        if healthy_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`healthy_out` is NULL"));
        }
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(swapped_at);
        let r = ota_host::probe::run(&spec, &allow, at);
        write_out(healthy_out, r.healthy)?;
        unsafe { write_text(&r.detail, buf, buf_len, out_n) }
    })
}
