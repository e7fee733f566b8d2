//! A command's outputs, written so that a failed run leaves nothing new behind and loses
//! nothing old.
//!
//! - Directories a run creates are owner-only (0700, whatever the umask), and are removed
//!   again (when empty) unless the run commits.
//! - Each output is written to a temporary file beside its target ([`Outputs::temp`],
//!   [`Outputs::bytes`]) and staged; [`Outputs::commit`] renames them over their targets in
//!   the order staged. When one rename fails, those already done are undone: the file each
//!   replaced (kept by a hard link until the end) goes back, or the new file goes away.
//! - Private files are created 0600 by `tempfile`; public ones are set to 0644 explicitly, so
//!   the umask changes neither.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::out::{self, CliError};

/// One staged output: its temporary file, its target and its mode.
struct Staged {
    tmp: NamedTempFile,
    target: PathBuf,
    mode: u32,
}

/// The directories and files of one run, committed together or not at all.
#[derive(Default)]
pub struct Outputs {
    /// Directories this run created, parents first.
    created: Vec<PathBuf>,
    staged: Vec<Staged>,
    committed: bool,
}

impl Outputs {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `dir` and its missing parents, each owner-only (0700), remembering which this
    /// run created.
    pub fn dir(&mut self, dir: &Path) -> Result<(), CliError> {
        let mut missing = Vec::new();
        let mut d = dir;
        loop {
            if d.as_os_str().is_empty() || std::fs::symlink_metadata(d).is_ok() {
                break;
            }
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(&d) {
                Ok(()) => {
                    self.created.push(d.clone());
                    out::set_mode(&d, 0o700)?;
                }
                // Made meanwhile by someone else: not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CliError::io(&d, e)),
            }
        }
        if !dir.is_dir() {
            return Err(CliError::io(dir, "not a directory"));
        }
        Ok(())
    }

    /// A temporary file (0600) in `target`'s directory, created first if need be.
    pub fn temp(&mut self, target: &Path) -> Result<NamedTempFile, CliError> {
        let dir = out::parent(target);
        self.dir(dir)?;
        NamedTempFile::new_in(dir).map_err(|e| CliError::io(dir, e))
    }

    /// A scratch file beside `target` that is never kept, and that no death of the process
    /// leaves behind (`O_TMPFILE`; see [`crate::unnamed`]): a model's plaintext tar.
    pub fn scratch(&mut self, target: &Path) -> Result<crate::unnamed::Unnamed, CliError> {
        let dir = out::parent(target);
        self.dir(dir)?;
        crate::unnamed::Unnamed::new_in(dir)
    }

    /// Stages a written temporary file to become `target` with `mode` on commit (synced to
    /// disk here).
    pub fn stage(&mut self, tmp: NamedTempFile, target: &Path, mode: u32) -> Result<(), CliError> {
        tmp.as_file()
            .sync_all()
            .map_err(|e| CliError::io(target, e))?;
        self.staged.push(Staged {
            tmp,
            target: target.to_path_buf(),
            mode,
        });
        Ok(())
    }

    /// Writes `bytes` to a temporary file and stages it to become `target` with `mode`.
    pub fn bytes(&mut self, target: &Path, bytes: &[u8], mode: u32) -> Result<(), CliError> {
        let mut tmp = self.temp(target)?;
        tmp.write_all(bytes).map_err(|e| CliError::io(target, e))?;
        self.stage(tmp, target, mode)
    }

    /// Renames every staged file over its target, in the order staged; on a failure, puts
    /// back what the earlier renames replaced, and removes the directories this run created.
    pub fn commit(mut self) -> Result<(), CliError> {
        // What each rename replaced, kept by a hard link until all are done.
        let mut done: Vec<(PathBuf, Option<NamedTempFile<()>>)> = Vec::new();
        let staged = std::mem::take(&mut self.staged);
        for s in staged {
            let result = (|| {
                out::set_mode(s.tmp.path(), s.mode)?;
                let old = keep_old(&s.target)?;
                s.tmp
                    .persist(&s.target)
                    .map_err(|e| CliError::io(&s.target, e.error))?;
                Ok(old)
            })();
            match result {
                Ok(old) => done.push((s.target, old)),
                Err(e) => {
                    for (target, old) in done.into_iter().rev() {
                        match old {
                            Some(old) => {
                                let _ = old.persist(&target);
                            }
                            None => {
                                let _ = std::fs::remove_file(&target);
                            }
                        }
                    }
                    return Err(e);
                }
            }
        }
        let mut dirs: Vec<&Path> = done.iter().map(|(t, _)| out::parent(t)).collect();
        dirs.dedup();
        for d in dirs {
            sync_dir(d);
        }
        self.committed = true;
        Ok(())
    }

    /// Keeps what this run made: its directories stay.
    pub fn keep(mut self) {
        self.committed = true;
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        // Temporary files first, so that the directories are empty.
        self.staged.clear();
        if !self.committed {
            for d in self.created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// A hard link to the regular file at `target`, if there is one, under a temporary name beside
/// it (removed when dropped).
fn keep_old(target: &Path) -> Result<Option<NamedTempFile<()>>, CliError> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_file() => tempfile::Builder::new()
            .prefix(".ota-old")
            .make_in(out::parent(target), |p| std::fs::hard_link(target, p))
            .map(Some)
            .map_err(|e| CliError::io(target, e)),
        _ => Ok(None),
    }
}

/// Makes the renames in `dir` durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
