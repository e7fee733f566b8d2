//! Progress bars for long work: shown on a terminal, hidden under `--json` or when stderr is
//! not a terminal.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ota_core::chunk::{ChunkHasher, Digests};

use crate::out::CliError;

/// A byte-count bar of `total` bytes, labelled `what`.
pub fn bytes(total: u64, what: &str, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if json || !io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A reader that advances `bar` by what it reads.
pub struct Reading<R> {
    /// The reader.
    pub inner: R,
    /// The bar.
    pub bar: ProgressBar,
}

impl<R: Read> Read for Reading<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// The digests of the file at `path` (`size` bytes expected, for the bar), under a bar
/// labelled `what`.
pub fn hash_file(path: &Path, size: u64, what: &str, json: bool) -> Result<Digests, CliError> {
    let file = File::open(path).map_err(|e| CliError::io(path, e))?;
    hash_open(file, path, size, what, json)
}

/// [`hash_file`] of a file already open (at its start); errors name `path`.
pub fn hash_open(
    mut file: File,
    path: &Path,
    size: u64,
    what: &str,
    json: bool,
) -> Result<Digests, CliError> {
    let bar = bytes(size, what, json);
    let mut h = ChunkHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| CliError::io(path, e))?;
        if n == 0 {
            break;
        }
        bar.inc(n as u64);
        h.update(&buf[..n]);
    }
    bar.finish_and_clear();
    Ok(h.finish())
}
