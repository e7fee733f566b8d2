//! The agent's [`DeviceIo`]: staged chunks in `STATE_DIR/staging` (addressed by offset, no
//! fsync needed: a restart re-verifies every chunk it finds there), and the inactive slot.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use ota_core::agent::DeviceIo;
use ota_core::download::Staging;

use crate::error::DaemonError;
use crate::slots::Slots;

/// Staging storage and the slots.
pub struct DeviceStore {
    staging: File,
    staging_path: PathBuf,
    /// The slots.
    pub slots: Slots,
}

impl DeviceStore {
    /// The staging file at `staging_path` (created if missing, kept if present) and the slots.
    pub fn open(staging_path: PathBuf, slots: Slots) -> Result<DeviceStore, DaemonError> {
        let staging = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&staging_path)
            .map_err(|e| DaemonError::io("staging", &staging_path, e))?;
        Ok(DeviceStore {
            staging,
            staging_path,
            slots,
        })
    }

    /// Frees the staged chunks (after an update ends).
    pub fn clear_staging(&mut self) -> Result<(), DaemonError> {
        self.staging
            .set_len(0)
            .map_err(|e| DaemonError::io("staging", &self.staging_path, e))
    }
}

impl Staging for DeviceStore {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.staging.write_all_at(data, offset)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.staging.read_exact_at(buf, offset)
    }
}

impl DeviceIo for DeviceStore {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        self.slots.open_inactive()
    }
}
