//! `ota`: ship firmware, software and ML models to device fleets safely.
//!
//! This crate is the pure-Rust core. It never reads a clock, a file, a socket or a random
//! source by itself: time comes in as an argument, bytes come in as slices or
//! `Read`/`Write` adapters, and randomness from a caller-supplied RNG. Every state machine is
//! therefore a deterministic function of its inputs.
//!
//! The modules, one noun each, in the order data flows through them:
//!
//! **Vocabulary**: the words every document is written in.
//! - [`digest`]: [`Sha256Digest`], a SHA-256 that exists only when well formed.
//! - [`name`]: [`Name`], the identifier used for packages, models, devices and profiles.
//! - [`version`]: semantic versions (re-exported from `semver`), dotted runtime versions and
//!   version ranges.
//! - [`time`]: [`UnixMs`], the instant every state machine is given.
//! - [`hardware`]: CPU architectures, accelerator kinds, compute capabilities, tensor types.
//! - [`channel`]: release channels ([`Channel`]).
//! - [`text`]: checked strings: relative paths, SPDX licenses, timestamps, artifact URIs.
//! - [`limits`]: every bound the parsers enforce, in one place ([`Limits`]).
//! - [`json`]: parsing with field paths in every error.
//! - [`status`]: the stable numeric status codes shared with the C ABI.
//!
//! **Documents**: what publishers and devices write.
//! - [`manifest`]: the model manifest ([`ModelManifest`]).
//! - [`profile`]: device profiles and the built-in hardware profiles.
//! - [`package`]: the package a publisher describes ([`Package`]).
//! - [`sbom`]: minimal SPDX 2.3 / CycloneDX 1.5 validation and compliance coverage.
//!
//! **Publisher**: from an artifact to a signed, registered package.
//! - [`seal`]: sealing artifacts (gzip, then AES-256-CBC), streamed; [`deflate`] its gzip,
//!   in independent blocks that several threads may compress.
//! - [`open`]: opening sealed artifacts from verified bytes, streamed.
//! - [`chunk`]: the chunk table and [`chunk::VerifiedBytes`], the only input of decryption.
//! - [`keys`]: Ed25519 signing keys, public keys, key ids and trusted key sets.
//! - [`dsse`]: DSSE envelopes and their pre-authentication encoding.
//! - [`sign`]: signing a package statement and threshold verification.
//! - [`verified`]: [`VerifiedPackage`], made only by verifying.
//! - [`registration`]: publish_artifact.py's registration record, object key and CDN URL.
//!
//! **Control plane**: what a fleet service decides.
//! - [`catalog`]: pending, available or rejected packages, by bytes.
//! - [`compat`]: the compatibility engine, per device and per fleet.
//! - [`plan`] and [`rollout`]: the rollout engine, with its hash-chained [`audit`] trail.
//!
//! **Device**: what runs on the device.
//! - [`download`]: any-order chunk download with per-chunk verification, and streaming install.
//! - [`assignment`]: both ends of the OTA API's device protocol.
//! - [`agent`]: the device's crash-safe update agent, with [`probe`]s and automatic rollback.
//! - [`report`]: the OTA API's device report.
//! - [`tuf`]: the TUF specification's client workflow as a sans-IO state machine
//!   ([`tuf::Updater`]), and the checks that make a package signed into a TUF targets role a
//!   [`VerifiedPackage`] (the host crate `ota-host` drives the updater over files and HTTP).
//!
//! # Examples, by role
//!
//! Each is a complete program (also in `ota-core/examples/`, run with
//! `cargo run -p ota-core --example NAME`), run as a test.
//!
//! ## Publisher: seal, sign, verify, check, open
//!
//! ```
#![doc = include_str!("../examples/publisher.rs")]
//! ```
//!
//! ## Device: the update agent, from assignment to committed update
//!
//! ```
#![doc = include_str!("../examples/device.rs")]
//! ```
//!
//! ## Control plane: a rollout in waves, its snapshot and its audit trail
//!
//! ```
#![doc = include_str!("../examples/control_plane.rs")]
//! ```
//!
//! # Feature flags
//!
//! `ota-core` has none: everything above is always there, and nothing in it does I/O. What
//! does I/O is optional in the crates around it:
//! - `ota-host`: `tuf` (default), the TUF repository and client over files and HTTP; without
//!   it, the health-probe runners alone.
//! - `ota-ffi` (the C ABI): `probe-runners` (default) exports `ota_probe_run`; `tuf` (default)
//!   exports `ota_tuf_*`. A minimal firmware build disables both.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Vocabulary.
pub mod digest;
pub mod name;
pub mod version;
pub mod time;
pub mod hardware;
pub mod channel;
pub mod text;
pub mod limits;
pub mod json;
pub mod status;

// Documents.
pub mod manifest;
pub mod profile;
pub mod package;
pub mod sbom;

// Publisher.
mod cbc_stream;
pub mod deflate;
pub mod seal;
pub mod open;
pub mod segment;
pub mod chunk;
pub mod keys;
pub mod dsse;
pub mod sign;
pub mod verified;
pub mod registration;

// Control plane.
pub mod catalog;
pub mod compat;
pub mod plan;
pub mod rollout;
pub mod audit;

// Device.
pub mod download;
pub mod assignment;
pub mod agent;
pub mod probe;
pub mod report;

pub mod tuf;

pub use channel::Channel;
pub use compat::{FleetReport, Reason, Rejection, Report};
pub use digest::Sha256Digest;
pub use json::{Fault, ParseError};
pub use limits::Limits;
pub use manifest::ModelManifest;
pub use name::Name;
pub use package::{Package, PackageType};
pub use profile::DeviceProfile;
pub use status::Status;
pub use time::UnixMs;
pub use verified::{PackageId, VerifiedPackage};
pub use version::{RuntimeVersion, Version, VersionRange};

/// The version of this library, as in its `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
