//! The digests of a chunk table: in memory, or in the host's storage with only a hash per
//! block of them kept, so that a device's memory does not grow with the artifact.
//!
//! A table read from a statement streamed past the verifier ([`crate::sign::verify_reader`])
//! is written to a [`TableStore`] as it is parsed, [`BLOCK`] digests at a time, and only each
//! block's SHA-256 stays in memory: 32 bytes per 4 MiB of artifact. A digest is read back
//! with its block, and the block is hashed and compared before the digest is used, so bytes
//! that changed in storage are found, never trusted. The block read last is kept (2 KiB): the
//! chunks of an artifact are checked mostly in order, so each block is read and hashed about
//! once, not once per digest. A change to that block in storage after it was checked goes
//! unseen until another block has been read, and is harmless: the digests used are the ones
//! checked.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Sha256Digest;

/// How many digests a stored block holds (2 KiB of storage, read and hashed to check one).
pub const BLOCK: usize = 64;

/// Where a chunk table is kept outside memory: the host's storage (a file, a flash region),
/// addressed by byte offset. Written once, while the statement is verified, then only read;
/// reads may come from several threads.
pub trait TableStore: Send + Sync + std::panic::RefUnwindSafe {
    /// Stores `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Fills `buf` with the bytes stored at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A store shared with others (a host that keeps a handle on it, a test that changes it).
impl<T: TableStore + ?Sized> TableStore for Arc<T> {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// A [`TableStore`] in memory, for tests and for hosts that want the streamed verifier's
/// other savings (no envelope or payload in memory) without storage.
#[derive(Debug, Default)]
pub struct MemoryTableStore(std::sync::Mutex<Vec<u8>>);

impl TableStore for MemoryTableStore {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut v = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + data.len();
        if v.len() < end {
            v.resize(end, 0);
        }
        v[start..end].copy_from_slice(data);
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let v = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let src = v
            .get(start..start + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl MemoryTableStore {
    /// Flips one bit of what is stored (tests: storage that changed).
    pub fn corrupt(&self, offset: usize) {
        if let Ok(mut v) = self.0.lock()
            && let Some(b) = v.get_mut(offset)
        {
            *b ^= 1;
        }
    }
}

/// The digests of a chunk table, in order. Cloning shares them: the openers, downloads and
/// installs of one package all read the same digests.
#[derive(Clone)]
pub struct ChunkDigests(Repr);

#[derive(Clone)]
enum Repr {
    Memory(Arc<[Sha256Digest]>),
    Stored(Arc<Stored>),
}

struct Stored {
    count: usize,
    /// The SHA-256 of each block of [`BLOCK`] digests as stored (the last may be shorter).
    blocks: Box<[Sha256Digest]>,
    store: Box<dyn TableStore>,
    /// The block read and checked last, shared by the threads that read digests.
    last: Mutex<LastBlock>,
}

/// A block as it was read and checked: its number (`None` until one is), and its bytes.
struct LastBlock {
    block: Option<usize>,
    bytes: [u8; BLOCK * 32],
}

/// A digest could not be read back from its [`TableStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the chunk table in storage: {message}")]
pub struct TableReadError {
    /// What went wrong: the store's error, or that the stored block changed.
    pub message: String,
}

impl ChunkDigests {
    /// The number of digests.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Memory(d) => d.len(),
            Repr::Stored(s) => s.count,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the digests live in a [`TableStore`] rather than in memory.
    pub fn is_stored(&self) -> bool {
        matches!(self.0, Repr::Stored(_))
    }

    /// Whether both share the same digests (a clone of the other), not a copy.
    pub fn ptr_eq(&self, other: &ChunkDigests) -> bool {
        match (&self.0, &other.0) {
            (Repr::Memory(a), Repr::Memory(b)) => Arc::ptr_eq(a, b),
            (Repr::Stored(a), Repr::Stored(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Digest `index`, or `None` past the end. A stored digest is read with its block, which
    /// must still hash to what was verified.
    pub fn get(&self, index: usize) -> Result<Option<Sha256Digest>, TableReadError> {
        match &self.0 {
            Repr::Memory(d) => Ok(d.get(index).copied()),
            Repr::Stored(s) if index >= s.count => Ok(None),
            Repr::Stored(s) => s.digest(index).map(Some),
        }
    }

    /// Every digest, in order, in memory (each stored block read and checked once).
    pub fn to_vec(&self) -> Result<Vec<Sha256Digest>, TableReadError> {
        match &self.0 {
            Repr::Memory(d) => Ok(d.to_vec()),
            Repr::Stored(s) => {
                let mut out = Vec::with_capacity(s.count);
                let mut buf = [0u8; BLOCK * 32];
                for b in 0..s.blocks.len() {
                    out.extend(digests(s.read_block(b, &mut buf)?));
                }
                Ok(out)
            }
        }
    }
}

/// The digests a block of stored bytes holds, in order.
fn digests(block: &[u8]) -> impl Iterator<Item = Sha256Digest> + '_ {
    block.chunks_exact(32).filter_map(digest)
}

/// A digest from its 32 stored bytes.
fn digest(bytes: &[u8]) -> Option<Sha256Digest> {
    <[u8; 32]>::try_from(bytes)
        .ok()
        .map(Sha256Digest::from_bytes)
}

impl Stored {
    fn new(count: usize, blocks: Box<[Sha256Digest]>, store: Box<dyn TableStore>) -> Stored {
        Stored {
            count,
            blocks,
            store,
            last: Mutex::new(LastBlock {
                block: None,
                bytes: [0u8; BLOCK * 32],
            }),
        }
    }

    /// Digest `index` (below `count`): from the block read last when it holds it, else from
    /// its block, read and checked outside the lock (threads reading other blocks do not wait
    /// on each other), then kept in its place.
    fn digest(&self, index: usize) -> Result<Sha256Digest, TableReadError> {
        let b = index / BLOCK;
        let at = (index % BLOCK) * 32;
        let pick = |block: &[u8]| {
            block
                .get(at..at + 32)
                .and_then(digest)
                .ok_or_else(|| TableReadError {
                    message: format!("digest {index} is past its block"),
                })
        };
        // A panic cannot leave a block half written under a number: a block is put in place
        // whole, read and checked.
        let lock = || self.last.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let last = lock();
            if last.block == Some(b) {
                return pick(&last.bytes);
            }
        }
        let mut bytes = [0u8; BLOCK * 32];
        let d = pick(self.read_block(b, &mut bytes)?)?;
        *lock() = LastBlock {
            block: Some(b),
            bytes,
        };
        Ok(d)
    }

    /// Reads block `b` into `buf` and checks it against its hash; the block's bytes.
    fn read_block<'a>(
        &self,
        b: usize,
        buf: &'a mut [u8; BLOCK * 32],
    ) -> Result<&'a [u8], TableReadError> {
        let n = (self.count - b * BLOCK).min(BLOCK);
        let block = &mut buf[..n * 32];
        self.store
            .read_at((b * BLOCK * 32) as u64, block)
            .map_err(|e| TableReadError {
                message: format!("reading digests {}..{}: {e}", b * BLOCK, b * BLOCK + n),
            })?;
        if Sha256Digest::of(block) != self.blocks[b] {
            return Err(TableReadError {
                message: format!(
                    "digests {}..{} changed since the statement was verified",
                    b * BLOCK,
                    b * BLOCK + n
                ),
            });
        }
        Ok(block)
    }
}

impl From<Vec<Sha256Digest>> for ChunkDigests {
    fn from(v: Vec<Sha256Digest>) -> Self {
        ChunkDigests(Repr::Memory(v.into()))
    }
}

impl From<Arc<[Sha256Digest]>> for ChunkDigests {
    fn from(v: Arc<[Sha256Digest]>) -> Self {
        ChunkDigests(Repr::Memory(v))
    }
}

impl FromIterator<Sha256Digest> for ChunkDigests {
    fn from_iter<I: IntoIterator<Item = Sha256Digest>>(iter: I) -> Self {
        ChunkDigests(Repr::Memory(iter.into_iter().collect()))
    }
}

impl fmt::Debug for ChunkDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Memory(d) => f.debug_list().entries(d.iter()).finish(),
            Repr::Stored(s) => write!(f, "ChunkDigests {{ stored: {} }}", s.count),
        }
    }
}

impl PartialEq for ChunkDigests {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Memory(a), Repr::Memory(b)) => a == b,
            (Repr::Stored(a), Repr::Stored(b)) if Arc::ptr_eq(a, b) => true,
            // Stored digests are compared as read back; one that cannot be read is unequal.
            _ => {
                self.len() == other.len()
                    && matches!((self.to_vec(), other.to_vec()), (Ok(a), Ok(b)) if a == b)
            }
        }
    }
}

impl Eq for ChunkDigests {}

impl Serialize for ChunkDigests {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Memory(d) => d.serialize(s),
            // Block by block: a stored table is never all in memory.
            Repr::Stored(st) => {
                let mut seq = s.serialize_seq(Some(st.count))?;
                let mut buf = [0u8; BLOCK * 32];
                for b in 0..st.blocks.len() {
                    let block = st
                        .read_block(b, &mut buf)
                        .map_err(serde::ser::Error::custom)?;
                    for d in digests(block) {
                        seq.serialize_element(&d)?;
                    }
                }
                seq.end()
            }
        }
    }
}

thread_local! {
    /// The store the next chunk table parsed on this thread goes to ([`into_store`]).
    static STORE: RefCell<Option<Box<dyn TableStore>>> = const { RefCell::new(None) };
    /// Why writing to that store failed, if it did.
    static FAILED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `parse` with chunk tables going to `store` instead of memory: the first table it
/// reads is written there. serde gives a field's deserializer no context, so the store is
/// handed over through this thread's slot, which is emptied again whatever `parse` returns.
/// Also returns the store's error, if writing to it failed (the parser reports that as an
/// invalid value; it is the storage's fault, not the document's).
pub(crate) fn into_store<T>(
    store: Box<dyn TableStore>,
    parse: impl FnOnce() -> T,
) -> (T, Option<String>) {
    type Slots = (Option<Box<dyn TableStore>>, Option<String>);
    /// Puts back what the slots held before (a parse inside a store's own code nests).
    struct Restore(Option<Slots>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some((store, failed)) = self.0.take() {
                STORE.with(|s| *s.borrow_mut() = store);
                FAILED.with(|f| *f.borrow_mut() = failed);
            }
        }
    }
    let before = (
        STORE.with(|s| s.borrow_mut().replace(store)),
        FAILED.with(|f| f.borrow_mut().take()),
    );
    let _restore = Restore(Some(before));
    let parsed = parse();
    (parsed, FAILED.with(|f| f.borrow_mut().take()))
}

/// Writes digests to a store a block at a time, keeping each block's hash.
struct BlockWriter {
    store: Box<dyn TableStore>,
    block: Vec<u8>,
    blocks: Vec<Sha256Digest>,
    count: usize,
}

impl BlockWriter {
    fn push(&mut self, d: Sha256Digest) -> io::Result<()> {
        self.block.extend_from_slice(d.as_bytes());
        self.count += 1;
        if self.block.len() == BLOCK * 32 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.block.is_empty() {
            let at = (self.blocks.len() * BLOCK * 32) as u64;
            self.store.write_at(at, &self.block)?;
            self.blocks.push(Sha256Digest::of(&self.block));
            self.block.clear();
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ChunkDigests {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Digests;
        impl<'de> Visitor<'de> for Digests {
            type Value = ChunkDigests;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of SHA-256 digests")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChunkDigests, A::Error> {
                let Some(store) = STORE.with(|s| s.borrow_mut().take()) else {
                    let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                    while let Some(d) = seq.next_element::<Sha256Digest>()? {
                        v.push(d);
                    }
                    return Ok(v.into());
                };
                let mut w = BlockWriter {
                    store,
                    block: Vec::with_capacity(BLOCK * 32),
                    blocks: Vec::new(),
                    count: 0,
                };
                let io = |e: io::Error| {
                    FAILED.with(|f| *f.borrow_mut() = Some(e.to_string()));
                    serde::de::Error::custom(format!("storing the table: {e}"))
                };
                while let Some(d) = seq.next_element::<Sha256Digest>()? {
                    w.push(d).map_err(io)?;
                }
                w.flush().map_err(io)?;
                Ok(ChunkDigests(Repr::Stored(Arc::new(Stored::new(
                    w.count,
                    w.blocks.into(),
                    w.store,
                )))))
            }
        }
        d.deserialize_seq(Digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(n: usize) -> Vec<Sha256Digest> {
        (0..n)
            .map(|i| Sha256Digest::of(&(i as u64).to_le_bytes()))
            .collect()
    }

    fn stored(n: usize) -> (ChunkDigests, Arc<MemoryTableStore>) {
        let json = serde_json::to_string(&digests(n)).unwrap();
        let store = Arc::new(MemoryTableStore::default());
        let (d, failed) = into_store(Box::new(store.clone()), || {
            serde_json::from_str::<ChunkDigests>(&json).unwrap()
        });
        assert_eq!(failed, None);
        (d, store)
    }

    #[test]
    fn a_stored_table_reads_back_every_digest_and_keeps_a_hash_per_block() {
        for n in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 7] {
            let (d, _) = stored(n);
            assert!(d.is_stored());
            assert_eq!(d.len(), n);
            let want = digests(n);
            for (i, w) in want.iter().enumerate() {
                assert_eq!(d.get(i).unwrap(), Some(*w), "digest {i} of {n}");
            }
            assert_eq!(d.get(n).unwrap(), None);
            assert_eq!(d.to_vec().unwrap(), want);
            assert_eq!(d, ChunkDigests::from(want.clone()));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
            let Repr::Stored(s) = &d.0 else { panic!() };
            assert_eq!(s.blocks.len(), n.div_ceil(BLOCK));
        }
        // The slot is emptied: the next table parsed on this thread is in memory.
        let again: ChunkDigests = serde_json::from_str("[]").unwrap();
        assert!(!again.is_stored());
    }

    /// A store that counts its reads.
    #[derive(Default)]
    struct Counted(MemoryTableStore, std::sync::atomic::AtomicUsize);

    impl TableStore for Counted {
        fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.0.write_at(offset, data)
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.read_at(offset, buf)
        }
    }

    #[test]
    fn a_stored_block_is_read_once_for_the_digests_read_in_order_from_it() {
        let n = 3 * BLOCK + 7;
        let json = serde_json::to_string(&digests(n)).unwrap();
        let store = Arc::new(Counted::default());
        let (d, _) = into_store(Box::new(store.clone()), || {
            serde_json::from_str::<ChunkDigests>(&json).unwrap()
        });
        let want = digests(n);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(d.get(i).unwrap(), Some(*w), "digest {i}");
        }
        let reads = store.1.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(reads, n.div_ceil(BLOCK), "one read per block");
        // Back to an earlier block: read again, and still right.
        assert_eq!(d.get(1).unwrap(), Some(want[1]));
        assert_eq!(
            store.1.load(std::sync::atomic::Ordering::Relaxed),
            reads + 1
        );
    }

    #[test]
    fn a_digest_whose_stored_block_changed_is_refused_not_returned() {
        let n = 3 * BLOCK;
        let (d, store) = stored(n);
        // One bit of digest BLOCK + 5 flips in storage: its whole block is refused, the
        // others still read.
        store.corrupt((BLOCK + 5) * 32 + 3);
        let err = d.get(BLOCK + 5).unwrap_err();
        assert!(err.message.contains("changed since"), "{err}");
        assert!(d.get(BLOCK).is_err());
        assert_eq!(d.get(0).unwrap(), Some(digests(n)[0]));
        assert_eq!(d.get(2 * BLOCK).unwrap(), Some(digests(n)[2 * BLOCK]));
        assert!(d.to_vec().is_err());
    }
}
