//! What the updater asks of the host and what it concludes: [`Output`], drained in order
//! from [`Updater::poll`](super::Updater::poll).

use crate::tuf::error::UpdateError;
use crate::tuf::metadata::TargetFile;

/// What the updater asks for or concludes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Read a role's file from the metadata directory; answer [`Input::Loaded`](super::Input::Loaded).
    Load {
        /// The file name (a quoted role name, `.json`).
        role_file: String,
    },
    /// Fetch a path under the metadata base URL; answer [`Input::Fetched`](super::Input::Fetched) or
    /// [`Input::FetchFailed`](super::Input::FetchFailed).
    Fetch {
        /// The path, relative to the base URL (quoted).
        url_path: String,
        /// The most bytes it may have.
        max_length: u64,
    },
    /// Replace a role's file in the metadata directory (atomically) before going on.
    Persist {
        /// The file name (a quoted role name, `.json`).
        role_file: String,
        /// Its bytes, as the repository signed them.
        bytes: Vec<u8>,
    },
    /// The refresh is done: the top-level metadata is trusted.
    Refreshed,
    /// The target searched for, found.
    Found(FoundTarget),
    /// The refresh or the search stopped.
    Failed(UpdateError),
}

/// A target a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTarget {
    /// The target.
    pub target: TargetFile,
    /// The targets role that lists it.
    pub role: String,
    /// Where to fetch it, relative to the targets base URL (`dir/HASH.name` under consistent
    /// snapshots).
    pub url_path: String,
}
