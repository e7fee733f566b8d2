//! The registration record of publish_artifact.py: what a publish script sends to the admin API after
//! uploading a sealed artifact, and what a loader needs to fetch and open it.
//!
//! The object key is `{dev_stage}/{resource_name}-{architecture}-{version}.enc`. The
//! `cdn_url` is `{CDN_PUBLIC_BASE_URL}/{object_key}` when a CDN base is set, otherwise
//! `{S3_ENDPOINT}/{S3_BUCKET}/{object_key}` (trailing slashes of the bases are dropped).
//! `sha256` and `size_bytes` are those of the whole ciphertext file, IV included;
//! `encryption_key` is the 64-hex AES key.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::json::{self, Fault, ParseError, Validate, fault, field};
use crate::limits::Limits;
use crate::name::Name;
use crate::seal::{Expected, SealKey, Sealed};

/// The registration record (publish_artifact.py's admin API body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The resource's name (`my_model`).
    pub resource_name: Name,
    /// The stage (`dev`, `prod`).
    pub dev_stage: Name,
    /// The architecture (`arm64`).
    pub architecture: Name,
    /// The version, free-form (`2026-04-15`).
    pub version: Name,
    /// Where devices download the artifact.
    pub cdn_url: String,
    /// The SHA-256 of the ciphertext file, IV included.
    pub sha256: Sha256Digest,
    /// The AES-256 key, 64 lowercase hex characters.
    pub encryption_key: SealKey,
    /// The size of the ciphertext file, IV included.
    pub size_bytes: u64,
}

/// Where sealed artifacts are stored (publish_artifact.py's `S3_ENDPOINT`, `S3_BUCKET` and
/// `CDN_PUBLIC_BASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Store {
    /// The S3-compatible endpoint URL.
    pub s3_endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The public CDN base, if any.
    pub cdn_base: Option<String>,
}

impl Store {
    /// The public URL of an object.
    pub fn cdn_url(&self, object_key: &str) -> String {
        match self.cdn_base.as_deref().filter(|b| !b.is_empty()) {
            Some(base) => format!("{}/{object_key}", base.trim_end_matches('/')),
            None => format!(
                "{}/{}/{object_key}",
                self.s3_endpoint.trim_end_matches('/'),
                self.bucket.trim_matches('/')
            ),
        }
    }
}

/// The object key `{dev_stage}/{resource_name}-{architecture}-{version}.enc`.
pub fn object_key(
    dev_stage: &Name,
    resource_name: &Name,
    architecture: &Name,
    version: &Name,
) -> String {
    format!("{dev_stage}/{resource_name}-{architecture}-{version}.enc")
}

impl Registration {
    /// The record for an artifact sealed with `key` and stored in `store`.
    pub fn new(
        resource_name: Name,
        dev_stage: Name,
        architecture: Name,
        version: Name,
        sealed: &Sealed,
        key: &SealKey,
        store: &Store,
    ) -> Self {
        let key_path = object_key(&dev_stage, &resource_name, &architecture, &version);
        Registration {
            cdn_url: store.cdn_url(&key_path),
            resource_name,
            dev_stage,
            architecture,
            version,
            sha256: sealed.sha256,
            encryption_key: key.clone(),
            size_bytes: sealed.size_bytes,
        }
    }

    /// The object key of the artifact.
    pub fn object_key(&self) -> String {
        object_key(
            &self.dev_stage,
            &self.resource_name,
            &self.architecture,
            &self.version,
        )
    }

    /// Parses and validates a record with [`Limits::DEFAULT`]; see [`Self::from_json_with_limits`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_json_with_limits(bytes, &Limits::DEFAULT)
    }

    /// Parses and validates a record (bounded by [`Limits::max_document_bytes`]).
    pub fn from_json_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("registration", bytes, limits.max_document_bytes)
    }

    /// The record as JSON (it contains the key: treat it as a secret).
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// What the artifact must be to open it: only its size and digest are known, so the
    /// plaintext is bounded by `max_plaintext`.
    pub fn expected(&self, max_plaintext: u64) -> Expected {
        Expected {
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            plaintext_size: None,
            plaintext_sha256: None,
            max_plaintext,
            segments: None,
        }
    }
}

impl Validate for Registration {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        if self.cdn_url.trim().is_empty() {
            fault(faults, field(path, "cdn_url"), "must not be empty");
        }
        if let Some(why) = crate::seal::size_fault(self.size_bytes) {
            fault(faults, field(path, "size_bytes"), why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn object_key_and_cdn_url_follow_seed_002() {
        let key = object_key(&n("dev"), &n("my_model"), &n("arm64"), &n("2026-04-15"));
        assert_eq!(key, "dev/my_model-arm64-2026-04-15.enc");
        let mut store = Store {
            s3_endpoint: "https://s3.example.com/".into(),
            bucket: "artifacts".into(),
            cdn_base: None,
        };
        assert_eq!(
            store.cdn_url(&key),
            "https://s3.example.com/artifacts/dev/my_model-arm64-2026-04-15.enc"
        );
        store.cdn_base = Some("https://cdn.example.com/".into());
        assert_eq!(
            store.cdn_url(&key),
            "https://cdn.example.com/dev/my_model-arm64-2026-04-15.enc"
        );
        store.cdn_base = Some(String::new());
        assert!(store.cdn_url(&key).starts_with("https://s3.example.com/"));
    }

    #[test]
    fn records_round_trip_and_name_their_fields() {
        let (_, sealed) =
            crate::seal::seal_bytes(&SealKey::from_bytes([1; 32]), [2; 16], b"model").unwrap();
        let store = Store {
            s3_endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            cdn_base: None,
        };
        let r = Registration::new(
            n("m"),
            n("dev"),
            n("arm64"),
            n("1"),
            &sealed,
            &SealKey::from_bytes([1; 32]),
            &store,
        );
        let json = r.to_json();
        assert!(json.contains(&"01".repeat(32)));
        assert_eq!(Registration::from_json(json.as_bytes()).unwrap(), r);
        let bad = json.replace(&"01".repeat(32), "zz");
        let e = Registration::from_json(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("encryption_key"), "{e}");
        assert!(
            !format!("{r:?}").contains(&"01".repeat(32)),
            "the key leaks through Debug"
        );
    }
}
