//! What happens to devices: in flight when the rollout stops, their timers, their retries.

use serde::{Deserialize, Serialize};

/// Which devices a rollback goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RollbackScope {
    /// The devices that took the update.
    #[default]
    UpdatedOnly,
    /// Every device of the waves opened so far.
    Cohort,
    /// Every eligible device.
    All,
}

/// What happens to a device in flight when the rollout stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InFlight {
    /// It finishes; its report counts.
    #[default]
    Finish,
    /// It is asked to stop if it has not started installing.
    SoftCancel,
    /// It is told to stop.
    ForcedCancel,
}

/// Per-device timers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A sent device that has not reported within this is sent the command again (a `no_ack`
    /// retry). Default 600 000 (10 minutes).
    #[serde(default = "d_ack")]
    pub ack_ms: u64,
    /// A device in progress that has not finished within this timed out. Default 3 600 000.
    #[serde(default = "d_progress")]
    pub in_progress_ms: u64,
    /// A device that never came online within this of the first send expires, `timed_out`.
    /// Default 604 800 000 (7 days).
    #[serde(default = "d_expiry")]
    pub offline_expiry_ms: u64,
    /// Whether an expired (offline) device counts as a failure. Default false.
    #[serde(default)]
    pub offline_is_failure: bool,
}

fn d_ack() -> u64 {
    600_000
}
fn d_progress() -> u64 {
    3_600_000
}
fn d_expiry() -> u64 {
    604_800_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ack_ms: d_ack(),
            in_progress_ms: d_progress(),
            offline_expiry_ms: d_expiry(),
            offline_is_failure: false,
        }
    }
}

/// Retries of one failure class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryClass {
    /// How many times to try again.
    #[serde(default)]
    pub max: u8,
    /// Wait this long before the first retry, doubling each time. Default 0.
    #[serde(default)]
    pub backoff_ms: u64,
}

/// Retries per failure class. A refusal (`rejected`) and an incompatible device are never
/// retried; only final failures feed the halt rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// A device's failure report. Default none.
    #[serde(default)]
    pub failed: RetryClass,
    /// An in-progress timeout. Default none.
    #[serde(default)]
    pub timed_out: RetryClass,
    /// No report after a send. Default 3 resends.
    #[serde(default = "d_no_ack")]
    pub no_ack: RetryClass,
}

fn d_no_ack() -> RetryClass {
    RetryClass {
        max: 3,
        backoff_ms: 0,
    }
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            failed: RetryClass::default(),
            timed_out: RetryClass::default(),
            no_ack: d_no_ack(),
        }
    }
}
