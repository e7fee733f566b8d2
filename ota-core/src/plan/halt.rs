//! The halt rule: when a rollout stops itself, and what it does then.

use serde::{Deserialize, Serialize};

/// The halt rule, beyond its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaltRule {
    /// The rule cannot trip before this many devices in scope are terminal, or all of them
    /// when the scope holds fewer. Default 1.
    #[serde(default = "d_min_terminal")]
    pub min_terminal: u64,
    /// What the threshold is a share of. Default `scheduled` (the OTA API: "once 11 % of canary
    /// devices report failure").
    #[serde(default)]
    pub denominator: Denominator,
    /// It also trips when failures in scope exceed this count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u64>,
    /// Which outcomes count as failures. Default `failed` and `timed_out`.
    #[serde(default = "d_kinds")]
    pub count_as_failure: Vec<FailureKind>,
    /// The devices it looks at. Default `wave`.
    #[serde(default)]
    pub scope: Scope,
    /// What it does. Default `pause` (the OTA API).
    #[serde(default)]
    pub action: HaltAction,
}

fn d_min_terminal() -> u64 {
    1
}
fn d_kinds() -> Vec<FailureKind> {
    vec![FailureKind::Failed, FailureKind::TimedOut]
}

impl Default for HaltRule {
    fn default() -> Self {
        HaltRule {
            min_terminal: 1,
            denominator: Denominator::Scheduled,
            max_failures: None,
            count_as_failure: d_kinds(),
            scope: Scope::Wave,
            action: HaltAction::Pause,
        }
    }
}

/// What the halt rule's threshold is a share of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Denominator {
    /// The devices scheduled in scope, whether they finished or not: 11 failures of a
    /// 100-device canary trip a 10 % threshold, however early they come.
    #[default]
    Scheduled,
    /// The devices in scope with a final outcome: one early failure is 100 % (bound it with
    /// `min_terminal`).
    Terminal,
}

/// An outcome that may count as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The device reported a failure (after its retries).
    Failed,
    /// The device did not finish in time (after its retries); a device that never came
    /// online counts only when `offline_is_failure`.
    TimedOut,
    /// The device refused the assignment.
    Rejected,
}

/// The devices the halt rule looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Those of the reporting device's wave.
    #[default]
    Wave,
    /// All so far.
    Cumulative,
}

/// What the halt rule does when it trips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HaltAction {
    /// Pause the rollout and publish the alert event.
    #[default]
    Pause,
    /// Abort it.
    Abort,
    /// Roll back to the rollback package.
    Rollback,
}
