//! A reference device over plain files: where a firmware developer starts from working code.
//! It is the agent's [`DeviceIo`] (staging and the inactive slot), and it carries out the
//! agent's persist, swap and restore commands durably.
//!
//! ```text
//! DIR/record.json        the agent's record: replaced whole, fsynced (Output::Persist)
//! DIR/staging.bin        verified chunks at their offsets (re-verified after a restart, so
//!                        not fsynced)
//! DIR/slots/a/FILE       slot a's installed file (FILE: `payload` unless told otherwise)
//! DIR/slots/b/FILE       slot b's
//! DIR/slots/current      symlink to the active slot, switched by an atomic rename
//! DIR/label-a, label-b   what each slot holds: the text of the swap that activated it
//! ```
//!
//! Swaps and restores are never toggles, so one repeated after a power cut does nothing more:
//! a swap whose update the active slot holds already does nothing, and a restore switches
//! back only while the active slot holds the failed update. A real device keeps this shape
//! and replaces the slot directories and the symlink with its partitions and its
//! bootloader's switch.
//!
//! ```no_run
//! use ota_core::agent::{Agent, AgentConfig, Output};
//! use ota_host::file_device::FileDevice;
//! # fn run(config: AgentConfig, now: ota_core::UnixMs) -> std::io::Result<()> {
//! let mut dev = FileDevice::open("/var/lib/ota".as_ref(), "payload")?;
//! let record = dev.record()?.map(|text| {
//!     ota_core::agent::AgentRecord::from_json(&text, &config.limits).expect("a valid record")
//! });
//! let mut agent = Agent::new(config, record, now, &mut dev);
//! while let Some(output) = agent.poll() {
//!     match output {
//!         Output::Persist(record) => dev.persist(record.to_json().as_bytes())?,
//!         Output::Swap { to } => dev.swap(to.to_json().as_bytes())?,
//!         Output::RestorePrevious { from } => dev.restore(from.to_json().as_bytes())?,
//!         _ => { /* fetch, probe, report: the network and the probe runner */ }
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ota_core::agent::DeviceIo;
use ota_core::download::Staging;

use crate::dir_slots::{DirSlots, Slot};
use crate::durable::{read_optional, remove_partials, write_atomic};

/// The reference file-backed device: staging, two slots, their labels and the agent's
/// record under one directory.
#[derive(Debug)]
pub struct FileDevice {
    dir: PathBuf,
    staging: File,
    slots: DirSlots,
}

impl FileDevice {
    /// The device under `dir` (created if missing), each slot holding `slot_file`. The
    /// directory is the device's alone: what a crash left of a file replaced in it (hidden
    /// `.*.partial` files, [`crate::durable::remove_partials`]) is removed here.
    pub fn open(dir: &Path, slot_file: &str) -> io::Result<FileDevice> {
        crate::durable::create_dir_all(dir)?;
        // What a crash while persisting the record left behind.
        remove_partials(dir)?;
        let slots = DirSlots::new(dir.join("slots"), slot_file.to_string())?;
        let staging = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("staging.bin"))?;
        Ok(FileDevice {
            dir: dir.to_path_buf(),
            staging,
            slots,
        })
    }

    /// The agent's record as last persisted, `None` on a new device.
    pub fn record(&self) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.dir.join("record.json"))
    }

    /// Stores the agent's record durably, replacing the previous one, readable by its owner
    /// only: during an update it holds the assignment's AES key.
    pub fn persist(&mut self, record: &[u8]) -> io::Result<()> {
        write_atomic(&self.dir.join("record.json"), record, true)
    }

    /// The active slot, `None` before the first swap.
    pub fn active(&self) -> io::Result<Option<Slot>> {
        self.slots.active()
    }

    /// The file of the active slot (what the device runs), `None` before the first swap.
    pub fn active_file(&self) -> io::Result<Option<PathBuf>> {
        Ok(self.active()?.map(|s| self.slots.file(s)))
    }

    fn label_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(format!("label-{}", slot.as_str()))
    }

    /// Whether the active slot holds the update `label` (a swap's or a restore's text).
    fn active_holds(&self, label: &[u8]) -> io::Result<bool> {
        let Some(active) = self.active()? else {
            return Ok(false);
        };
        Ok(read_optional(&self.label_path(active))?.as_deref() == Some(label))
    }

    /// Carries out a swap command: makes the slot holding the update `label` active. When
    /// the active slot holds it already (the swap was done before a power cut), nothing
    /// happens; otherwise the inactive slot is labelled, durably, then activated.
    pub fn swap(&mut self, label: &[u8]) -> io::Result<()> {
        if self.active_holds(label)? {
            return Ok(());
        }
        let target = self.inactive()?;
        write_atomic(&self.label_path(target), label, false)?;
        self.slots.switch(target)
    }

    /// Carries out a restore command: while the active slot holds the failed update `label`,
    /// makes the other slot active again, or no slot when the other never held anything (the
    /// failed update was the first: nothing ran from the slots before it); otherwise
    /// (restored already) nothing happens.
    pub fn restore(&mut self, label: &[u8]) -> io::Result<()> {
        match self.active()? {
            Some(active) if self.active_holds(label)? => {
                if self.slots.holds(active.other()) {
                    self.slots.switch(active.other())
                } else {
                    self.slots.deactivate()
                }
            }
            _ => Ok(()),
        }
    }

    fn inactive(&self) -> io::Result<Slot> {
        Ok(self.active()?.map_or(Slot::A, Slot::other))
    }

    /// Empties the inactive slot, and its label first, so a half-written slot is never taken
    /// for an update it held before; returns its writer (`flush` fsyncs).
    pub fn open_inactive(&mut self) -> io::Result<crate::durable::SyncWriter> {
        let target = self.inactive()?;
        match std::fs::remove_file(self.label_path(target)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        crate::durable::sync_dir(&self.dir)?;
        self.slots.open(target)
    }
}

impl Staging for FileDevice {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.staging.write_all_at(data, offset)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.staging.read_exact_at(buf, offset)
    }
}

impl DeviceIo for FileDevice {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.open_inactive()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ota-host-file-device-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn install(dev: &mut FileDevice, bytes: &[u8]) {
        let mut w = dev.open_slot().unwrap();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    fn running(dev: &FileDevice) -> Vec<u8> {
        std::fs::read(dev.active_file().unwrap().unwrap()).unwrap()
    }

    #[test]
    fn a_failed_first_update_restores_to_no_slot() {
        let d = tmp("first");
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        install(&mut dev, b"v2");
        dev.swap(b"{\"version\":\"2\"}").unwrap();
        assert_eq!(dev.active().unwrap(), Some(Slot::A));
        dev.restore(b"{\"version\":\"2\"}").unwrap();
        dev.restore(b"{\"version\":\"2\"}").unwrap();
        assert_eq!(dev.active().unwrap(), None);
        // The record, which holds the AES key during an update, is its owner's alone.
        dev.persist(b"{}").unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.join("record.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn swaps_and_restores_are_idempotent_and_survive_a_reopen() {
        let d = tmp("swap");
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        assert_eq!(dev.active().unwrap(), None);
        install(&mut dev, b"v2");
        dev.swap(b"{\"version\":\"2\"}").unwrap();
        dev.swap(b"{\"version\":\"2\"}").unwrap();
        assert_eq!(dev.active().unwrap(), Some(Slot::A));
        // Reopened after a power cut: the same state, and the swap repeated changes nothing.
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        dev.swap(b"{\"version\":\"2\"}").unwrap();
        assert_eq!(running(&dev), b"v2");
        install(&mut dev, b"v3");
        // Writing the inactive slot never touches the running one.
        assert_eq!(running(&dev), b"v2");
        dev.swap(b"{\"version\":\"3\"}").unwrap();
        assert_eq!(running(&dev), b"v3");
        dev.restore(b"{\"version\":\"3\"}").unwrap();
        dev.restore(b"{\"version\":\"3\"}").unwrap();
        assert_eq!(running(&dev), b"v2");
        // A restore naming an update that does not run does nothing.
        dev.restore(b"{\"version\":\"9\"}").unwrap();
        assert_eq!(running(&dev), b"v2");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_slot_being_written_loses_its_old_label() {
        let d = tmp("label");
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        install(&mut dev, b"v2");
        dev.swap(b"2").unwrap();
        install(&mut dev, b"v3");
        dev.swap(b"3").unwrap();
        dev.restore(b"3").unwrap();
        // Slot b held 3; it is emptied for 4, so a swap to 3 must not find it there.
        install(&mut dev, b"half of v4");
        assert!(!d.join("label-b").exists());
        dev.swap(b"3").unwrap();
        assert_eq!(
            std::fs::read(d.join("label-b")).unwrap(),
            b"3",
            "labelled again, as a new swap"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_record_and_staging_persist() {
        let d = tmp("record");
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        assert_eq!(dev.record().unwrap(), None);
        dev.persist(b"{\"state\":\"downloading\"}").unwrap();
        dev.write_at(65536, b"chunk 1").unwrap();
        let mut dev = FileDevice::open(&d, "payload").unwrap();
        assert_eq!(
            dev.record().unwrap().unwrap(),
            b"{\"state\":\"downloading\"}"
        );
        let mut buf = [0u8; 7];
        dev.read_at(65536, &mut buf).unwrap();
        assert_eq!(&buf, b"chunk 1");
        assert!(
            dev.read_at(1 << 20, &mut buf).is_err(),
            "nothing staged there"
        );
        assert!(FileDevice::open(&d, "../escape").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
