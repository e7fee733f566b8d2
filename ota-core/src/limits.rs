//! Every bound the parsers and verifiers enforce, in one place.
//!
//! Two kinds of bound live here:
//!
//! - **Resource bounds**, the fields of [`Limits`]: how large a document, a statement or a
//!   fleet may be. The defaults ([`Limits::DEFAULT`]) are secure for the documents this crate
//!   reads; a caller that needs more raises a bound explicitly and passes its `Limits` to the
//!   `*_with_limits` parsers (the plain `from_json` entry points use [`Limits::DEFAULT`]).
//! - **Format bounds**, the associated constants (`Limits::MAX_*`): part of what makes a name,
//!   a path or a URI valid. They are the same for every reader, so that a document one reader
//!   accepts is accepted by all; they are constants, not fields.
//!
//! Every default is written in the documentation of its field or constant.

/// Bounds on what the library accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest JSON document (manifest, profile, registration record, report, rollout
    /// configuration) accepted, in bytes. Default: 1 MiB.
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
    /// The default limits, as documented on each field. The type is `#[non_exhaustive]`: to
    /// raise a bound, copy this and set the field.
    pub const DEFAULT: Limits = Limits {
        max_document_bytes: 1 << 20,
        max_package_bytes: 16 << 20,
        max_fleet_bytes: 2 << 30,
        max_tuf_metadata_bytes: 16 << 20,
    };

    /// The longest [`Name`](crate::name::Name), in characters (format bound): 128.
    pub const MAX_NAME_CHARS: usize = 128;

    /// The longest [`RelativePath`](crate::text::RelativePath) inside an artifact, in bytes
    /// (format bound): 4096.
    pub const MAX_PATH_BYTES: usize = 4096;

    /// The longest [`ArtifactUri`](crate::text::ArtifactUri), in bytes (format bound): 2048.
    pub const MAX_URI_BYTES: usize = 2048;

    /// Room for what wraps an envelope in a larger document (an assignment's other fields,
    /// an agent record's state): 64 KiB.
    const WRAPPER_BYTES: usize = 64 << 10;
}

impl Limits {
    /// The largest DSSE envelope accepted: a base64 package statement and its signatures,
    /// `max_package_bytes * 4 / 3 + 64 KiB`.
    pub const fn max_envelope_bytes(&self) -> usize {
        self.max_package_bytes / 3 * 4 + Self::WRAPPER_BYTES
    }

    /// The largest document that carries an envelope and a little more (a device assignment,
    /// an agent's persisted record): [`Limits::max_envelope_bytes`] plus 64 KiB.
    pub const fn max_enveloped_document_bytes(&self) -> usize {
        self.max_envelope_bytes() + Self::WRAPPER_BYTES
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_bound_follows_the_package_bound() {
        let mut l = Limits::DEFAULT;
        l.max_package_bytes = 3 << 20;
        assert_eq!(l.max_envelope_bytes(), (4 << 20) + (64 << 10));
        assert_eq!(l.max_enveloped_document_bytes(), (4 << 20) + (128 << 10));
        assert_eq!(Limits::default(), Limits::DEFAULT);
    }
}
