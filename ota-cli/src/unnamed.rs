//! A temporary file that cannot outlive the process, given a name only when complete.
//!
//! On Linux it is opened with `O_TMPFILE`: it has no name until [`Unnamed::persist`] links it
//! into its directory, so a process that dies (a signal, a power cut, `kill -9`) leaves
//! nothing. Where the platform or the file system lacks `O_TMPFILE`, it is a hidden named
//! file, removed on drop (and so on SIGINT and SIGTERM, which `ota` turns into errors; see
//! [`crate::signals`]).

use std::fs::File;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::out::{self, CliError};

/// The file, anonymous or hidden.
pub enum Unnamed {
    /// Opened with `O_TMPFILE`: no name yet.
    Anonymous(File),
    /// A hidden named file, removed on drop.
    Named(NamedTempFile),
}

impl Unnamed {
    /// A new, empty file (0600) in `dir`, for writing.
    pub fn new_in(dir: &Path) -> Result<Unnamed, CliError> {
        #[cfg(target_os = "linux")]
        if let Some(f) = anonymous(dir)? {
            return Ok(Unnamed::Anonymous(f));
        }
        NamedTempFile::new_in(dir)
            .map(Unnamed::Named)
            .map_err(|e| CliError::io(dir, e))
    }

    /// The open file.
    pub fn file(&self) -> &File {
        match self {
            Unnamed::Anonymous(f) => f,
            Unnamed::Named(t) => t.as_file(),
        }
    }

    /// Syncs the file, sets its mode, and puts it at `target` (replacing what is there).
    pub fn persist(self, target: &Path, mode: u32) -> Result<(), CliError> {
        self.file()
            .sync_all()
            .map_err(|e| CliError::io(target, e))?;
        set_mode(self.file(), mode).map_err(|e| CliError::io(target, e))?;
        let named = match self {
            Unnamed::Named(t) => t,
            #[cfg(target_os = "linux")]
            Unnamed::Anonymous(f) => {
                // A name beside the target, then a rename over it: `linkat` never replaces.
                let t = tempfile::Builder::new()
                    .make_in(out::parent(target), |p| link(&f, p))
                    .map_err(|e| CliError::io(target, e))?;
                NamedTempFile::from_parts(f, t.into_temp_path())
            }
            #[cfg(not(target_os = "linux"))]
            Unnamed::Anonymous(_) => unreachable!("O_TMPFILE is Linux's"),
        };
        named
            .persist(target)
            .map_err(|e| CliError::io(target, e.error))?;
        if let Ok(d) = File::open(out::parent(target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The process's umask, read from `/proc/self/status` (reading it with `umask(2)` would set
/// it, for a moment, for every thread); 077 where that is not there, the strictest reading.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o077)
        & 0o777
}

#[cfg(unix)]
fn set_mode(f: &File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &File, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// An `O_TMPFILE` file in `dir`, or `None` where the file system does not offer it.
#[cfg(target_os = "linux")]
fn anonymous(dir: &Path) -> Result<Option<File>, CliError> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    use rustix::io::Errno;
    match openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        // Not offered here (old kernel, or a file system without it).
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) if dir.is_dir() => {
            Ok(None)
        }
        Err(e) => Err(CliError::io(dir, std::io::Error::from(e))),
    }
}

/// Gives the anonymous file `f` the name `name`.
#[cfg(target_os = "linux")]
fn link(f: &File, name: &Path) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, linkat};
    // With AT_EMPTY_PATH when allowed (it needs CAP_DAC_READ_SEARCH), else through /proc.
    if linkat(f, "", CWD, name, AtFlags::EMPTY_PATH).is_ok() {
        return Ok(());
    }
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
    linkat(CWD, proc.as_str(), CWD, name, AtFlags::SYMLINK_FOLLOW).map_err(Into::into)
}
