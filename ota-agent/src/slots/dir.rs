//! A/B directories: `ROOT/a` and `ROOT/b`, and the symlink `ROOT/current` naming the active
//! one, replaced atomically (a new symlink renamed over the old). The previous directory
//! stays as it was, for a restore. The directories themselves are `ota-host`'s
//! [`ota_host::dir_slots::DirSlots`], which the reference file device of the C ABI uses too.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{Slot, SlotBackend, Switched};
use crate::error::DaemonError;

/// Directory slots under a root.
pub struct DirSlots {
    inner: ota_host::dir_slots::DirSlots,
}

impl DirSlots {
    /// The slots under `root`, each holding `file`.
    pub fn new(root: PathBuf, file: String) -> Result<DirSlots, DaemonError> {
        let inner = ota_host::dir_slots::DirSlots::new(root.clone(), file)
            .map_err(|e| DaemonError::io("slots", &root, e))?;
        Ok(DirSlots { inner })
    }
}

impl SlotBackend for DirSlots {
    fn active(&mut self, _last: Option<Slot>) -> Result<Option<Slot>, DaemonError> {
        self.inner
            .active()
            .map_err(|e| DaemonError::io("slots", &self.inner.current(), e))
    }

    fn open(&mut self, slot: Slot) -> io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.inner.open(slot)?))
    }

    fn switch(&mut self, slot: Slot) -> Result<Switched, DaemonError> {
        self.inner
            .switch(slot)
            .map_err(|e| DaemonError::io("slots", self.inner.root(), e))?;
        Ok(Switched::Done)
    }

    fn confirm(&mut self) -> Result<(), DaemonError> {
        Ok(())
    }

    fn reboot(&mut self) -> Result<(), DaemonError> {
        Ok(())
    }

    fn holds(&mut self, slot: Slot) -> bool {
        self.inner.holds(slot)
    }

    fn deactivate(&mut self) -> Result<(), DaemonError> {
        self.inner
            .deactivate()
            .map_err(|e| DaemonError::io("slots", self.inner.root(), e))
    }
}
