//! What the agent asks of the host: [`Output`], drained in order from
//! [`Agent::poll`](super::Agent::poll).

use crate::download::ChunkRequest;
use crate::probe::ProbeSpec;
use crate::report::DeviceReport;
use crate::time::UnixMs;

use super::record::AgentRecord;

/// What the host must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Output {
    /// Store this record durably, replacing the previous one, before carrying out any later
    /// output. (Boxed: it carries the assignment, and it is the largest output by far.)
    Persist(Box<AgentRecord>),
    /// Fetch this chunk (in any order) and feed it as `Input::Chunk`.
    Fetch(ChunkRequest),
    /// Make the inactive slot active (idempotent), then feed `Input::Swapped`.
    Swap,
    /// Run this probe and feed the result as `Input::ProbeResult`.
    Probe {
        /// The probe.
        spec: ProbeSpec,
        /// When the swap happened, for a readiness file.
        swapped_at: UnixMs,
    },
    /// Make the previous slot active again (idempotent), then feed `Input::Restored`.
    RestorePrevious,
    /// Send this report to the control plane.
    Report(DeviceReport),
}
