//! The life of a streaming handle (a sealer, an opener, an install): running, then finished
//! with a result that every later `_finish` gives again, or failed for good.

use ota_core::Status;

use crate::error::Failure;

/// A streaming handle's state. `R` is what runs (boxed: it holds its buffers), `D` what
/// finishing it gave; `what` in each method names the handle in messages (`"sealer"`).
pub(crate) enum Stream<R, D> {
    /// Taking input.
    Running(Box<R>),
    /// Finished: a `_finish` called again gives this again, so a buffer that was too small
    /// loses nothing.
    Finished(D),
    /// A call failed; every later one is refused.
    Failed,
}

impl<R, D> Stream<R, D> {
    /// A stream taking input.
    pub(crate) fn new(running: R) -> Self {
        Stream::Running(Box::new(running))
    }

    /// What runs, or `InvalidArgument` when the stream is finished or failed.
    pub(crate) fn running(&mut self, what: &str) -> Result<&mut R, Failure> {
        match self {
            Stream::Running(r) => Ok(r),
            _ => Err(Failure::new(
                Status::InvalidArgument,
                format!("the {what} is finished or failed"),
            )),
        }
    }

    /// Runs `step` on what runs; when it fails, the stream is failed for good.
    pub(crate) fn step(
        &mut self,
        what: &str,
        step: impl FnOnce(&mut R) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let result = step(self.running(what)?);
        if result.is_err() {
            *self = Stream::Failed;
        }
        result
    }

    /// Finishes the stream with `finish` the first time (a failure fails it for good), and
    /// gives the result, the same on every later call; `InvalidArgument` after a failure.
    pub(crate) fn finish(
        &mut self,
        what: &str,
        finish: impl FnOnce(R) -> Result<D, Failure>,
    ) -> Result<&D, Failure> {
        if matches!(self, Stream::Running(_)) {
            // Taken out as failed: a failure leaves it so, and it cannot be finished twice.
            if let Stream::Running(r) = std::mem::replace(self, Stream::Failed) {
                *self = Stream::Finished(finish(*r)?);
            }
        }
        match self {
            Stream::Finished(d) => Ok(d),
            _ => Err(Failure::new(
                Status::InvalidArgument,
                format!("the {what} failed earlier"),
            )),
        }
    }

    /// What finishing gave, or `InvalidArgument` when the stream is not finished.
    pub(crate) fn finished(&self, what: &str) -> Result<&D, Failure> {
        match self {
            Stream::Finished(d) => Ok(d),
            _ => Err(Failure::new(
                Status::InvalidArgument,
                format!("the {what} is not finished"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Failure {
        Failure::new(Status::Io, "no")
    }

    #[test]
    fn a_failed_step_refuses_every_later_call() {
        let mut s: Stream<u32, u32> = Stream::new(1);
        s.step("sealer", |r| {
            *r += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            s.step("sealer", |_| Err(fail())).unwrap_err().status,
            Status::Io
        );
        let again = s.step("sealer", |_| Ok(())).unwrap_err();
        assert_eq!(again.status, Status::InvalidArgument);
        assert_eq!(again.message, "the sealer is finished or failed");
        let finish = s.finish("sealer", Ok).unwrap_err();
        assert_eq!(finish.message, "the sealer failed earlier");
        assert_eq!(
            s.finished("sealer").unwrap_err().message,
            "the sealer is not finished"
        );
    }

    #[test]
    fn a_finished_stream_gives_its_result_again_and_takes_no_more_input() {
        let mut s: Stream<u32, String> = Stream::new(7);
        assert_eq!(s.finish("opener", |r| Ok(r.to_string())).unwrap(), "7");
        assert_eq!(
            s.finish("opener", |_| unreachable!("finished twice"))
                .unwrap(),
            "7"
        );
        assert_eq!(s.finished("opener").unwrap(), "7");
        assert_eq!(
            s.running("opener").unwrap_err().message,
            "the opener is finished or failed"
        );
    }

    #[test]
    fn a_failed_finish_fails_the_stream_with_its_own_failure_first() {
        let mut s: Stream<u32, u32> = Stream::new(7);
        assert_eq!(
            s.finish("install", |_| Err(fail())).unwrap_err().status,
            Status::Io
        );
        let again = s.finish("install", Ok).unwrap_err();
        assert_eq!(again.status, Status::InvalidArgument);
        assert_eq!(again.message, "the install failed earlier");
    }
}
