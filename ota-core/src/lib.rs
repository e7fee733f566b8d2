//! `ota`: ship firmware, software and ML models to device fleets safely.
//!
//! This crate is the pure-Rust core. It never reads a clock, a file, a socket or a random
//! source by itself: time comes in as an argument, bytes come in as slices or
//! `Read`/`Write` adapters, and randomness from a caller-supplied RNG. Every state machine is
//! therefore a deterministic function of its inputs.
//!
//! The modules, one noun each:
//!
//! - [`digest`]: [`Sha256Digest`], a SHA-256 that exists only when well formed.
//! - [`name`]: [`Name`], the identifier used for packages, models, devices and profiles.
//! - [`version`]: semantic versions (re-exported from `semver`), dotted runtime versions and
//!   version ranges.
//! - [`manifest`]: the model manifest ([`ModelManifest`]).
//! - [`profile`]: device profiles and the built-in hardware profiles.
//! - [`package`]: the package a publisher describes ([`Package`]).
//! - [`compat`]: the compatibility engine, per device and per fleet.
//! - [`chunk`]: the chunk table and [`chunk::VerifiedBytes`], the only input of decryption.
//! - [`seal`]: sealed artifacts (gzip, then AES-256-CBC), streamed both ways.
//! - [`sign`]: Ed25519 keys, DSSE envelopes, and [`VerifiedPackage`], made only by verifying.
//! - [`registration`]: seed 002's registration record, object key and CDN URL.
//! - [`catalog`]: the control plane's catalog: pending, available or rejected, by bytes.
//! - [`download`]: any-order chunk download with per-chunk verification, and streaming install.
//! - [`assignment`]: both ends of seed 004's device protocol.
//! - [`agent`]: the device's crash-safe update agent, with [`probe`]s and automatic rollback.
//! - [`report`]: seed 004's device report.
//! - [`plan`] and [`rollout`]: the rollout engine, with its hash-chained [`audit`] trail.
//! - [`sbom`]: minimal SPDX 2.3 / CycloneDX 1.5 validation and compliance coverage.
//! - [`json`]: parsing with field paths in every error.
//! - [`limits`]: every bound the parsers enforce, in one place.
//! - [`status`]: the stable numeric status codes shared with the C ABI.
//! - [`time`]: [`UnixMs`], the instant every state machine is given.
//! - [`tuf`]: the check that makes a package signed into a TUF targets role a
//!   [`VerifiedPackage`] (the TUF client itself, with its I/O, is in the host crate).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod assignment;
pub mod audit;
pub mod catalog;
pub mod chunk;
pub mod compat;
pub mod digest;
pub mod download;
pub mod json;
pub mod limits;
pub mod manifest;
pub mod name;
pub mod package;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod registration;
pub mod report;
pub mod rollout;
pub mod sbom;
pub mod seal;
pub mod sign;
pub mod status;
pub mod time;
pub mod tuf;
pub mod version;

pub use compat::{FleetReport, Reason, Rejection, Report};
pub use digest::Sha256Digest;
pub use json::{Fault, ParseError};
pub use limits::Limits;
pub use manifest::ModelManifest;
pub use name::Name;
pub use package::{Channel, Package, PackageType};
pub use profile::DeviceProfile;
pub use sign::{PackageId, VerifiedPackage};
pub use status::Status;
pub use time::UnixMs;
pub use version::{RuntimeVersion, Version, VersionRange};

/// The version of this library, as in its `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
