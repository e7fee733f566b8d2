//! The I/O that [`ota_core`] leaves out, for the programs that host it: the C ABI, the `ota`
//! command, the control-plane service and the device daemon.
//!
//! - [`pipeline`]: the device's data path (verify every chunk, decrypt, inflate) on two
//!   threads, driving the core's sans-IO stages.
//! - [`probe`]: health-probe runners (spawn an allowlisted executable, a loopback HTTP GET,
//!   a readiness file), behind the core's [`ota_core::probe`] decisions.
//! - [`tuf`]: TUF repositories with tough (the publisher's side) and a blocking client over a
//!   directory or HTTP (the device's and control plane's side) that drives the core's sans-IO
//!   [`ota_core::tuf::Updater`]. A target resolves to a [`ota_core::VerifiedPackage`] only
//!   through the core ([`ota_core::tuf::Updater::package`]).
//!
//! The core stays free of tokio, HTTP clients, C crypto libraries, clocks, files, sockets and
//! processes: `cargo tree -p ota-core -e normal` shows it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod pipeline;
pub mod probe;
#[cfg(feature = "tuf")]
pub mod tuf;
