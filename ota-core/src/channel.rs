//! Release channels: which builds a device follows (`stable`, `beta`, `canary`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A release channel.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Channel {
    /// Production.
    #[default]
    Stable,
    /// Candidates.
    Beta,
    /// The earliest builds.
    Canary,
}

impl Channel {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Beta => "beta",
            Channel::Canary => "canary",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
