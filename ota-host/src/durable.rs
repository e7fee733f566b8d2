//! Files that survive a power cut: replaced whole (a temporary file, fsync, an atomic rename,
//! fsync of the directory), and slot writers whose `flush` reaches the disk, the disk
//! writing behind them as they go ([`SyncBehind`]).

use std::borrow::Borrow;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// Replaces `path` with `bytes`: written to `path.tmp`, fsynced, renamed over `path`, and the
/// directory fsynced, so a crash leaves the old file or the new one, never a mix. `private`
/// makes the file owner-only (0600).
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        if private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A slot writer over a file: buffered, the disk writing behind it ([`SyncBehind`]);
/// `flush` writes the buffer out and fsyncs.
pub struct SyncWriter {
    inner: io::BufWriter<SyncBehind<File>>,
}

impl SyncWriter {
    /// A writer over `file`.
    pub fn new(file: File) -> Self {
        SyncWriter {
            inner: io::BufWriter::with_capacity(64 << 10, SyncBehind::new(file)),
        }
    }
}

impl Write for SyncWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        self.inner.get_ref().file().sync_all()
    }
}

/// How much is written between two syncs behind a [`SyncBehind`]: 16 MiB.
pub const SYNC_BEHIND: u64 = 16 << 20;

/// A writer over a file that has the disk write behind it: every [`SYNC_BEHIND`] bytes, a
/// thread of its own fdatasyncs what was written so far (one sync at a time, never blocking
/// the writer), so the caller's last fsync waits only for the tail instead of the whole file.
/// It changes when bytes reach the disk, never what is durable when: only the caller's own
/// fsync says that. `flush` waits for the sync under way; a sync that failed fails `flush`,
/// or the `write` that would start the next one (the kernel reports a writeback error once
/// per open file, so the caller's fsync might not see it again).
pub struct SyncBehind<F: Borrow<File>> {
    file: F,
    since: u64,
    sync: Option<JoinHandle<io::Result<()>>>,
    syncs: u64,
}

impl<F: Borrow<File>> SyncBehind<F> {
    /// A writer over `file` (a `File` or a `&File`).
    pub fn new(file: F) -> Self {
        SyncBehind {
            file,
            since: 0,
            sync: None,
            syncs: 0,
        }
    }

    /// The file.
    pub fn file(&self) -> &File {
        self.file.borrow()
    }

    /// How many syncs behind the writer have started.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Waits for the sync under way, if any, and returns its error.
    fn wait(&mut self) -> io::Result<()> {
        match self.sync.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the syncing thread panicked")),
        }
    }
}

impl<F: Borrow<File>> Write for SyncBehind<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file: &File = self.file.borrow();
        let n = file.write(buf)?;
        self.since += n as u64;
        let idle = self.sync.as_ref().is_none_or(JoinHandle::is_finished);
        if self.since >= SYNC_BEHIND && idle {
            self.wait()?;
            let file = self.file.borrow().try_clone()?;
            self.sync = Some(std::thread::spawn(move || file.sync_data()));
            self.syncs += 1;
            self.since = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.wait()?;
        let mut file: &File = self.file.borrow();
        file.flush()
    }
}

impl<F: Borrow<File>> Drop for SyncBehind<F> {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sync_behind_writes_every_byte_and_syncs_as_it_goes() {
        let f = tempfile::tempfile().unwrap();
        let piece: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let mut w = SyncBehind::new(&f);
        for _ in 0..40 {
            w.write_all(&piece).unwrap();
        }
        w.flush().unwrap();
        assert!(w.syncs() >= 1, "no sync behind 40 MiB");
        drop(w);
        let mut all = Vec::new();
        std::io::Seek::rewind(&mut &f).unwrap();
        (&f).read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 40 << 20);
        assert!(all.chunks(1 << 20).all(|c| c == piece));
    }

    #[test]
    fn a_sync_that_fails_behind_the_writer_fails_its_flush() {
        // fdatasync of a pipe fails (EINVAL): the writer's flush must say so.
        let (mut reader, writer) = std::io::pipe().unwrap();
        let drain = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let mut w = SyncBehind::new(File::from(std::os::fd::OwnedFd::from(writer)));
        let piece = vec![7u8; 1 << 20];
        for _ in 0..17 {
            w.write_all(&piece).unwrap();
        }
        assert_eq!(w.syncs(), 1);
        assert!(w.flush().is_err(), "the failed sync was lost");
        drop(w);
        assert_eq!(drain.join().unwrap().unwrap(), 17 << 20);
    }
}
