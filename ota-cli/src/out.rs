//! What a command gives back, how it is printed, and the exit codes.
//!
//! Exit 0: done. Exit 1: the inputs were read, and something about them fails — validation,
//! verification, compatibility or policy. Exit 2: the command could not do its job — bad
//! arguments, a file that cannot be read or written, an unusable key, a store or network
//! error. Every message is one line that names the file and, where there is one, the field.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

use ota_core::json::ParseError;
use serde_json::{Value, json};

/// A command's result: what to print, and whether it passed (exit 0) or failed (exit 1).
pub struct Outcome {
    /// Exit 0 when true, 1 when false.
    pub ok: bool,
    /// The human-readable text (stdout).
    pub text: String,
    /// The `--json` form (stdout).
    pub json: Value,
}

impl Outcome {
    /// A passing result.
    pub fn ok(text: impl Into<String>, json: Value) -> Self {
        Outcome {
            ok: true,
            text: text.into(),
            json,
        }
    }

    /// A failing result (exit 1) that still has a report to print.
    pub fn failed(text: impl Into<String>, json: Value) -> Self {
        Outcome {
            ok: false,
            text: text.into(),
            json,
        }
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

/// Prints outcomes and errors, as text or as JSON.
#[derive(Clone, Copy)]
pub struct Out {
    /// `--json`.
    pub json: bool,
}

impl Out {
    /// Prints a command's outcome on stdout.
    pub fn outcome(&self, o: &Outcome) {
        let mut stdout = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(stdout, "{}", o.json)
        } else if o.text.is_empty() {
            Ok(())
        } else {
            writeln!(stdout, "{}", o.text.trim_end())
        };
    }

    /// Prints an error: one line on stderr, and with `--json` an object on stdout too.
    pub fn error(&self, e: &CliError) {
        eprintln!("ota: error: {}", e.message);
        if self.json {
            println!(
                "{}",
                json!({"ok": false, "exit_code": e.code, "status": e.status, "error": e.message})
            );
        }
    }
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::io(path, e))
}

/// Reads a whole file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read(path)?)
        .map_err(|_| CliError::usage(format!("{}: not UTF-8 text", path.display())))
}

/// Writes a file atomically: a temporary file in the same directory, renamed over `path` only
/// when complete. `private` makes it readable by its owner only.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), CliError> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| CliError::io(dir, e))?;
    if !private {
        set_mode(tmp.path(), 0o644)?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| CliError::io(path, e))?;
    tmp.persist(path).map_err(|e| CliError::io(path, e.error))?;
    Ok(())
}

/// The directory a file is in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

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
