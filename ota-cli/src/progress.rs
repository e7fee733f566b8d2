//! Progress bars for long work: shown on a terminal, hidden under `--json` or when stderr is
//! not a terminal.

use std::io::{self, IsTerminal, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
