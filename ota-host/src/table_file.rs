//! A chunk table kept in a file ([`TableFile`]): the [`TableStore`] that
//! [`ota_core::sign::verify_reader`] writes a statement's digests to, so that a device's (or
//! `ota unpack`'s) memory does not grow with the artifact.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ota_core::chunk::TableStore;

/// A [`TableStore`] over a file, read and written at offsets (`pread`/`pwrite`), so that the
/// two threads of [`crate::pipeline`] read it at once.
#[derive(Debug)]
pub struct TableFile(File);

impl TableFile {
    /// A store over `file`, opened for reading and writing.
    pub fn new(file: File) -> Self {
        TableFile(file)
    }

    /// A store in a new file with no name in `dir` (gone when dropped, even on a crash), or
    /// in an unlinked temporary file there where the file system has no `O_TMPFILE`.
    pub fn unnamed_in(dir: &Path) -> io::Result<Self> {
        tempfile::tempfile_in(dir).map(TableFile)
    }
}

impl TableStore for TableFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_a_short_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = TableFile::unnamed_in(dir.path()).unwrap();
        t.write_at(4096, b"digests").unwrap();
        let mut buf = [0u8; 7];
        t.read_at(4096, &mut buf).unwrap();
        assert_eq!(&buf, b"digests");
        assert!(t.read_at(4100, &mut buf).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no name left"
        );
    }
}
