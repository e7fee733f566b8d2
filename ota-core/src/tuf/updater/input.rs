//! What the host feeds the updater: [`Input`], one at a time, to
//! [`Updater::handle`](super::Updater::handle).

/// What the updater takes in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// Refresh the top-level metadata (once per updater).
    Refresh,
    /// Find a target (refreshing first if not yet done).
    FindTarget {
        /// The target's name.
        name: String,
    },
    /// The answer to [`Output::Load`](super::Output::Load).
    Loaded {
        /// The file asked for.
        role_file: String,
        /// Its bytes, `None` when there is no such file.
        bytes: Option<Vec<u8>>,
    },
    /// The answer to [`Output::Fetch`](super::Output::Fetch).
    Fetched {
        /// The path asked for.
        url_path: String,
        /// The bytes (at most `max_length + 1` of them).
        bytes: Vec<u8>,
    },
    /// The fetch asked for failed.
    FetchFailed {
        /// The path asked for.
        url_path: String,
        /// The file is not there (HTTP 403 or 404, or no such file).
        not_found: bool,
        /// What failed.
        detail: String,
    },
    /// Time passed.
    Tick,
}
