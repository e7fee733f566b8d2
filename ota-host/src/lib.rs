//! The I/O that [`ota_core`] leaves out, for the programs that host it: the C ABI, the `ota`
//! command, the control-plane service and the device daemon.
//!
//! - [`check`]: a whole artifact checked against its signed chunk table on several threads.
//! - [`pipeline`]: the device's data path (verify every chunk, decrypt, inflate) on two
//!   threads, driving the core's sans-IO stages.
//! - [`rollout`]: creating a rollout with its compatibility pass on several threads, driving
//!   the core's [`ota_core::rollout::Judge`].
//! - [`probe`]: health-probe runners (spawn an allowlisted executable, a loopback HTTP GET,
//!   a readiness file), behind the core's [`ota_core::probe`] decisions.
//! - [`seal`]: sealing with compression on several threads, byte for byte what the core's
//!   single-threaded sealer makes.
//! - [`tuf`]: TUF repositories with tough (the publisher's side) and a blocking client over a
//!   directory or HTTP (the device's and control plane's side) that drives the core's sans-IO
//!   [`ota_core::tuf::Updater`]. A target resolves to a [`ota_core::VerifiedPackage`] only
//!   through the core ([`ota_core::tuf::Updater::package`]).
//! - [`table_file`]: a chunk table kept in a file, for [`ota_core::sign::verify_reader`].
//! - [`file_device`]: the reference device over plain files (staging, A/B slots, the agent's
//!   record, all with fsync), the agent's [`ota_core::agent::DeviceIo`]; the C ABI exports it
//!   as `ota_file_device`. [`dir_slots`] and [`durable`] are its parts, which the device
//!   daemon shares.
//!
//! The core stays free of tokio, HTTP clients, C crypto libraries, clocks, files, sockets and
//! processes: `cargo tree -p ota-core -e normal` shows it.
//!
//! # Feature flags
//!
//! - `tuf` (default): the [`tuf`] module, with tough, reqwest, tokio and aws-lc. Off, the crate is the
//!   probe runners alone, for a firmware build of the C ABI.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod check;
pub mod command;
pub mod dir_slots;
pub mod durable;
pub mod file_device;
pub mod pipeline;
pub mod probe;
pub mod rollout;
pub mod seal;
pub mod table_file;
#[cfg(feature = "tuf")]
#[cfg_attr(docsrs, doc(cfg(feature = "tuf")))]
pub mod tuf;
