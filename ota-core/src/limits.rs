//! Every bound the parsers and verifiers enforce, in one place.
//!
//! The defaults are secure for the documents this crate reads; a caller that needs more
//! raises a bound explicitly. Every default is written in the field's documentation.

/// Bounds on what the library accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest JSON document (manifest, package, profile, envelope) accepted, in bytes.
    /// Default: 1 MiB.
    pub max_document_bytes: usize,
    /// The largest package statement accepted, in bytes: it carries 67 bytes of chunk table
    /// per 64 KiB of artifact, so 16 MiB covers artifacts up to about 15 GiB. An envelope may
    /// be 4/3 of this (base64) plus 64 KiB. Default: 16 MiB.
    pub max_package_bytes: usize,
    /// The largest fleet document (a JSON array of device profiles) accepted, in bytes.
    /// Default: 2 GiB.
    pub max_fleet_bytes: usize,
    /// The largest TUF root or targets metadata [`crate::tuf::verify_target`] reads, in bytes.
    /// Default: 16 MiB (as tough's default for targets).
    pub max_tuf_metadata_bytes: usize,
}

impl Limits {
    /// The default limits, as documented on each field.
    pub const DEFAULT: Limits = Limits {
        max_document_bytes: 1 << 20,
        max_package_bytes: 16 << 20,
        max_fleet_bytes: 2 << 30,
        max_tuf_metadata_bytes: 16 << 20,
    };
}

impl Limits {
    /// The largest DSSE envelope accepted: a base64 package statement and its signatures.
    pub fn max_envelope_bytes(&self) -> usize {
        self.max_package_bytes / 3 * 4 + (64 << 10)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
