//! Where updates are installed: two slots, `a` and `b`, one active. The agent writes the
//! inactive one, then asks for a swap; a failed probe asks for the previous one back.
//!
//! [`Slots`] is the part both backends share: the slot table (`STATE_DIR/slots.json`: which
//! package version each slot holds), and the idempotent swap and restore the agent needs
//! after a restart. A [`SlotBackend`] says which slot runs and switches: [`dir`] with a
//! symlink, [`block`] with a command and boot counting.

pub mod block;
pub mod dir;

use std::io::{self, Write};
use std::path::PathBuf;

use ota_core::{Name, PackageId, Version};
use serde::{Deserialize, Serialize};

use crate::config::SlotsConfig;
use crate::error::DaemonError;
use crate::store::{read_optional, write_atomic};

/// One of the two slots (shared with the reference file device of `ota-host`).
pub use ota_host::dir_slots::Slot;

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotLabel {
    /// The package; `None` for what the device shipped with.
    #[serde(default)]
    pub package_id: Option<PackageId>,
    /// Its name.
    pub name: Name,
    /// Its version.
    pub version: Version,
}

/// What each slot holds, as the daemon last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotTable {
    #[serde(default)]
    a: Option<SlotLabel>,
    #[serde(default)]
    b: Option<SlotLabel>,
    /// The slot last switched to (the block backend's answer when nothing reports the
    /// booted slot).
    #[serde(default)]
    active: Option<Slot>,
}

impl SlotTable {
    fn get(&self, s: Slot) -> Option<&SlotLabel> {
        match s {
            Slot::A => self.a.as_ref(),
            Slot::B => self.b.as_ref(),
        }
    }

    fn set(&mut self, s: Slot, label: Option<SlotLabel>) {
        match s {
            Slot::A => self.a = label,
            Slot::B => self.b = label,
        }
    }
}

/// Whether a switch took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    /// The slot runs now.
    Done,
    /// The slot runs after a reboot.
    NeedsReboot,
}

/// A way of keeping two slots.
pub trait SlotBackend: Send {
    /// The slot that runs, if any. `last` is the slot last switched to.
    fn active(&mut self, last: Option<Slot>) -> Result<Option<Slot>, DaemonError>;
    /// Empties `slot` and returns a writer for it whose `flush` makes what was written
    /// durable.
    fn open(&mut self, slot: Slot) -> io::Result<Box<dyn Write + Send>>;
    /// Makes `slot` the one that runs (idempotent).
    fn switch(&mut self, slot: Slot) -> Result<Switched, DaemonError>;
    /// Tells the bootloader the running slot is good (after a commit).
    fn confirm(&mut self) -> Result<(), DaemonError>;
    /// Reboots (when a switch needs it).
    fn reboot(&mut self) -> Result<(), DaemonError>;
    /// Whether `slot` holds anything: a restore to a slot never written runs no slot instead.
    /// A partition always does.
    fn holds(&mut self, _slot: Slot) -> bool {
        true
    }
    /// Makes no slot run, as before the first update (only where [`SlotBackend::holds`] can
    /// say no).
    fn deactivate(&mut self) -> Result<(), DaemonError> {
        Err(DaemonError::Slot(
            "slots: this backend always runs a slot".into(),
        ))
    }
}

/// The two slots, their table, and a backend.
pub struct Slots {
    backend: Box<dyn SlotBackend>,
    table: SlotTable,
    path: PathBuf,
}

impl Slots {
    /// The slots of a configuration, their table kept in `table_path`. On the first start
    /// (no table yet), the running slot is labelled with what the device shipped with
    /// (`factory`), so that a fall back to it is recognized later.
    pub fn open(
        config: &SlotsConfig,
        table_path: PathBuf,
        factory: Option<(Name, Version)>,
    ) -> Result<Slots, DaemonError> {
        let backend: Box<dyn SlotBackend> = match config {
            SlotsConfig::Directory { root, file } => {
                Box::new(dir::DirSlots::new(root.clone(), file.clone())?)
            }
            SlotsConfig::Block {
                a,
                b,
                switch,
                booted,
                confirm,
                reboot,
                command_timeout,
            } => Box::new(block::BlockSlots {
                a: a.clone(),
                b: b.clone(),
                switch: switch.clone(),
                booted: booted.clone(),
                confirm: confirm.clone(),
                reboot: reboot.clone(),
                command_timeout: *command_timeout,
            }),
        };
        let (table, new) = match read_optional(&table_path)
            .map_err(|e| DaemonError::io("slots", &table_path, e))?
        {
            Some(bytes) => (
                serde_json::from_slice(&bytes).map_err(|e| DaemonError::Record {
                    path: table_path.clone(),
                    message: e.to_string(),
                })?,
                false,
            ),
            None => (SlotTable::default(), true),
        };
        let mut slots = Slots {
            backend,
            table,
            path: table_path,
        };
        if new {
            if let (Some(s), Some((name, version))) = (slots.active()?, factory) {
                slots.table.set(
                    s,
                    Some(SlotLabel {
                        package_id: None,
                        name,
                        version,
                    }),
                );
            }
            slots.save()?;
        }
        Ok(slots)
    }

    fn save(&self) -> Result<(), DaemonError> {
        let text = serde_json::to_vec(&self.table).unwrap_or_default();
        write_atomic(&self.path, &text, false).map_err(|e| DaemonError::io("slots", &self.path, e))
    }

    /// The slot that runs, if any.
    pub fn active(&mut self) -> Result<Option<Slot>, DaemonError> {
        self.backend.active(self.table.active)
    }

    /// What the running slot holds, when the daemon installed it.
    pub fn active_label(&mut self) -> Result<Option<SlotLabel>, DaemonError> {
        Ok(self.active()?.and_then(|s| self.table.get(s).cloned()))
    }

    fn inactive(&mut self) -> Result<Slot, DaemonError> {
        Ok(self.active()?.map_or(Slot::A, Slot::other))
    }

    /// Empties the inactive slot and returns its writer.
    pub fn open_inactive(&mut self) -> io::Result<Box<dyn Write + Send>> {
        let target = self.inactive().map_err(io::Error::other)?;
        if self.table.get(target).is_some() {
            self.table.set(target, None);
            self.save().map_err(io::Error::other)?;
        }
        self.backend.open(target)
    }

    /// Makes the slot holding `label` run: the inactive one, labelled first, then switched.
    /// Idempotent: when the running slot holds `label` already, nothing happens.
    pub fn swap(&mut self, label: &SlotLabel) -> Result<Switched, DaemonError> {
        let active = self.active()?;
        if let Some(s) = active
            && self.table.get(s) == Some(label)
        {
            return Ok(Switched::Done);
        }
        let target = active.map_or(Slot::A, Slot::other);
        if self.table.get(target) == Some(label) && self.table.active == Some(target) {
            // Switched to already, and the bootloader booted the other slot: it fell back.
            // The probe finds that the new version does not run.
            return Ok(Switched::Done);
        }
        self.table.set(target, Some(label.clone()));
        self.save()?;
        self.switch(target)
    }

    /// Makes the previous slot run again when the running one holds the failed `label`.
    /// Idempotent: when it does not (restored already, or the bootloader fell back), nothing
    /// runs to change, but a bootloader last switched to the failed slot (the reboot into it
    /// never happened: it failed, or the daemon was killed first) is switched back to the
    /// running slot, so that no later reboot starts the failed version and the next update
    /// does not overwrite the slot the bootloader would boot.
    pub fn restore(&mut self, failed: &SlotLabel) -> Result<Switched, DaemonError> {
        match self.active()? {
            Some(s) if self.table.get(s) == Some(failed) => {
                if self.backend.holds(s.other()) {
                    self.switch(s.other())
                } else {
                    // The failed update was the first: nothing ran from the slots before it,
                    // and nothing does again.
                    self.backend.deactivate()?;
                    self.table.active = None;
                    self.save()?;
                    Ok(Switched::Done)
                }
            }
            Some(s)
                if self.table.active == Some(s.other())
                    && self.table.get(s.other()) == Some(failed) =>
            {
                self.switch(s)
            }
            _ => Ok(Switched::Done),
        }
    }

    fn switch(&mut self, target: Slot) -> Result<Switched, DaemonError> {
        let r = self.backend.switch(target)?;
        self.table.active = Some(target);
        self.save()?;
        Ok(r)
    }

    /// Tells the bootloader the running slot is good.
    pub fn confirm(&mut self) -> Result<(), DaemonError> {
        self.backend.confirm()
    }

    /// Reboots.
    pub fn reboot(&mut self) -> Result<(), DaemonError> {
        self.backend.reboot()
    }
}

/// A slot writer over a file: `flush` writes the buffer out and fsyncs.
pub use ota_host::durable::SyncWriter;

/// What a slot command may print that is kept (its standard output and its standard error,
/// each); the rest is read and dropped.
const COMMAND_OUTPUT_CAP: usize = 64 * 1024;

/// Runs a configured command (`{slot}` and `{device}` replaced) for at most `timeout`; an
/// exit status other than 0 is an error naming the command and its stderr, and so is the
/// timeout (the command is killed, with whatever it started).
pub fn run_command(
    field: &str,
    argv: &[String],
    slot: Option<(Slot, &std::path::Path)>,
    timeout: std::time::Duration,
) -> Result<String, DaemonError> {
    let args: Vec<String> = argv
        .iter()
        .map(|a| match slot {
            Some((s, dev)) => a
                .replace("{slot}", s.as_str())
                .replace("{device}", &dev.display().to_string()),
            None => a.clone(),
        })
        .collect();
    let Some((program, rest)) = args.split_first() else {
        return Err(DaemonError::Slot(format!("{field}: no command")));
    };
    let mut command = std::process::Command::new(program);
    command.args(rest);
    let out = ota_host::command::run(command, timeout, COMMAND_OUTPUT_CAP)
        .map_err(|e| DaemonError::Slot(format!("{field}: cannot run {program}: {e}")))?;
    let Some(status) = out.status else {
        return Err(DaemonError::Slot(format!(
            "{field}: {program} did not finish within {} ms: killed",
            timeout.as_millis()
        )));
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(DaemonError::Slot(format!(
            "{field}: {program} {status}: {}",
            stderr.trim().chars().take(300).collect::<String>()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn label(v: &str) -> SlotLabel {
        SlotLabel {
            package_id: Some(ota_core::PackageId::of(v.as_bytes())),
            name: "fw".parse().unwrap(),
            version: v.parse().unwrap(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ota-agent-slots-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(slots: &mut Slots, bytes: &[u8]) {
        let mut w = slots.open_inactive().unwrap();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    #[test]
    fn directory_swap_and_restore_are_idempotent_across_restarts() {
        let d = tmp("dir");
        let config = SlotsConfig::Directory {
            root: d.join("app"),
            file: "payload".into(),
        };
        let factory = Some(("fw".parse().unwrap(), "1.0.0".parse().unwrap()));
        let mut s = Slots::open(&config, d.join("slots.json"), factory.clone()).unwrap();
        // A fresh device without `current`: nothing runs, slot a is written first.
        assert_eq!(s.active().unwrap(), None);
        write(&mut s, b"v2");
        let l2 = label("2.0.0");
        assert_eq!(s.swap(&l2).unwrap(), Switched::Done);
        assert_eq!(s.active().unwrap(), Some(Slot::A));
        // A second swap after a restart (the record still said swapped) changes nothing.
        let mut s = Slots::open(&config, d.join("slots.json"), factory.clone()).unwrap();
        assert_eq!(s.swap(&l2).unwrap(), Switched::Done);
        assert_eq!(s.active().unwrap(), Some(Slot::A));
        assert_eq!(s.active_label().unwrap(), Some(l2.clone()));
        // The next version goes to b; a restore goes back to a, twice is once.
        write(&mut s, b"v3");
        let l3 = label("3.0.0");
        s.swap(&l3).unwrap();
        assert_eq!(s.active().unwrap(), Some(Slot::B));
        assert_eq!(std::fs::read(d.join("app/current/payload")).unwrap(), b"v3");
        s.restore(&l3).unwrap();
        s.restore(&l3).unwrap();
        assert_eq!(s.active().unwrap(), Some(Slot::A));
        assert_eq!(std::fs::read(d.join("app/current/payload")).unwrap(), b"v2");
        // Writing the inactive slot never touches the running one.
        write(&mut s, b"v4");
        assert_eq!(std::fs::read(d.join("app/current/payload")).unwrap(), b"v2");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_first_update_restores_to_no_slot_not_to_an_empty_one() {
        let d = tmp("first");
        let config = SlotsConfig::Directory {
            root: d.join("app"),
            file: "payload".into(),
        };
        let mut s = Slots::open(&config, d.join("slots.json"), None).unwrap();
        assert_eq!(s.active().unwrap(), None);
        write(&mut s, b"v2");
        let l2 = label("2.0.0");
        s.swap(&l2).unwrap();
        assert_eq!(s.active().unwrap(), Some(Slot::A));
        // Its probe failed: nothing ran from the slots before it, and nothing does again.
        s.restore(&l2).unwrap();
        s.restore(&l2).unwrap();
        assert_eq!(s.active().unwrap(), None);
        assert!(!d.join("app/current").exists());
        assert!(!d.join("app/b").exists(), "no empty slot b was made to run");
        // The next update goes to a again.
        write(&mut s, b"v3");
        s.swap(&label("3.0.0")).unwrap();
        assert_eq!(std::fs::read(d.join("app/current/payload")).unwrap(), b"v3");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_slot_command_that_hangs_is_killed_at_its_timeout_and_fails_its_step() {
        let hang = ["/bin/sleep".to_string(), "30".to_string()];
        let e = run_command("slots.booted", &hang, None, Duration::from_millis(300)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("slots.booted") && text.contains("300 ms"),
            "{text}"
        );
        let echo = ["/bin/echo".to_string(), "{slot}".to_string()];
        let out = run_command(
            "slots.switch",
            &echo,
            Some((Slot::B, std::path::Path::new("/dev/b"))),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out, "b\n");
    }
}
