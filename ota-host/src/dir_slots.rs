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

use crate::durable::{SyncWriter, create_dir_all, sync_dir};

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
        create_dir_all(&root)?;
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

    /// The active slot, `None` before the first switch. `current` may name its slot in any
    /// way that leads to it (`a`, `./a`, `a/`, `ROOT/a`): what it resolves to is compared with
    /// what `ROOT/a` and `ROOT/b` resolve to. A `current` that leads to neither, or to nothing,
    /// is an error (`InvalidData`), never "no slot runs": the slot written next would be
    /// chosen from it, and could be the one running.
    pub fn active(&self) -> io::Result<Option<Slot>> {
        let target = match std::fs::read_link(self.current()) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let neither = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} names {}, {why}",
                    self.current().display(),
                    target.display()
                ),
            )
        };
        let resolved = std::fs::canonicalize(self.current())
            .map_err(|e| neither(&format!("which cannot be resolved: {e}")))?;
        for slot in [Slot::A, Slot::B] {
            match std::fs::canonicalize(self.root.join(slot.as_str())) {
                Ok(dir) if dir == resolved => return Ok(Some(slot)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Err(neither("which is neither slot a nor slot b"))
    }

    /// Empties `slot` and returns a writer for its file whose `flush` makes what was written
    /// durable.
    pub fn open(&self, slot: Slot) -> io::Result<SyncWriter> {
        let dir = self.root.join(slot.as_str());
        remove_if_present(std::fs::remove_dir_all(&dir))?;
        create_dir_all(&dir)?;
        let f = std::fs::File::create(dir.join(&self.file))?;
        sync_dir(&dir)?;
        Ok(SyncWriter::new(f))
    }

    /// Whether `slot` holds its file (was ever written).
    pub fn holds(&self, slot: Slot) -> bool {
        self.root.join(slot.as_str()).join(&self.file).is_file()
    }

    /// Makes no slot active, as before the first switch: `current` removed, durably.
    /// Idempotent. For a restore when the other slot never held anything.
    pub fn deactivate(&self) -> io::Result<()> {
        remove_if_present(std::fs::remove_file(self.current()))?;
        sync_dir(&self.root)
    }

    /// Makes `slot` the active one: a new symlink renamed over `current`, durably.
    /// Idempotent.
    pub fn switch(&self, slot: Slot) -> io::Result<()> {
        create_dir_all(&self.root.join(slot.as_str()))?;
        let tmp = self.root.join("current.tmp");
        remove_if_present(std::fs::remove_file(&tmp))?;
        std::os::unix::fs::symlink(slot.as_str(), &tmp)?;
        std::fs::rename(&tmp, self.current())?;
        sync_dir(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("ota-host-dir-slots-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Slots under `root` with `a` holding `running`, and `current` pointing at `target`.
    fn slots_with_current(root: &Path, target: &Path) -> DirSlots {
        let s = DirSlots::new(root.to_path_buf(), "payload".into()).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(s.file(Slot::A), b"running").unwrap();
        let _ = std::fs::remove_file(s.current());
        std::os::unix::fs::symlink(target, s.current()).unwrap();
        s
    }

    #[test]
    fn a_current_link_written_another_way_still_names_its_slot() {
        let d = tmp("other-ways");
        let root = d.join("app");
        // `b/../a` goes through b: it exists from the start, whatever order the cases run in.
        std::fs::create_dir_all(root.join("b")).unwrap();
        for target in [
            PathBuf::from("a"),
            PathBuf::from("./a"),
            PathBuf::from("a/"),
            root.join("a"),
            root.join("b/../a"),
        ] {
            let s = slots_with_current(&root, &target);
            assert_eq!(s.active().unwrap(), Some(Slot::A), "{}", target.display());
            // The slot written next is the other one: the running one stays as it was.
            let inactive = s.active().unwrap().map_or(Slot::A, Slot::other);
            assert_eq!(inactive, Slot::B, "{}", target.display());
            drop(s.open(inactive).unwrap());
            assert_eq!(std::fs::read(s.file(Slot::A)).unwrap(), b"running");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_current_link_naming_neither_slot_is_an_error() {
        let d = tmp("neither");
        let root = d.join("app");
        std::fs::create_dir_all(d.join("elsewhere")).unwrap();
        for target in [d.join("elsewhere"), PathBuf::from("c")] {
            let s = slots_with_current(&root, &target);
            let e = s.active().unwrap_err();
            assert_eq!(
                e.kind(),
                io::ErrorKind::InvalidData,
                "{}: {e}",
                target.display()
            );
            assert!(e.to_string().contains("current"), "{e}");
            assert_eq!(std::fs::read(s.file(Slot::A)).unwrap(), b"running");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
