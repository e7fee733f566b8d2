//! A/B directories: `ROOT/a` and `ROOT/b`, each holding one file, and the symlink
//! `ROOT/current` naming the active one, replaced atomically (a new symlink renamed over the
//! old, then the directory fsynced). Writing a slot never touches the other, so the previous
//! version stays as it was for a restore.
//!
//! The device daemon's directory slots and the reference [`crate::file_device`] are both
//! this.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{SyncWriter, sync_dir};

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Slot `a`.
    A,
    /// Slot `b`.
    B,
}

impl Slot {
    /// `a` or `b`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// Parses `a` or `b`.
    pub fn parse(s: &str) -> Option<Slot> {
        match s.trim() {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }
}

/// Directory slots under a root, each holding `file`.
#[derive(Debug, Clone)]
pub struct DirSlots {
    root: PathBuf,
    file: String,
}

fn remove_if_present(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl DirSlots {
    /// The slots under `root` (created if missing), each holding `file`.
    pub fn new(root: PathBuf, file: String) -> io::Result<DirSlots> {
        if file.is_empty() || file.contains('/') || file == "." || file == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a slot's file must be a plain file name, found {file:?}"),
            ));
        }
        std::fs::create_dir_all(&root)?;
        Ok(DirSlots { root, file })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The symlink naming the active slot.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The path of `slot`'s file.
    pub fn file(&self, slot: Slot) -> PathBuf {
        self.root.join(slot.as_str()).join(&self.file)
    }

    /// The active slot, `None` before the first switch.
    pub fn active(&self) -> io::Result<Option<Slot>> {
        match std::fs::read_link(self.current()) {
            Ok(target) => Ok(target.to_str().and_then(Slot::parse)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Empties `slot` and returns a writer for its file whose `flush` makes what was written
    /// durable.
    pub fn open(&self, slot: Slot) -> io::Result<SyncWriter> {
        let dir = self.root.join(slot.as_str());
        remove_if_present(std::fs::remove_dir_all(&dir))?;
        std::fs::create_dir_all(&dir)?;
        let f = std::fs::File::create(dir.join(&self.file))?;
        sync_dir(&dir)?;
        Ok(SyncWriter::new(f))
    }

    /// Makes `slot` the active one: a new symlink renamed over `current`, durably.
    /// Idempotent.
    pub fn switch(&self, slot: Slot) -> io::Result<()> {
        std::fs::create_dir_all(self.root.join(slot.as_str()))?;
        let tmp = self.root.join("current.tmp");
        remove_if_present(std::fs::remove_file(&tmp))?;
        std::os::unix::fs::symlink(slot.as_str(), &tmp)?;
        std::fs::rename(&tmp, self.current())?;
        sync_dir(&self.root)
    }
}
