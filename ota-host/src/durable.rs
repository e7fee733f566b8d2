//! Files that survive a power cut: replaced whole (a temporary file of its own, fsync, an
//! atomic rename, fsync of the directory), and slot writers whose `flush` reaches the disk,
//! the disk writing behind them as they go ([`SyncBehind`]).

use std::borrow::Borrow;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// Replaces `path` with `bytes`, as [`replace_with`] does (a crash leaves the old file or the
/// new one, never a mix), creating its directory first if it is missing. `private` makes the
/// file owner-only (0600). An error is the file system's `io::Error` as it came (one from
/// creating the temporary file names it).
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    create_dir_all(parent(path))?;
    replace_with(path, private, |f| f.write_all(bytes), |_, e| e)
}

/// Replaces `path` whole with what `fill` writes, through a temporary file beside it that is
/// renamed over `path` only when `fill` succeeds. On any failure the temporary file is
/// removed and `path` is untouched.
///
/// The temporary file has an unpredictable hidden name (`.NAME.XXXXXX.partial`) and is
/// created exclusively (`O_EXCL`), so a symlink planted in the directory is never followed,
/// and two writers of one path never share a file: each renames a whole file of its own, the
/// last one wins. The file is synced before the rename, and the directory after it, so the
/// new name survives a power cut. `private` makes it owner-only (0600); otherwise it is
/// created as [`File::create`] would (0666 less the umask).
///
/// `fill`'s error is returned as it is; a failure of the file system becomes
/// `io_error(step, error)`, the step being one of "creating a temporary file for",
/// "syncing", "renaming into" and "syncing the directory of" (each reads well before the
/// path).
pub fn replace_with<E>(
    path: &Path,
    private: bool,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
    io_error: impl Fn(&'static str, io::Error) -> E,
) -> Result<(), E> {
    let dir = parent(path);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(if private {
            0o600
        } else {
            0o666
        }));
    }
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| io_error("creating a temporary file for", e))?;
    // On any failure below, dropping `tmp` (or its path) removes the temporary file.
    let (mut file, tmp_path) = tmp.into_parts();
    fill(&mut file)?;
    file.sync_all().map_err(|e| io_error("syncing", e))?;
    drop(file);
    tmp_path
        .persist(path)
        .map_err(|e| io_error("renaming into", e.error))?;
    sync_dir(dir).map_err(|e| io_error("syncing the directory of", e))
}

/// Removes the temporary files [`replace_with`] leaves in `dir` when its process dies while
/// writing (hidden, named `.NAME.XXXXXX.partial`) and says how many. For a directory whose
/// files one process writes, when it starts: another writer's file in progress would go too.
/// A leftover is harmless, so one that cannot be inspected or removed is left where it is;
/// only a directory that cannot be read is an error.
pub fn remove_partials(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let leftover = name.starts_with('.')
            && name.ends_with(".partial")
            && entry.file_type().is_ok_and(|t| t.is_file());
        if leftover && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The directory a file is in (`.` for a bare name, whose `Path::parent` is "").
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Creates `dir` and its missing parents, as [`std::fs::create_dir_all`] does, and makes each
/// new one durable: the directory holding it is synced once it is made. Without that, a
/// power cut can lose a new directory, and every file written and synced into it.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    // The missing directories, from `dir` up to the first that exists.
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err() {
        missing.push(d);
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for new in missing.into_iter().rev() {
        match std::fs::create_dir(new) {
            Ok(()) => sync_dir(parent(new))?,
            // Made by another process meanwhile: it syncs its own.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && new.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    if dir.is_dir() {
        Ok(())
    } else {
        // What is there is not a directory (or a link to one): the error create_dir_all gives.
        std::fs::create_dir_all(dir)
    }
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
    fn a_planted_symlink_never_redirects_a_replace() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let out = d.path().join("record.json");
        // The temporary names an attacker could predict, before and now, all lead to the
        // victim.
        for name in ["record.json.tmp", ".record.json.partial"] {
            std::os::unix::fs::symlink(&victim, d.path().join(name)).unwrap();
        }
        write_atomic(&out, b"new", false).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
    }

    #[test]
    fn a_failed_replace_leaves_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("record.json");
        std::fs::write(&out, b"old").unwrap();
        let e = replace_with(
            &out,
            false,
            |f| {
                f.write_all(b"half")?;
                Err(io::Error::other("the writer gave up"))
            },
            |_, e| e,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the writer gave up");
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // A directory that does not exist fails at the first step, and says which.
        let e = replace_with(
            &d.path().join("missing/record.json"),
            false,
            |_| Ok(()),
            |step, e| format!("{step}: {e}"),
        )
        .unwrap_err();
        assert!(e.starts_with("creating a temporary file for: "), "{e}");
    }

    #[test]
    fn what_a_crash_left_of_a_replace_is_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        // A writer that died before its rename leaves a hidden temporary file.
        let tmp = tempfile::Builder::new()
            .prefix(".record.json.")
            .suffix(".partial")
            .tempfile_in(d.path())
            .unwrap();
        let (_file, left) = tmp.into_parts();
        let left = left.keep().unwrap();
        write_atomic(&p("record.json"), b"kept", false).unwrap();
        std::fs::write(p("notes.partial"), b"not hidden").unwrap();
        std::fs::write(p(".hidden"), b"not a temporary").unwrap();
        std::fs::create_dir(p(".dir.partial")).unwrap();
        assert_eq!(remove_partials(d.path()).unwrap(), 1);
        assert!(!left.exists());
        assert_eq!(std::fs::read(p("record.json")).unwrap(), b"kept");
        for kept in ["notes.partial", ".hidden", ".dir.partial"] {
            assert!(p(kept).exists(), "{kept} was removed");
        }
        assert_eq!(remove_partials(d.path()).unwrap(), 0);
    }

    #[test]
    fn a_private_file_is_owner_only_and_a_missing_directory_is_made() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("a/b/credential");
        write_atomic(&secret, b"s3cret\n", true).unwrap();
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&secret).unwrap(), b"s3cret\n");
    }

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
