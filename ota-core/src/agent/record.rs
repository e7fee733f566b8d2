//! What the agent persists: one serde type, [`AgentRecord`], small and enough to resume after
//! a restart in any state. [`Output::Persist`](super::Output::Persist) carries it typed; the
//! host stores it however it likes (its JSON form is [`AgentRecord::to_json`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::assignment::Assignment;
use crate::download::DownloadState;
use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::name::Name;
use crate::probe::{ProbeProgress, ProbeSpec};
use crate::sign::PackageId;
use crate::status::Status;
use crate::time::UnixMs;
use crate::version::Version;

/// Where the agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    /// Nothing in progress.
    Idle,
    /// An assignment was verified and accepted.
    Assigned,
    /// Chunks are being fetched and installed into the inactive slot.
    Downloading,
    /// The new version is complete in the inactive slot.
    Installed,
    /// The swap was asked for.
    Swapped,
    /// The new version runs; health probes decide.
    Probing,
    /// Healthy: the new version stays.
    Committed,
    /// The update failed.
    Failed,
    /// The previous version is being restored.
    RollingBack,
    /// The previous version runs again.
    Restored,
}

impl AgentState {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Assigned => "assigned",
            AgentState::Downloading => "downloading",
            AgentState::Installed => "installed",
            AgentState::Swapped => "swapped",
            AgentState::Probing => "probing",
            AgentState::Committed => "committed",
            AgentState::Failed => "failed",
            AgentState::RollingBack => "rolling_back",
            AgentState::Restored => "restored",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The update in progress, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecord {
    /// What the control plane assigned (with its proof and the key).
    pub assignment: Assignment,
    /// The package's name, from the verified statement.
    pub name: Name,
    /// The version being installed.
    pub version: Version,
    /// The version that was active before, if any.
    pub previous: Option<Version>,
    /// When the assignment was taken (the download deadline counts from it); `None` in a
    /// record written before it was kept, counted from the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<UnixMs>,
    /// Which chunks are verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadState>,
    /// The health probe.
    pub probe: ProbeSpec,
    /// Where probing stands.
    #[serde(default)]
    pub progress: ProbeProgress,
    /// Boots into the new version so far.
    #[serde(default)]
    pub boot_attempts: u32,
    /// Whether the slots were swapped (a failure after that needs a restore).
    #[serde(default)]
    pub swapped: bool,
    /// Why the update failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Everything the agent persists: small, and enough to resume after a restart in any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// The state.
    pub state: AgentState,
    /// The active version of each package.
    #[serde(default)]
    pub installed: BTreeMap<Name, Version>,
    /// The highest version of each package ever committed (downgrade protection).
    #[serde(default)]
    pub highest: BTreeMap<Name, Version>,
    /// The oldest version of each package a signed rollback may go back to: the version
    /// that ran before the last upgrade committed (the shipped version on a new device). A
    /// rollback package is bound to what it rolls back from this way: replayed later, after
    /// another upgrade, it is refused. No entry: no rollback below `highest`.
    #[serde(default)]
    pub rollback_floor: BTreeMap<Name, Version>,
    /// The update in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateRecord>,
}

/// A persisted record the agent cannot resume from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A state that needs an update in progress, without one.
    #[error("state {state} needs the update in progress")]
    MissingUpdate {
        /// The state.
        state: AgentState,
    },
    /// The package given to resume with is not the one the record's update installs.
    #[error("the record's update installs {requested}, but the package given is {given}")]
    PackageMismatch {
        /// The package of the record's update.
        requested: PackageId,
        /// The package given.
        given: PackageId,
    },
}

impl RecordError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            RecordError::MissingUpdate { .. } | RecordError::PackageMismatch { .. } => {
                Status::RecordInvalid
            }
        }
    }
}

impl AgentRecord {
    /// A new device's record: idle, with the versions it ships with.
    pub fn new(installed: BTreeMap<Name, Version>) -> Self {
        AgentRecord {
            state: AgentState::Idle,
            highest: installed.clone(),
            rollback_floor: installed.clone(),
            installed,
            update: None,
        }
    }

    /// The largest record accepted: an assignment and a download bitmap.
    pub fn max_bytes(limits: &Limits) -> usize {
        Assignment::max_bytes(limits) + limits.max_document_bytes
    }

    /// Parses a persisted record, bounded by [`AgentRecord::max_bytes`].
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("agent record", bytes, Self::max_bytes(limits))
    }

    /// The record as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// Checks that the record is consistent: a state other than idle has its update.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.state != AgentState::Idle && self.update.is_none() {
            return Err(RecordError::MissingUpdate { state: self.state });
        }
        Ok(())
    }
}

impl Validate for AgentRecord {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        if let Err(e) = self.check() {
            json::fault(faults, json::field(path, "update"), e.to_string());
        }
    }
}
