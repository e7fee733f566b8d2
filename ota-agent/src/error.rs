//! Why the daemon could not finish a cycle: [`DaemonError`]. Nothing here loses progress: the
//! record on disk is where the next cycle (or the next start) resumes.

use std::path::{Path, PathBuf};

use ota_core::agent::{AgentError, AgentState};

use crate::config::ConfigError;

/// A cycle (or the daemon's start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is unusable.
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    /// A file of the daemon's could not be read or written.
    #[error("{what}: {}: {source}", path.display())]
    Io {
        /// Which file (`record`, `credential_file`, `staging`, `slots`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another daemon runs on the same state directory (it holds `agent.lock`): two would
    /// write one slot and one record at once.
    #[error(
        "state_dir: {}: another ota-agent holds it ({}); stop it first",
        dir.display(),
        dir.join(crate::store::LOCK_FILE).display()
    )]
    Busy {
        /// The state directory.
        dir: PathBuf,
    },
    /// A persisted file cannot be read back.
    #[error("{}: {message}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// There is no credential and no enrollment token to register with.
    #[error(
        "device {device_id} has no credential in {} and no enrollment_token_file to register with",
        path.display()
    )]
    NotRegistered {
        /// The device.
        device_id: String,
        /// Where the credential was looked for.
        path: PathBuf,
    },
    /// Registration found the device registered already, and its credential is lost.
    #[error("device {device_id} is registered already, but its credential file is missing")]
    AlreadyRegistered {
        /// The device.
        device_id: String,
    },
    /// The server could not be reached, or the connection broke (retried later).
    #[error("{what}: {message}")]
    Http {
        /// The request (`poll`, `chunk 12`, `report`, `register`).
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{what}: the server answered {status}: {message}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The server's error code (`NOT_FOUND`, `FAILED_PRECONDITION`, ...) when its answer
        /// is the API's error shape; `None` from anything else (a proxy).
        code: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The server answered a range request with something else than that range: it
    /// ignores ranges, and is refused.
    #[error("chunk at offset {offset}: the server ignored the range (status {status}, {detail})")]
    RangeIgnored {
        /// The offset asked for.
        offset: u64,
        /// The status it answered.
        status: u16,
        /// What gave it away.
        detail: String,
    },
    /// The server's lengths disagree with what was asked or what it sent, and it is refused.
    #[error("chunk at offset {offset}: {what} says {found}, expected {expected}")]
    LengthMismatch {
        /// The offset asked for.
        offset: u64,
        /// Which length (`content-length`, `content-range`, `body`).
        what: &'static str,
        /// The length expected.
        expected: u64,
        /// The length the server gave.
        found: u64,
    },
    /// The server's answer could not be understood.
    #[error("{what}: {message}")]
    Protocol {
        /// The answer (`assignment`, `registration`).
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A chunk kept failing its digest.
    #[error("chunk {index} failed its digest {attempts} times")]
    BadChunk {
        /// The chunk.
        index: usize,
        /// How many times.
        attempts: u32,
    },
    /// The agent refused an input the daemon fed it.
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
    /// A slot operation failed (a command exited non-zero, a device could not be opened).
    #[error("slots: {0}")]
    Slot(String),
    /// The switch needs a reboot; the reboot command was run.
    #[error("rebooting into the new slot")]
    Rebooting,
    /// The agent waits on nothing the daemon can give it (a bug).
    #[error("the agent is {state} and waits on nothing")]
    Stuck {
        /// Its state.
        state: AgentState,
    },
}

impl DaemonError {
    /// An I/O error on one of the daemon's files.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        DaemonError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the server refused the exchange itself (ranges ignored, lengths that lie):
    /// retrying against the same server will not help soon.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DaemonError::RangeIgnored { .. } | DaemonError::LengthMismatch { .. }
        )
    }
}
