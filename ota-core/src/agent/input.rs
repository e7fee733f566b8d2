//! What the host feeds the agent: [`Input`], one at a time, to
//! [`Agent::handle`](super::Agent::handle).

use crate::assignment::Assignment;
use crate::probe::ProbeResult;
use crate::sign::VerifiedPackage;

/// One input to the agent.
#[derive(Debug, Clone)]
#[non_exhaustive]
// An input is moved once into `handle`; boxing the assignment would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Input<'a> {
    /// An assignment from the control plane. It is refused — reported `rejected`, nothing
    /// written — unless its proof verifies, its metadata matches the verified statement, the
    /// package fits this device, it is not older than the highest version installed (a
    /// signed rollback excepted), and its health probe may run here.
    Assignment {
        /// The assignment.
        assignment: Assignment,
        /// The package as the host verified it: required for a TUF target (the device's TUF
        /// client resolves it), optional for a DSSE envelope (the agent verifies the envelope
        /// itself and then requires the same package id).
        package: Option<VerifiedPackage>,
    },
    /// A fetched chunk. It is verified against the signed chunk table, staged, and the
    /// verified prefix is installed. A bad chunk is refused with its index and fetched
    /// again; a duplicate changes nothing. An install failure (a decompression bomb, a
    /// wrong key) fails the update, leaving the active slot untouched.
    Chunk {
        /// Where the chunk starts in the artifact.
        offset: u64,
        /// Its bytes.
        data: &'a [u8],
    },
    /// The host made the new slot active (after a reboot, if it needed one): probing starts.
    Swapped,
    /// The result of the probe the agent asked for.
    ProbeResult(ProbeResult),
    /// The host made the previous slot active again.
    Restored,
    /// Time passed: a probe may be due, or a deadline passed (the probing deadline, or the
    /// download deadline). During a download it also records the chunks verified since the
    /// last record ([`crate::agent::Output::Persist`]; every 64 chunks otherwise): a host
    /// that stops mid-download ticks first, and fetches only what is missing when it
    /// resumes. Harmless in any state.
    Tick,
    /// The control plane cancelled the update in progress. Before the swap the update fails
    /// at once (nothing active was touched); after it, the previous version is restored.
    /// Harmless when nothing is in progress, or the update is already ending.
    Cancel,
}

impl Input<'_> {
    /// An assignment proved by a DSSE envelope, which the agent verifies itself.
    pub fn assignment(assignment: Assignment) -> Self {
        Input::Assignment {
            assignment,
            package: None,
        }
    }

    /// What the input is, in words, for [`AgentError::WrongState`](super::AgentError).
    pub fn name(&self) -> &'static str {
        match self {
            Input::Assignment { .. } => "an assignment",
            Input::Chunk { .. } => "a chunk",
            Input::Swapped => "a swap",
            Input::ProbeResult(_) => "a probe result",
            Input::Restored => "a restore",
            Input::Tick => "a tick",
            Input::Cancel => "a cancel",
        }
    }
}

/// What one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Chunks verified so far.
    pub verified: usize,
    /// Chunks installed into the slot so far.
    pub installed: usize,
    /// Chunks in the artifact.
    pub total: usize,
    /// Whether this chunk was new.
    pub new: bool,
}
