//! What the agent asks of the host: [`Output`], drained in order from
//! [`Agent::poll`](super::Agent::poll).

use serde::Serialize;

use crate::download::ChunkRequest;
use crate::name::Name;
use crate::probe::ProbeSpec;
use crate::report::DeviceReport;
use crate::time::UnixMs;
use crate::version::Version;

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
    /// Make the slot holding `to` active, then feed `Input::Swapped`. Idempotent by its
    /// target, never a toggle: when the active slot holds `to` already (the swap was carried
    /// out before a power cut), do nothing. Otherwise label the inactive slot (the one just
    /// written) with `to`, durably, then make it active.
    Swap {
        /// What the slot to make active holds.
        to: SlotContent,
    },
    /// Run this probe and feed the result as `Input::ProbeResult`.
    Probe {
        /// The probe.
        spec: ProbeSpec,
        /// When the swap happened, for a readiness file.
        swapped_at: UnixMs,
    },
    /// Make the previous slot active again, then feed `Input::Restored`. Idempotent by its
    /// target, never a toggle: only when the active slot holds `from` (the failed update) is
    /// the other slot made active; otherwise (restored already before a power cut, or the
    /// bootloader fell back) do nothing.
    RestorePrevious {
        /// What the failed slot holds: the slot that must not stay active.
        from: SlotContent,
    },
    /// Send this report to the control plane.
    Report(DeviceReport),
}

/// What a slot holds, as the agent names it in [`Output::Swap`] and
/// [`Output::RestorePrevious`]: a package and its version. A host labels the slot it swaps to
/// with it (its JSON, `{"name":…,"version":…}`, compared byte for byte, is enough), so that a
/// command carried out twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SlotContent {
    /// The package.
    pub name: Name,
    /// Its version.
    pub version: Version,
}

impl SlotContent {
    /// The JSON form, `{"name":…,"version":…}`: the same bytes for the same content.
    pub fn to_json(&self) -> String {
        crate::json::to_string(self)
    }
}
