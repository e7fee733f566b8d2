//! SIGINT and SIGTERM as errors: a long command stops at its next read, through its ordinary
//! failure path, so that its temporary files and new directories are removed on the way out.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::out::CliError;

/// Set when SIGINT or SIGTERM arrives.
#[derive(Clone)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// From now on, SIGINT and SIGTERM set the flag instead of ending the process; a second
    /// one ends it at once (exit 128 + the signal's number), for a command blocked where no
    /// read checks the flag (opening a FIFO no one writes to).
    pub fn on_signals() -> Result<Stop, CliError> {
        let flag = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let refused =
                |e: std::io::Error| CliError::usage(format!("handling signal {sig}: {e}"));
            // The order matters: the condition is checked before the flag is set.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())
                .map_err(refused)?;
            signal_hook::flag::register(sig, flag.clone()).map_err(refused)?;
        }
        Ok(Stop(flag))
    }

    /// A stop that no signal sets (a test's).
    #[cfg(test)]
    pub fn never() -> Stop {
        Stop(Arc::new(AtomicBool::new(false)))
    }

    /// Whether a signal came.
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `inner`, failing its next read once a signal has come.
    pub fn reader<R>(&self, inner: R) -> Stoppable<R> {
        Stoppable {
            inner,
            stop: self.clone(),
        }
    }
}

/// A reader that fails once SIGINT or SIGTERM has come.
pub struct Stoppable<R> {
    inner: R,
    stop: Stop,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if self.stop.stopped() {
            0
        } else {
            self.inner.read(buf)?
        };
        if self.stop.stopped() {
            return Err(io::Error::other("interrupted by a signal"));
        }
        Ok(n)
    }
}

impl<R: io::Seek> io::Seek for Stoppable<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}
