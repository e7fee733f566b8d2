//! The eligible devices of a fleet, written to a temporary file as they are decided, and
//! copied into the output in place: the list never sits in memory, whatever its length.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use crate::out::Streamed;

/// The list being written: the ids as JSON strings, separated by commas.
pub struct Eligible {
    file: BufWriter<File>,
    count: usize,
}

impl Eligible {
    /// An empty list, with its temporary file.
    pub fn new() -> io::Result<Eligible> {
        Ok(Eligible {
            file: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            count: 0,
        })
    }

    /// Appends `n` ids, given as JSON strings separated by commas (`"a","b"`).
    pub fn push(&mut self, json: &[u8], n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        if self.count > 0 {
            self.file.write_all(b",")?;
        }
        self.file.write_all(json)?;
        self.count += n;
        Ok(())
    }

    /// The finished list.
    pub fn finish(self) -> io::Result<EligibleList> {
        let file = self
            .file
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok(EligibleList {
            file,
            count: self.count,
        })
    }
}

/// The eligible devices, in file order, on disk.
pub struct EligibleList {
    file: File,
    count: usize,
}

impl EligibleList {
    /// How many devices.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Streamed for EligibleList {
    /// The list as a JSON array of strings.
    fn write_json(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut f = &self.file;
        f.seek(io::SeekFrom::Start(0))?;
        w.write_all(b"[")?;
        io::copy(&mut f, w)?;
        w.write_all(b"]")
    }
}
