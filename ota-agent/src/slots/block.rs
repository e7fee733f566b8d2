//! A/B partitions or block devices, written raw; a command switches the boot slot
//! (`fw_setenv`, `grub-editenv`, `nvbootctrl`, a script). The `booted` command says which
//! slot really runs (the configuration requires it): a switch is done only once it says the
//! new slot, and a bootloader that counts boots may fall back on its own. The `confirm`
//! command marks a committed slot good.

use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use super::{Slot, SlotBackend, Switched, SyncWriter, run_command};
use crate::error::DaemonError;

/// Two block devices (or files standing in for them) and their commands.
pub struct BlockSlots {
    /// Slot `a`'s device.
    pub a: PathBuf,
    /// Slot `b`'s device.
    pub b: PathBuf,
    /// The switch command.
    pub switch: Vec<String>,
    /// The command printing the booted slot.
    pub booted: Option<Vec<String>>,
    /// The command confirming a good boot.
    pub confirm: Option<Vec<String>>,
    /// The reboot command.
    pub reboot: Option<Vec<String>>,
    /// How long each command may run.
    pub command_timeout: std::time::Duration,
}

impl BlockSlots {
    fn device(&self, slot: Slot) -> &PathBuf {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }

    fn booted(&self) -> Result<Option<Slot>, DaemonError> {
        let Some(cmd) = &self.booted else {
            return Ok(None);
        };
        let out = run_command("slots.booted", cmd, None, self.command_timeout)?;
        Slot::parse(&out).map(Some).ok_or_else(|| {
            DaemonError::Slot(format!(
                "slots.booted: expected `a` or `b`, the command printed {:?}",
                out.trim()
            ))
        })
    }
}

impl SlotBackend for BlockSlots {
    fn active(&mut self, last: Option<Slot>) -> Result<Option<Slot>, DaemonError> {
        // A device boots slot a until it is switched.
        Ok(Some(self.booted()?.or(last).unwrap_or(Slot::A)))
    }

    fn open(&mut self, slot: Slot) -> io::Result<Box<dyn Write + Send>> {
        let path = self.device(slot);
        let is_block = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(!is_block)
            .truncate(!is_block)
            .open(path)?;
        Ok(Box::new(SyncWriter::new(f)))
    }

    fn switch(&mut self, slot: Slot) -> Result<Switched, DaemonError> {
        run_command(
            "slots.switch",
            &self.switch,
            Some((slot, self.device(slot))),
            self.command_timeout,
        )?;
        match self.booted()? {
            Some(b) if b != slot => Ok(Switched::NeedsReboot),
            _ => Ok(Switched::Done),
        }
    }

    fn confirm(&mut self) -> Result<(), DaemonError> {
        if let Some(cmd) = &self.confirm {
            run_command("slots.confirm", cmd, None, self.command_timeout)?;
        }
        Ok(())
    }

    fn reboot(&mut self) -> Result<(), DaemonError> {
        match &self.reboot {
            Some(cmd) => run_command("slots.reboot", cmd, None, self.command_timeout).map(|_| ()),
            None => Err(DaemonError::Slot(
                "slots.reboot: the switch needs a reboot, and no reboot command is configured"
                    .into(),
            )),
        }
    }
}
