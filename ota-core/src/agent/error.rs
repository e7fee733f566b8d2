//! Why the agent refused an input: [`AgentError`], and [`Rejection`] for an assignment
//! refused before anything was written.

use crate::compat;
use crate::download::DownloadError;
use crate::name::Name;
use crate::probe::ProbeError;
use crate::sign::{PackageId, SignError};
use crate::status::Status;
use crate::version::Version;

use super::record::{AgentState, RecordError};

/// An assignment refused before anything was written. The agent also queues a report:
/// `rejected`, or `success` for [`Rejection::AlreadyInstalled`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The DSSE envelope does not verify against the agent's trusted keys.
    #[error("signature: {0}")]
    Signature(#[from] SignError),
    /// A TUF target came without the package the host's TUF client verified (or with one
    /// verified for another target).
    #[error("tuf target {target} was not verified by the host's tuf client")]
    Unverified {
        /// The target the assignment names.
        target: String,
    },
    /// The verified package is not the one the assignment names.
    #[error("the assignment names {requested}, but the verified package is {given}")]
    PackageMismatch {
        /// The package the assignment names.
        requested: PackageId,
        /// The package verified.
        given: PackageId,
    },
    /// The assignment's unsigned metadata disagrees with the verified statement.
    #[error("the assignment's {field} does not match the signed statement")]
    MetadataMismatch {
        /// The first field that disagrees.
        field: &'static str,
    },
    /// The package does not fit this device.
    #[error("not compatible: {}", join(.reasons))]
    Incompatible {
        /// Every reason, as the compatibility engine gives them.
        reasons: Vec<compat::Rejection>,
    },
    /// The package is the version the device runs already (reported as success).
    #[error("{name} {version} is installed already")]
    AlreadyInstalled {
        /// The package.
        name: Name,
        /// Its version.
        version: Version,
    },
    /// Older than the highest version ever committed, and not a signed rollback.
    #[error("downgrade refused: {name} {offered} is older than {installed}")]
    Downgrade {
        /// The package.
        name: Name,
        /// The highest version committed.
        installed: Version,
        /// The version offered.
        offered: Version,
    },
    /// A signed rollback that goes back further than the version that ran before the last
    /// upgrade (a rollback package replayed after another upgrade).
    #[error(
        "rollback refused: {name} {offered} is older than {floor}, the oldest version a rollback may go back to here"
    )]
    RollbackTooFar {
        /// The package.
        name: Name,
        /// The oldest version a rollback may go back to (`none`: no rollback is allowed).
        floor: String,
        /// The version offered.
        offered: Version,
    },
    /// A signed rollback that replaces another version than the one this device runs (a
    /// rollback package replayed on a device it was not signed for).
    #[error(
        "rollback refused: this {name} rollback replaces {from}, but the device runs {running}"
    )]
    RollbackNotFrom {
        /// The package.
        name: Name,
        /// The version the rollback replaces, as signed.
        from: Version,
        /// The version the device runs (`nothing` when none).
        running: String,
    },
    /// A signed rollback past its expiry.
    #[error("rollback refused: this rollback to {name} {offered} expired at {expires}")]
    RollbackExpired {
        /// The package.
        name: Name,
        /// The version offered.
        offered: Version,
        /// When it expired, as signed.
        expires: String,
    },
    /// Neither the package, the assignment nor the agent's configuration names a health
    /// probe.
    #[error(
        "no health probe is configured: add \"default_probe\" to the agent config, e.g. \"default_probe\": {{\"kind\": \"exec\", \"path\": \"/usr/bin/selftest\", \"timeout_ms\": 10000}} with \"exec_allowlist\": [\"/usr/bin/selftest\"] (or an http or file probe; see docs/c-api.md), or sign a \"probe\" into the package, or send one with the assignment"
    )]
    NoProbe,
    /// The health probe may not run on this device.
    #[error(transparent)]
    ProbeNotAllowed(#[from] ProbeError),
}

fn join(reasons: &[compat::Rejection]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Rejection {
    /// The stable status code of this rejection.
    pub fn status(&self) -> Status {
        match self {
            Rejection::Signature(e) => e.status(),
            Rejection::Unverified { .. } => Status::InvalidArgument,
            Rejection::PackageMismatch { .. } | Rejection::MetadataMismatch { .. } => {
                Status::StatementInvalid
            }
            Rejection::Incompatible { .. } => Status::NotCompatible,
            Rejection::AlreadyInstalled { .. } => Status::AlreadyInstalled,
            Rejection::Downgrade { .. }
            | Rejection::RollbackTooFar { .. }
            | Rejection::RollbackNotFrom { .. }
            | Rejection::RollbackExpired { .. } => Status::Downgrade,
            Rejection::NoProbe => Status::ProbeRefused,
            Rejection::ProbeNotAllowed(e) => e.status(),
        }
    }
}

/// An input the agent could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The input does not fit the current state.
    #[error("{input} in state {state}")]
    WrongState {
        /// The state.
        state: AgentState,
        /// The input, in words.
        input: &'static str,
    },
    /// The assignment was refused before anything was written.
    #[error("assignment refused: {0}")]
    Rejected(#[from] Rejection),
    /// A chunk or the install failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The persisted record cannot be resumed from.
    #[error("agent record: {0}")]
    Record(#[from] RecordError),
}

impl AgentError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            AgentError::WrongState { .. } => Status::WrongState,
            AgentError::Rejected(r) => r.status(),
            AgentError::Download(e) => e.status(),
            AgentError::Record(e) => e.status(),
        }
    }
}
