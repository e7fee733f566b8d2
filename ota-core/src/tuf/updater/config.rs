//! The updater's limits.

/// The updater's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The most root versions one refresh walks through. Default 256.
    pub max_root_rotations: u64,
    /// The most targets roles one search visits. Default 32.
    pub max_delegations: usize,
    /// The largest root. Default 512 000 bytes.
    pub root_max_length: u64,
    /// The largest timestamp. Default 16 384 bytes.
    pub timestamp_max_length: u64,
    /// The largest snapshot when the timestamp gives no length. Default 2 000 000 bytes.
    pub snapshot_max_length: u64,
    /// The largest targets role when the snapshot gives no length. Default 5 000 000 bytes.
    pub targets_max_length: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
        }
    }
}
