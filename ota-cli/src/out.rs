//! What a command gives back, how it is printed, and the exit codes.
//!
//! Exit 0: done. Exit 1: the inputs were read, and something about them fails — validation,
//! verification, compatibility or policy. Exit 2: the command could not do its job — bad
//! arguments, a file that cannot be read or written, an unusable key, a store or network
//! error. Every message is one line that names the file and, where there is one, the field.
//!
//! With `--json`, every command — usage errors included — prints exactly one JSON object on
//! stdout, of one shape (schema version [`SCHEMA_VERSION`]):
//!
//! ```json
//! {"schema_version": 1, "command": "verify", "ok": false, "exit_code": 1,
//!  "error": "out/a.enc: chunk 2 (bytes 131072..196608) does not match its signed digest; ...",
//!  "status": "chunk_digest_mismatch", "...": "the command's own fields"}
//! ```
//!
//! - `schema_version`: this shape's version; it changes only when a field below changes
//!   meaning or goes away.
//! - `command`: the subcommand path (`pack`, `manifest validate`, `tuf refresh`), or `""` when
//!   none was recognised.
//! - `ok`: true exactly when `exit_code` is 0.
//! - `exit_code`: the process's exit code (0, 1 or 2; `ota tuf` uses only 0 and 1).
//! - `error`: `null` when `ok`, otherwise one line naming the file and the field (for an error
//!   that stops the command, the line printed on stderr, without its `ota: error: ` prefix;
//!   for a failing report, its first line).
//! - `status`: the library's status name when the library refused something
//!   (`digest_mismatch`, `unknown_field`...), otherwise `null`.
//!
//! The command's own fields (`package_id`, `faults`, `bad_chunks`...) sit beside these, in
//! the same object; a command that fails with a report (`ota check`, `ota manifest validate`,
//! `ota verify`) keeps its report's fields. `--help` and `--version` print text.

use std::fmt::Display;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ota_core::json::ParseError;
use serde_json::{Value, json};

use crate::outputs::Outputs;

/// A command's result: what to print, and whether it passed (exit 0) or failed (exit 1).
pub struct Outcome {
    /// Exit 0 when true, 1 when false.
    pub ok: bool,
    /// The human-readable text (stdout).
    pub text: String,
    /// The `--json` form (stdout).
    pub json: Value,
    /// A field of the `--json` form too large to hold (its key, and what writes its value in
    /// place when the object is printed); `json` holds `null` under that key.
    pub streamed: Option<(&'static str, Box<dyn Streamed>)>,
}

/// A JSON value written straight to the output instead of held in memory.
pub trait Streamed {
    /// Writes the value as compact JSON.
    fn write_json(&self, w: &mut dyn Write) -> std::io::Result<()>;
}

impl Outcome {
    /// A passing result.
    pub fn ok(text: impl Into<String>, json: Value) -> Self {
        Outcome {
            ok: true,
            text: text.into(),
            json,
            streamed: None,
        }
    }

    /// A failing result (exit 1) that still has a report to print.
    pub fn failed(text: impl Into<String>, json: Value) -> Self {
        Outcome {
            ok: false,
            text: text.into(),
            json,
            streamed: None,
        }
    }

    /// The same outcome, with the `--json` field `key` written by `value` when printed.
    pub fn streamed(mut self, key: &'static str, value: Box<dyn Streamed>) -> Self {
        if let Value::Object(o) = &mut self.json {
            o.insert(key.into(), Value::Null);
        }
        self.streamed = Some((key, value));
        self
    }
}

/// A command that could not finish.
#[derive(Debug)]
pub struct CliError {
    /// 1 (a failure of the inputs) or 2 (usage or I/O).
    pub code: u8,
    /// The library's status name, when the library refused something.
    pub status: Option<&'static str>,
    /// One line naming the file and field.
    pub message: String,
}

impl CliError {
    /// Exit 1: the inputs fail a check.
    pub fn failure(status: Option<ota_core::Status>, message: impl Display) -> Self {
        CliError {
            code: 1,
            status: status.map(|s| s.name()),
            message: message.to_string(),
        }
    }

    /// Exit 2: usage, I/O, keys, network.
    pub fn usage(message: impl Display) -> Self {
        CliError {
            code: 2,
            status: None,
            message: message.to_string(),
        }
    }

    /// Exit 2: an I/O error on `path`.
    pub fn io(path: &Path, e: impl Display) -> Self {
        Self::usage(format!("{}: {e}", path.display()))
    }

    /// Exit 1: the document in `path` does not parse or validate (the message names the
    /// field).
    pub fn parse(path: &Path, e: &ParseError) -> Self {
        Self::failure(Some(e.status()), format!("{}: {e}", path.display()))
    }
}

/// The version of the `--json` shape (see the module documentation).
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` object: the command's own fields with the common ones set.
pub fn shaped(command: &str, exit_code: u8, error: Option<&CliError>, own: Value) -> Value {
    let mut o = match own {
        Value::Object(o) => o,
        Value::Null => serde_json::Map::new(),
        other => {
            let mut o = serde_json::Map::new();
            o.insert("result".into(), other);
            o
        }
    };
    o.insert("schema_version".into(), json!(SCHEMA_VERSION));
    o.insert("command".into(), json!(command));
    o.insert("ok".into(), json!(exit_code == 0));
    o.insert("exit_code".into(), json!(exit_code));
    match error {
        Some(e) => {
            o.insert("error".into(), json!(e.message));
            o.insert("status".into(), json!(e.status));
        }
        None if exit_code == 0 => {
            o.insert("error".into(), Value::Null);
            o.entry("status").or_insert(Value::Null);
        }
        None => {
            o.entry("status").or_insert(Value::Null);
        }
    }
    Value::Object(o)
}

/// Prints outcomes and errors, as text or as JSON.
#[derive(Clone, Copy)]
pub struct Out {
    /// `--json`.
    pub json: bool,
}

impl Out {
    /// Prints a command's outcome on stdout; gives the exit code (0 when it passed, else 1;
    /// 2 when the outcome could not be written: a full disk or a closed pipe must not pass for
    /// a complete answer).
    pub fn outcome(&self, command: &str, o: &Outcome) -> u8 {
        let code = u8::from(!o.ok);
        let mut stdout = std::io::stdout().lock();
        let written = if self.json {
            let mut j = shaped(command, code, None, o.json.clone());
            if !o.ok && j.get("error").is_none_or(Value::is_null) {
                // A failing report's first line is its error.
                let first = o
                    .text
                    .lines()
                    .next()
                    .unwrap_or("failed")
                    .trim_end_matches(':');
                j["error"] = json!(first);
            }
            match (&o.streamed, &j) {
                (Some((key, value)), Value::Object(fields)) => {
                    write_streamed(&mut stdout, fields, key, value.as_ref())
                }
                _ => writeln!(stdout, "{j}"),
            }
        } else if o.text.is_empty() {
            Ok(())
        } else {
            writeln!(stdout, "{}", o.text.trim_end())
        };
        match written.and_then(|()| stdout.flush()) {
            Ok(()) => code,
            Err(e) => {
                eprintln!("ota: error: stdout: the answer was not written whole: {e}");
                2
            }
        }
    }

    /// Prints an error: one line on stderr, and with `--json` the object on stdout too (a
    /// stdout that cannot take it changes nothing: the exit code says the command failed).
    pub fn error(&self, command: &str, e: &CliError) {
        eprintln!("ota: error: {}", e.message);
        if self.json {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", shaped(command, e.code, Some(e), Value::Null))
                .and_then(|()| stdout.flush());
        }
    }
}

/// Writes `fields` as one line of compact JSON (as `Value`'s `Display` does), the value under
/// `key` written by `value`.
fn write_streamed(
    w: &mut impl Write,
    fields: &serde_json::Map<String, Value>,
    key: &str,
    value: &dyn Streamed,
) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    w.write_all(b"{")?;
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut w, k)?;
        w.write_all(b":")?;
        if k == key {
            value.write_json(&mut w)?;
        } else {
            serde_json::to_writer(&mut w, v)?;
        }
    }
    w.write_all(b"}\n")?;
    w.flush()
}

/// Refuses to replace what is not a regular file at `--out` (a device, a FIFO, a symbolic
/// link, a directory): writing there would feed a device, block on a FIFO, or follow a link
/// elsewhere. `force`: whether the command has `--force` and it was given (`None`: it has
/// none); a directory is never replaced.
pub fn refuse_special(out: &Path, force: Option<bool>) -> Result<(), CliError> {
    let Ok(m) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    let kind = m.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a device, FIFO or socket"
    };
    if force == Some(true) && !kind.is_dir() {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "--out {}: {what}, not a regular file; it is not replaced{}",
        out.display(),
        if kind.is_dir() || force.is_none() {
            ""
        } else {
            " (give --force to replace it)"
        }
    )))
}

/// Reads a whole file of at most `max` bytes; a larger one (or an endless one, `/dev/zero`) is
/// refused as soon as it passes the bound, without reading further.
pub fn read(path: &Path, max: usize) -> Result<Vec<u8>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take((max as u64).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io(path, e))?;
    if bytes.len() > max {
        return Err(CliError::failure(
            Some(ota_core::Status::TooLarge),
            format!("{}: larger than the limit of {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Reads a whole file of at most `max` bytes as UTF-8 text.
pub fn read_text(path: &Path, max: usize) -> Result<String, CliError> {
    String::from_utf8(read(path, max)?)
        .map_err(|_| CliError::usage(format!("{}: not UTF-8 text", path.display())))
}

/// A writer that remembers whether a write to it failed, so that an error surfacing later
/// (through a library's error type) can be blamed on the output rather than the input.
pub struct Watched<W> {
    inner: W,
    failed: Arc<AtomicBool>,
}

impl<W> Watched<W> {
    /// Watches `inner`; the flag turns true on its first failed write or flush.
    /// (An atomic flag: the writer may be on another thread, as the two-thread pipeline's is.)
    pub fn new(inner: W) -> (Self, Arc<AtomicBool>) {
        let failed = Arc::new(AtomicBool::new(false));
        (
            Watched {
                inner,
                failed: failed.clone(),
            },
            failed,
        )
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner
            .write(buf)
            .inspect_err(|_| self.failed.store(true, Ordering::SeqCst))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|_| self.failed.store(true, Ordering::SeqCst))
    }
}

/// The most a key file (a PEM key, a hex key, a key id) may hold: 64 KiB.
pub const MAX_KEY_FILE_BYTES: usize = 64 << 10;

/// Writes a file atomically: a temporary file in the same directory, renamed over `path` only
/// when complete. `private` makes it readable by its owner only (0600, else 0644). Directories
/// it creates are owner-only, and removed again on failure (see [`crate::outputs`]).
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), CliError> {
    let mut outs = Outputs::new();
    outs.bytes(path, bytes, if private { 0o600 } else { 0o644 })?;
    outs.commit()
}

/// The directory a file is in (`.` for a bare name).
pub use ota_host::durable::parent;

/// Sets a file's permission bits (Unix only).
#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| CliError::io(path, e))
}

/// Sets a file's permission bits (Unix only).
#[cfg(not(unix))]
pub fn set_mode(_: &Path, _: u32) -> Result<(), CliError> {
    Ok(())
}

/// Bytes in a human unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Whether a line of progress could not be written: stdout's reader went away
/// (`ota demo | head`).
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints one line of a long command's progress on stdout. When stdout is gone (a pipe whose
/// reader ended), prints nothing more and remembers it ([`stdout_gone`]): the command stops
/// through its failure path (removing what it made), instead of a panic.
pub fn progress(line: &str) {
    if stdout_gone() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        STDOUT_GONE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether [`progress`] found stdout gone.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(std::sync::atomic::Ordering::SeqCst)
}

/// The error of a command that stopped because its stdout went away.
pub fn stdout_gone_error() -> CliError {
    CliError::usage("stdout was closed (its reader went away): stopped")
}
