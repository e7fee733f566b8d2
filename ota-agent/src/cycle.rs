//! What one cycle of the daemon did ([`Cycle`]), and the line `ota-agent --once` prints
//! for it.

use std::fmt;

use ota_core::{Name, Version};

/// What one cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cycle {
    /// Nothing was assigned.
    Idle,
    /// A new version was installed, found healthy and committed.
    Updated {
        /// The package.
        name: Name,
        /// The version that runs now.
        version: Version,
        /// The version that ran before.
        previous: Option<Version>,
    },
    /// The new version failed after the swap (its probe, or its boots), and the previous
    /// one runs again.
    RolledBack {
        /// The package.
        name: Name,
        /// The version that failed.
        version: Version,
        /// The version that runs again.
        running: Option<Version>,
        /// Why.
        reason: String,
    },
    /// The update failed before the swap (the install); nothing changed.
    Failed {
        /// The package.
        name: Name,
        /// The version that failed.
        version: Version,
        /// Why.
        reason: String,
    },
    /// The assignment was refused before anything was written.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The assigned version runs already (reported as a success).
    Current {
        /// The package.
        name: Name,
        /// Its version.
        version: Version,
    },
    /// A shutdown was asked for; the download stopped at a safe point and resumes later.
    Stopped,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let was = |v: &Option<Version>| v.as_ref().map_or("nothing".into(), |v| v.to_string());
        match self {
            Cycle::Idle => write!(f, "idle: nothing assigned"),
            Cycle::Updated {
                name,
                version,
                previous,
            } => write!(
                f,
                "updated: {name} {version} runs, healthy and committed (was {})",
                was(previous)
            ),
            Cycle::RolledBack {
                name,
                version,
                running,
                reason,
            } => write!(
                f,
                "rolled back: {name} {version} failed after the swap ({reason}); {} runs again",
                was(running)
            ),
            Cycle::Failed {
                name,
                version,
                reason,
            } => write!(
                f,
                "failed: {name} {version} was not installed ({reason}); nothing changed"
            ),
            Cycle::Rejected { reason } => {
                write!(
                    f,
                    "rejected: the assignment was refused ({reason}); nothing changed"
                )
            }
            Cycle::Current { name, version } => {
                write!(f, "current: {name} {version} runs already")
            }
            Cycle::Stopped => write!(
                f,
                "stopped: a shutdown was asked for (a download under way resumes on the next run)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cycle_reads_as_a_sentence_not_as_rust() {
        let n: Name = "fw".parse().unwrap();
        let v = |s: &str| -> Version { s.parse().unwrap() };
        let cases = [
            (Cycle::Idle, "idle: nothing assigned"),
            (
                Cycle::Updated {
                    name: n.clone(),
                    version: v("2.0.0"),
                    previous: Some(v("1.0.0")),
                },
                "updated: fw 2.0.0 runs, healthy and committed (was 1.0.0)",
            ),
            (
                Cycle::RolledBack {
                    name: n.clone(),
                    version: v("2.0.0"),
                    running: None,
                    reason: "probe failed".into(),
                },
                "rolled back: fw 2.0.0 failed after the swap (probe failed); nothing runs again",
            ),
            (
                Cycle::Failed {
                    name: n.clone(),
                    version: v("2.0.0"),
                    reason: "chunk 3".into(),
                },
                "failed: fw 2.0.0 was not installed (chunk 3); nothing changed",
            ),
            (
                Cycle::Rejected {
                    reason: "incompatible".into(),
                },
                "rejected: the assignment was refused (incompatible); nothing changed",
            ),
            (
                Cycle::Current {
                    name: n,
                    version: v("2.0.0"),
                },
                "current: fw 2.0.0 runs already",
            ),
            (
                Cycle::Stopped,
                "stopped: a shutdown was asked for (a download under way resumes on the next run)",
            ),
        ];
        for (c, line) in cases {
            assert_eq!(c.to_string(), line);
        }
    }
}
