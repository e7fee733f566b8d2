//! The device's update agent: a sans-IO state machine the firmware drives.
//!
//! ```text
//! idle ──assignment verified, compatible, not a downgrade──▶ assigned ──▶ downloading
//!   ▲                                                                        │ every chunk
//!   │                                                                        ▼ verified, installed
//!   │                                        swapped ◀── (persist) ◀──── installed
//!   │                                           │ host swapped
//!   │                                           ▼
//!   ├──────────── committed ◀── healthy ──── probing ── unhealthy / too many boots ──┐
//!   │                                                                                ▼
//!   └──── restored ◀── host restored ── rolling_back ◀──────────────────────────── failed
//!         (a failure before the swap goes from failed straight back to idle)
//! ```
//!
//! **The drive loop** (the same in every state machine of this crate). Make the agent with
//! [`Agent::new`] (after a restart, with the last persisted record; or [`Agent::restore`],
//! which also takes the update's package as the host verified it again). Then, forever:
//!
//! 1. feed one [`Input`] to [`Agent::handle`] with the current time: an assignment, a
//!    fetched chunk, the host's swap or restore done, a probe result, or
//!    [`Input::Tick`];
//! 2. drain [`Agent::poll`] until it returns `None`, carrying out each [`Output`] in order;
//! 3. wait for the next input, but no later than [`Agent::poll_timeout`] (the earliest
//!    instant to feed [`Input::Tick`]; an instant already past means now; `None` when the
//!    agent waits only on input).
//!
//! The outputs:
//!
//! - [`Output::Persist`]: store the [`AgentRecord`] durably (replace the previous one)
//!   *before* carrying out any later output. Every state is persisted before the step it
//!   guards.
//! - [`Output::Fetch`]: fetch that chunk, in any order, and feed it as [`Input::Chunk`]. A
//!   rejected chunk is asked for again.
//! - [`Output::Swap`]: make the slot holding the update (its [`SlotContent`]) active, then
//!   feed [`Input::Swapped`] — after a reboot if the swap needs one. Never a toggle: when the
//!   active slot holds it already (a power cut came after the swap), do nothing; otherwise
//!   label the inactive slot with it, durably, then switch.
//! - [`Output::Probe`]: run the health probe and feed the result as [`Input::ProbeResult`].
//! - [`Output::RestorePrevious`]: when the active slot holds the failed update (`from`),
//!   make the other slot active; otherwise do nothing. Then feed [`Input::Restored`].
//! - [`Output::Report`]: send the report to the control plane. It says back the rollout and
//!   the attempt its assignment named, so the control plane can tell which command it answers.
//!
//! Probes are scheduled on the clock you pass in. Data goes through a [`DeviceIo`] the host
//! implements: staging storage for chunks, and the inactive slot.
//!
//! **Two routes to a verified package.** An assignment proved by a DSSE envelope is verified
//! by the agent against [`AgentConfig::trusted`]. One proved by a TUF target is verified by
//! the host's TUF client, which hands the agent the [`VerifiedPackage`] with the assignment
//! (and again to [`Agent::restore`] if the device restarts before the download is done).
//!
//! **Safety.** Nothing is written to any slot before the assignment's proof verifies, the
//! package fits this device, and it is not a downgrade (a signed rollback excepted); no byte
//! is decrypted before its chunk is verified; the active slot is never written. A restart in
//! any state resumes safely; a restart while probing counts as a failed probe, and too many
//! boots roll back. A restart from "assigned" says the in-progress report again, since the
//! power may have gone before it was carried out (the report may so arrive twice).
//!
//! The rooms: [`config`] (the settings and their JSON), [`record`] (the one persisted type),
//! [`input`], [`output`], [`error`] (why an input was refused), `admit` (what an assignment
//! must pass) and `machine` (the transitions and the resume after a restart).
//!
//! [`VerifiedPackage`]: crate::sign::VerifiedPackage

mod admit;
pub mod config;
pub mod error;
pub mod input;
mod machine;
pub mod output;
pub mod record;

use std::io::Write;

pub use config::AgentConfig;
pub use error::{AgentError, Rejection};
pub use input::{ChunkProgress, Input};
pub use machine::Agent;
pub use output::{Output, SlotContent};
pub use record::{AgentRecord, AgentState, RecordError, UpdateRecord};

use crate::download::Staging;

/// What the host gives the agent for data: staging storage for chunks, and the inactive slot.
pub trait DeviceIo: Staging {
    /// Empties the inactive slot and returns a writer for it; its `flush` must make what was
    /// written durable.
    fn open_slot(&mut self) -> std::io::Result<Box<dyn Write + Send>>;
}
