//! `ota-agent`: the device daemon. It wraps the core's sans-IO [`Agent`](ota_core::agent::Agent)
//! with what a device needs to update itself from the control plane (`ota-server`) over HTTP:
//!
//! - a TOML [`Config`] (server, device id, credential, state directory, slots, probe, poll
//!   interval, bandwidth cap, concurrency), the hardware profile from a file or detected
//!   ([`hardware`]);
//! - registration with an enrollment token when there is no credential yet;
//! - a [`Daemon`] whose [`cycle`](Daemon::cycle) polls `GET /api/v1/devices/{id}/ota`
//!   (telling the version the device really runs), fetches the assigned chunks by range,
//!   several in flight and in any order, feeds them to the agent, swaps the [`slots`], runs
//!   the real probes (`ota_host::probe::run`), commits or restores, and reports the OTA API's
//!   result with its progress steps, saying back the `attempt` its assignment named;
//!   [`run`](Daemon::run) repeats it at the interval the server suggests, with jitter,
//!   backing off after errors;
//! - while it downloads, it reads its rollout's persistent RPC records (every poll interval,
//!   and when a chunk is refused): a cancel, or a command for another package, stops the
//!   update through the agent's `Input::Cancel` ([`rpc`]), so the device stays on its version
//!   and takes its next assignment; the download deadline (`download_deadline_ms`) ends one
//!   the server never answers.
//!
//! Every output of the agent is carried out in order; its record is written with fsync and
//! an atomic rename before the step it guards ([`store`]), so a `kill -9` anywhere is
//! recovered on the next start: the update resumes where the record says, re-verifying every
//! staged chunk. An output whose step fails (a switch or confirm command, a full disk) is
//! carried out again, before any later one, in the next cycle; the bootloader is told a slot
//! is good before the record says committed. A report is kept in an outbox on disk until the
//! server acknowledges it, or refuses it for good (the API's own 400, 409 but ABORTED, or 404 NOT_FOUND, or any 413).
//!
//! Many daemons can run as tasks of one tokio runtime: nothing here is process-wide.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod error;
pub mod hardware;
pub mod io;
pub mod pace;
pub mod rpc;
pub mod slots;
pub mod store;

pub use config::{Config, ConfigError, SlotsConfig};
pub use daemon::{Cycle, Daemon};
pub use error::DaemonError;
