//! A simulated device's storage: chunk staging and two slots (A/B) in memory, with a power
//! switch that cuts writes to a slot part-way.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use ota_core::Sha256Digest;
use ota_core::agent::DeviceIo;
use ota_core::download::Staging;

/// A slot's bytes, shared with the writer an agent holds.
pub type Slot = Arc<Mutex<Vec<u8>>>;

/// Staging and slots A and B, in memory. It survives a simulated power cut: drop the agent,
/// keep the `Slots`.
#[derive(Debug)]
pub struct Slots {
    /// Chunk staging.
    pub staging: Vec<u8>,
    /// Slots A (0) and B (1).
    pub slots: [Slot; 2],
    /// Which slot is active.
    pub active: usize,
    /// The slot last opened for an install: the one a swap activates.
    pub target: usize,
    /// Bytes written to any slot since the counter was last reset
    /// ([`Slots::take_slot_writes`]).
    pub slot_writes: Arc<Mutex<u64>>,
    /// Cut the power after this many more slot bytes: the slot writer then fails.
    pub cut_after: Arc<Mutex<Option<u64>>>,
    /// Staging holds at most this many bytes: a write past it fails as a full disk does.
    pub staging_capacity: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slots {
    /// Storage running `active_content` in slot A, slot B empty.
    pub fn new(active_content: &[u8]) -> Self {
        Slots {
            staging: Vec::new(),
            slots: [
                Arc::new(Mutex::new(active_content.to_vec())),
                Arc::new(Mutex::new(Vec::new())),
            ],
            active: 0,
            target: 1,
            slot_writes: Arc::new(Mutex::new(0)),
            cut_after: Arc::new(Mutex::new(None)),
            staging_capacity: None,
        }
    }

    /// Activates the slot last opened for an install (the agent's `Swap`).
    pub fn swap(&mut self) {
        self.active = self.target;
    }

    /// Activates the other slot than the one last installed (the agent's
    /// `RestorePrevious`).
    pub fn restore_previous(&mut self) {
        self.active = 1 - self.target;
    }

    /// Makes slot writes fail after `bytes` more bytes (`None`: never).
    pub fn cut_power_after(&self, bytes: Option<u64>) {
        *lock(&self.cut_after) = bytes;
    }

    /// The bytes written to any slot since the last call (or since the start), and starts
    /// counting again.
    pub fn take_slot_writes(&self) -> u64 {
        std::mem::take(&mut *lock(&self.slot_writes))
    }

    /// The SHA-256 of the active slot.
    pub fn active_digest(&self) -> Sha256Digest {
        Sha256Digest::of(&lock(&self.slots[self.active]))
    }

    /// The active slot's bytes.
    pub fn active_bytes(&self) -> Vec<u8> {
        lock(&self.slots[self.active]).clone()
    }

    /// The inactive slot's length.
    pub fn inactive_len(&self) -> usize {
        lock(&self.slots[1 - self.active]).len()
    }
}

struct SlotWriter {
    slot: Slot,
    writes: Arc<Mutex<u64>>,
    cut_after: Arc<Mutex<Option<u64>>>,
}

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut cut = lock(&self.cut_after);
        let n = match *cut {
            Some(0) => return Err(io::Error::other("power cut")),
            Some(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                *cut = Some(left - n as u64);
                n
            }
            None => buf.len(),
        };
        lock(&self.slot).extend_from_slice(&buf[..n]);
        *lock(&self.writes) += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staging for Slots {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self
            .staging_capacity
            .is_some_and(|c| offset.saturating_add(data.len() as u64) > c)
        {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.staging.write_at(offset, data)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.staging.read_at(offset, buf)
    }
}

impl DeviceIo for Slots {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        self.target = 1 - self.active;
        let slot = self.slots[self.target].clone();
        lock(&slot).clear();
        Ok(Box::new(SlotWriter {
            slot,
            writes: self.slot_writes.clone(),
            cut_after: self.cut_after.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_goes_to_the_inactive_slot_and_a_swap_activates_it() {
        let mut s = Slots::new(b"old");
        let mut w = s.open_slot().unwrap();
        w.write_all(b"new").unwrap();
        drop(w);
        assert_eq!(s.active_bytes(), b"old");
        s.swap();
        assert_eq!(s.active_bytes(), b"new");
        assert_eq!(s.active_digest(), Sha256Digest::of(b"new"));
        s.restore_previous();
        assert_eq!(s.active_bytes(), b"old");
        assert_eq!(s.take_slot_writes(), 3);
        assert_eq!(s.take_slot_writes(), 0);
    }

    #[test]
    fn a_power_cut_stops_slot_writes_at_its_byte() {
        let mut s = Slots::new(b"old");
        s.cut_power_after(Some(2));
        let mut w = s.open_slot().unwrap();
        let e = w.write_all(b"new").unwrap_err();
        assert_eq!(e.to_string(), "power cut");
        assert_eq!(s.inactive_len(), 2);
        assert_eq!(s.active_bytes(), b"old");
    }
}
