//! File output that is never left half-written, and never written anywhere but where it was
//! asked to go.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use ota_core::Status;

use crate::error::Failure;

/// Writes `path` (the argument `arg`) as [`ota_host::durable::replace_with`] does: through an
/// exclusively created temporary file beside it, renamed over `path` only when `fill`
/// succeeds; on any failure the temporary file is removed and `path` is untouched. A path
/// that names no file, or names a directory, is refused before `fill` runs. What `fill`
/// writes fails naming `path`.
pub(crate) fn write_atomically(
    arg: &str,
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<Named<'_, &mut File>>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| {
        Failure::new(Status::Io, format!("{what} {}: {e}", path.display()))
    };
    let refuse = |why: &str| {
        Failure::new(
            Status::InvalidArgument,
            format!("{arg}: {} {why}", path.display()),
        )
    };
    if path.file_name().is_none() {
        return Err(refuse("names no file"));
    }
    if path.is_dir() {
        return Err(refuse("is a directory"));
    }
    let shown = path.display().to_string();
    ota_host::durable::replace_with(
        path,
        false,
        |file| {
            let mut out = BufWriter::new(Named::new(&shown, file));
            fill(&mut out)?;
            out.into_inner()
                .map(drop)
                .map_err(|e| io("writing", e.into_error()))
        },
        io,
    )
}

/// A file whose errors name it: `PATH: error`, of the same kind.
pub(crate) struct Named<'a, F> {
    path: &'a str,
    inner: F,
}

impl<'a, F> Named<'a, F> {
    /// `inner`, its errors naming `path`.
    pub(crate) fn new(path: &'a str, inner: F) -> Self {
        Named { path, inner }
    }

    fn name(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {e}", self.path))
    }
}

impl<F: Read> Read for Named<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| self.name(e))
    }
}

impl<F: io::Seek> io::Seek for Named<'_, F> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos).map_err(|e| self.name(e))
    }
}

impl<F: Write> Write for Named<'_, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.name(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.name(e))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
        write_atomically("path", path, |out| {
            out.write_all(bytes)
                .map_err(|e| Failure::new(Status::Io, e.to_string()))
        })
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_never_redirects_the_write() {
        let d = dir();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let out = d.path().join("out.bin");
        // The temporary names an attacker could predict, before and now, all lead to the
        // victim.
        for name in [
            format!("out.bin.partial-{}", std::process::id()),
            ".out.bin.partial".to_string(),
        ] {
            std::os::unix::fs::symlink(&victim, d.path().join(name)).unwrap();
        }
        write(&out, b"plaintext").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"plaintext");
    }

    #[test]
    fn two_writers_of_one_path_each_write_a_whole_file() {
        let d = dir();
        let out = d.path().join("out.bin");
        let a = vec![b'a'; 1 << 20];
        let b = vec![b'b'; 1 << 20];
        std::thread::scope(|s| {
            for bytes in [&a, &b] {
                let out = &out;
                s.spawn(move || {
                    for _ in 0..4 {
                        write_atomically("path", out, |w| {
                            for chunk in bytes.chunks(4096) {
                                w.write_all(chunk)
                                    .and_then(|()| w.flush())
                                    .map_err(|e| Failure::new(Status::Io, e.to_string()))?;
                                std::thread::yield_now();
                            }
                            Ok(())
                        })
                        .unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&out).unwrap();
        assert!(got == a || got == b, "a mixed file of {} bytes", got.len());
        // Nothing is left beside it.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temporary() {
        let d = dir();
        let out = d.path().join("out.bin");
        std::fs::write(&out, b"old").unwrap();
        let e = write_atomically("path", &out, |w| {
            w.write_all(b"half").unwrap();
            Err(Failure::new(Status::DecryptionFailed, "bad key"))
        })
        .unwrap_err();
        assert_eq!(e.status, Status::DecryptionFailed);
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
