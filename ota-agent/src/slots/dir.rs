//! A/B directories: `ROOT/a` and `ROOT/b`, and the symlink `ROOT/current` naming the active
//! one, replaced atomically (a new symlink renamed over the old). The previous directory
//! stays as it was, for a restore.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{Slot, SlotBackend, Switched, SyncWriter};
use crate::error::DaemonError;
use crate::store::sync_dir;

/// Directory slots under a root.
pub struct DirSlots {
    root: PathBuf,
    file: String,
}

impl DirSlots {
    /// The slots under `root`, each holding `file`.
    pub fn new(root: PathBuf, file: String) -> Result<DirSlots, DaemonError> {
        std::fs::create_dir_all(&root).map_err(|e| DaemonError::io("slots", &root, e))?;
        Ok(DirSlots { root, file })
    }

    fn current(&self) -> PathBuf {
        self.root.join("current")
    }
}

impl SlotBackend for DirSlots {
    fn active(&mut self, _last: Option<Slot>) -> Result<Option<Slot>, DaemonError> {
        match std::fs::read_link(self.current()) {
            Ok(target) => Ok(target.to_str().and_then(Slot::parse)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DaemonError::io("slots", &self.current(), e)),
        }
    }

    fn open(&mut self, slot: Slot) -> io::Result<Box<dyn Write + Send>> {
        let dir = self.root.join(slot.as_str());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&dir)?;
        let f = std::fs::File::create(dir.join(&self.file))?;
        sync_dir(&dir)?;
        Ok(Box::new(SyncWriter::new(f)))
    }

    fn switch(&mut self, slot: Slot) -> Result<Switched, DaemonError> {
        let io = |e| DaemonError::io("slots", &self.root, e);
        std::fs::create_dir_all(self.root.join(slot.as_str())).map_err(io)?;
        let tmp = self.root.join("current.tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::os::unix::fs::symlink(slot.as_str(), &tmp).map_err(io)?;
        std::fs::rename(&tmp, self.current()).map_err(io)?;
        sync_dir(&self.root).map_err(io)?;
        Ok(Switched::Done)
    }

    fn confirm(&mut self) -> Result<(), DaemonError> {
        Ok(())
    }

    fn reboot(&mut self) -> Result<(), DaemonError> {
        Ok(())
    }
}
