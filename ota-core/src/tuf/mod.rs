//! TUF in the core: the specification's client workflow as a sans-IO state machine, and the
//! route from a TUF target to a [`VerifiedPackage`](crate::sign::VerifiedPackage).
//!
//! - [`updater`]: the client workflow (section 5 of the specification), step by step: root
//!   rotation, timestamp, snapshot, targets, and the lazy delegation search. It asks for bytes
//!   and says what to persist; the host crate drives it over files and HTTP.
//! - [`envelope`]: a metadata file's signatures and `signed` part, and canonical JSON.
//! - [`metadata`]: the roles read from their JSON, and the threshold check of signatures.
//! - [`keys`]: Ed25519, ECDSA P-256 and RSA (PSS, PKCS#1 v1.5) with SHA-256, pure Rust.
//! - [`hashes`]: lengths and hashes of files, checked as bytes arrive.
//! - [`paths`]: delegation patterns, quoted role names, target names and their URLs.
//! - [`error`]: why the updater refused ([`UpdateError`]).
//! - `package`: [`verify_target`] (the trusted root and targets metadata, byte for byte, and a
//!   target name, to a package) and [`Updater::package`] (a found target, top-level or
//!   delegated, to a package).

pub mod envelope;
pub mod error;
pub mod hashes;
pub mod keys;
pub mod metadata;
mod package;
pub mod paths;
pub mod updater;

pub use error::UpdateError;
pub use package::{ChainVersions, TufTargetError, verify_target};
pub use updater::{Config, FoundTarget, Held, Input, Output, Updater};
