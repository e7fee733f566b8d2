//! Creating a rollout on several threads: the core's compatibility pass
//! ([`ota_core::rollout::Judge`]) over parts of the fleet at once, then the rest of the
//! creation on the calling thread ([`Rollout::create_judged`]). The core starts no thread; this
//! is where a host does.

use ota_core::rollout::{Create, Judge, Rollout, RolloutError};

/// The name of the threads that judge a part of the fleet.
pub const JUDGE_THREAD: &str = "ota-judge";

/// Below this many devices a creation stays on the calling thread: a thread costs more than
/// the part of the pass it would take.
pub const MIN_PARALLEL: usize = 16_384;

/// The fewest devices a thread judges: more threads than the fleet has parts of this size are
/// not started.
const MIN_PART: usize = MIN_PARALLEL / 2;

/// Creates a rollout as [`Rollout::create`] does, its compatibility pass on `threads` threads,
/// the calling one among them: 1 keeps it on the calling thread, 0 chooses for the machine
/// ([`crate::pipeline::default_threads`]). A fleet under [`MIN_PARALLEL`] devices stays on the
/// calling thread, and no thread judges fewer than 8,192 devices (more threads than that
/// allows are not started).
///
/// The rollout is the same whatever the thread count: each thread judges a part of the fleet,
/// and the parts are joined in the fleet's order. A thread the system will not start leaves
/// its part to the calling thread; a thread that panics passes its panic on to the caller.
pub fn create(c: Create<'_>, threads: usize) -> Result<Rollout, RolloutError> {
    let threads = match threads {
        0 => crate::pipeline::default_threads(),
        n => n,
    };
    let n = c.fleet.len();
    let threads = threads.min(n / MIN_PART);
    if threads < 2 || n < MIN_PARALLEL {
        return Rollout::create(c);
    }
    let judge = Judge::new(&c)?;
    let part = n.div_ceil(threads);
    let verdicts = std::thread::scope(|s| {
        let judge = &judge;
        let workers: Vec<_> = (1..threads)
            .map(|t| {
                let range = t * part..(t + 1) * part;
                let worker = std::thread::Builder::new()
                    .name(JUDGE_THREAD.into())
                    .spawn_scoped(s, {
                        let range = range.clone();
                        move || judge.verdicts(range)
                    });
                (range, worker)
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        all.extend(judge.verdicts(0..part));
        for (range, worker) in workers {
            match worker {
                Ok(w) => match w.join() {
                    Ok(v) => all.extend(v),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(_) => all.extend(judge.verdicts(range)),
            }
        }
        all
    });
    drop(judge);
    Rollout::create_judged(c, verdicts)
}
