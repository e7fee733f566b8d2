//! What the daemon keeps on disk, each file replaced whole with fsync and an atomic rename:
//! the agent's record, the credential, the report outbox and the slot table.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_core::Limits;
use ota_core::agent::AgentRecord;
use ota_core::report::DeviceReport;

use crate::error::DaemonError;

/// The durable file primitives, shared with `ota-host`'s reference file device.
pub use ota_host::durable::{read_optional, remove_partials, sync_dir, write_atomic};

/// The file in the state directory a running daemon holds locked.
pub const LOCK_FILE: &str = "agent.lock";

/// How long [`StateDir::open_waiting`] waits for a daemon that is stopping to let go of the
/// state directory (a restart), in milliseconds.
const LOCK_WAIT_MS: u64 = 5_000;

/// The files of the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// `agent.lock`, locked exclusively for as long as any clone lives.
    _lock: Arc<File>,
}

impl StateDir {
    /// [`StateDir::open`], waiting up to 5 s (without blocking the runtime) for a daemon
    /// that is stopping to let go of the directory: a restart.
    pub async fn open_waiting(dir: &Path) -> Result<StateDir, DaemonError> {
        let start = Instant::now();
        loop {
            match StateDir::open(dir) {
                Err(DaemonError::Busy { .. })
                    if start.elapsed() < Duration::from_millis(LOCK_WAIT_MS) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// The state directory, created if missing, locked against a second daemon, then
    /// cleared of what a crash while replacing one of its files left behind
    /// ([`remove_partials`]). A second daemon on the same directory is refused
    /// ([`DaemonError::Busy`]) before it touches anything: it would delete the first one's
    /// files as it writes them.
    pub fn open(dir: &Path) -> Result<StateDir, DaemonError> {
        ota_host::durable::create_dir_all(dir).map_err(|e| DaemonError::io("state_dir", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| DaemonError::io("state_dir", &path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DaemonError::Busy {
                    dir: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(DaemonError::io("state_dir", &path, e));
            }
        }
        remove_partials(dir).map_err(|e| DaemonError::io("state_dir", dir, e))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: Arc::new(lock),
        })
    }

    /// A file in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The agent's last persisted record, if any.
    pub fn load_record(&self, limits: &Limits) -> Result<Option<AgentRecord>, DaemonError> {
        let path = self.path("record.json");
        let Some(bytes) = read_optional(&path).map_err(|e| DaemonError::io("record", &path, e))?
        else {
            return Ok(None);
        };
        AgentRecord::from_json(&bytes, limits)
            .map(Some)
            .map_err(|e| DaemonError::Record {
                path,
                message: e.to_string(),
            })
    }

    /// Persists the agent's record (before the step it guards), readable by its owner only:
    /// during an update it holds the assignment's AES key.
    pub fn save_record(&self, record: &AgentRecord) -> Result<(), DaemonError> {
        let path = self.path("record.json");
        write_atomic(&path, record.to_json().as_bytes(), true)
            .map_err(|e| DaemonError::io("record", &path, e))
    }

    /// The reports not yet acknowledged by the server, oldest first.
    pub fn load_outbox(&self, limits: &Limits) -> Result<Vec<DeviceReport>, DaemonError> {
        let path = self.path("reports.json");
        let Some(bytes) = read_optional(&path).map_err(|e| DaemonError::io("outbox", &path, e))?
        else {
            return Ok(Vec::new());
        };
        let docs: Vec<serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| DaemonError::Record {
                path: path.clone(),
                message: e.to_string(),
            })?;
        docs.iter()
            .map(|d| {
                DeviceReport::from_json(d.to_string().as_bytes(), limits).map_err(|e| {
                    DaemonError::Record {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })
            })
            .collect()
    }

    /// Replaces the outbox.
    pub fn save_outbox(&self, reports: &[DeviceReport]) -> Result<(), DaemonError> {
        let path = self.path("reports.json");
        let text = serde_json::to_vec(reports).unwrap_or_default();
        write_atomic(&path, &text, false).map_err(|e| DaemonError::io("outbox", &path, e))
    }
}

/// The device credential in `path`, if the file exists (trimmed; an empty file is none).
pub fn load_credential(path: &Path) -> Result<Option<String>, DaemonError> {
    let bytes = read_optional(path).map_err(|e| DaemonError::io("credential_file", path, e))?;
    let Some(c) = bytes
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    if !crate::client::is_credential(&c) {
        return Err(DaemonError::Record {
            path: path.to_path_buf(),
            message: "credential_file: not a credential (a token of visible ASCII characters)"
                .into(),
        });
    }
    Ok(Some(c))
}

/// Queues `report` at the end of the outbox unless the same report is its last already;
/// whether it was queued. A report given again while the server is away (the success of the
/// version that runs, for an assignment sent again at each poll) is queued once; the order of
/// distinct reports is kept.
pub fn enqueue(outbox: &mut Vec<DeviceReport>, report: &DeviceReport) -> bool {
    if outbox.last() == Some(report) {
        return false;
    }
    outbox.push(report.clone());
    true
}

/// Stores the device credential (0600, fsync, atomic rename).
pub fn save_credential(path: &Path, credential: &str) -> Result<(), DaemonError> {
    write_atomic(path, format!("{credential}\n").as_bytes(), true)
        .map_err(|e| DaemonError::io("credential_file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_core::report::ReportStatus;

    fn report(status: ReportStatus) -> DeviceReport {
        DeviceReport {
            device_id: "dev-1".parse().unwrap(),
            rollout_id: Some("rol_1".parse().unwrap()),
            firmware_version: Some("2.0.0".parse().unwrap()),
            status,
            reason: None,
            attempt: Some(1),
        }
    }

    #[test]
    fn a_report_given_again_while_it_waits_last_is_queued_once_and_order_is_kept() {
        let mut outbox = Vec::new();
        let (busy, done) = (
            report(ReportStatus::InProgress),
            report(ReportStatus::Success),
        );
        assert!(enqueue(&mut outbox, &busy));
        assert!(enqueue(&mut outbox, &done));
        for _ in 0..6 {
            assert!(!enqueue(&mut outbox, &done));
        }
        assert_eq!(outbox, [busy.clone(), done.clone()]);
        // A report that differs, or the same after another, is queued.
        assert!(enqueue(&mut outbox, &busy));
        assert_eq!(outbox.len(), 3);
    }
}
