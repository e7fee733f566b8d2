//! The package a publisher describes: the artifact plus what a control plane needs to verify
//! it, decide compatibility and present it to devices (the fields of the OTA API).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chunk::{CHUNK_SIZE, ChunkTable};
use crate::digest::Sha256Digest;
use crate::json::{self, Fault, ParseError, Validate, duplicates, fault, field};
use crate::limits::Limits;
use crate::manifest::ModelManifest;
use crate::name::Name;
use crate::probe::ProbeSpec;
use crate::sbom::SbomRef;
use crate::seal::{SealInfo, Sealed};
use crate::time::{Timestamp, UnixMs};
use crate::version::{Version, serde_via_str};

pub use crate::channel::Channel;
pub use crate::text::{ArtifactUri, UriError};

/// A package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// What the package carries.
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// The package's name; the device keeps one installed version per name.
    pub name: Name,
    /// The semantic version of the build.
    pub version: Version,
    /// Where the artifact lives (`s3://bucket/key`, `https://cdn/key`).
    pub artifact_uri: ArtifactUri,
    /// The declared SHA-256 of the artifact, verified before the package is usable.
    pub sha256: Sha256Digest,
    /// The artifact's size, so devices can plan the download (more than zero).
    pub size_bytes: u64,
    /// Which devices the build may target.
    #[serde(default)]
    pub compatibility: Compatibility,
    /// A human-readable change summary.
    #[serde(default)]
    pub release_notes: String,
    /// The release channel (default `stable`).
    #[serde(default)]
    pub channel: Channel,
    /// Where the artifact came from (default: a direct upload).
    #[serde(default)]
    pub source: Source,
    /// The software bill of materials, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomRef>,
    /// The model manifest: present exactly when `type` is `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ModelManifest>,
    /// The chunk table of the artifact (required to sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ChunkTable>,
    /// How the artifact is sealed (required to sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealInfo>,
    /// A rollback the publisher signed explicitly: the only package a device accepts
    /// although it is older than the highest version it has installed, and only from the
    /// version it names, until it expires.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rollback_field"
    )]
    pub rollback: Option<Rollback>,
    /// The health probe the publisher signed for this build: a device runs it in preference
    /// to the (unsigned) assignment's, if its own allowlist lets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,
}

/// What a signed rollback is bound to, so that a replayed rollback package is no permanent
/// downgrade pass: a device downgrades with it only while it runs `from`, before `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version this rollback replaces (the release being rolled back).
    pub from: Version,
    /// When it stops being valid (RFC 3339, `2027-01-31T00:00:00Z`).
    pub expires: Timestamp,
}

impl Rollback {
    /// Whether it has expired at `now` (expired from the instant it names).
    pub fn expired(&self, now: UnixMs) -> bool {
        now >= self.expires.at()
    }
}

/// Reads `rollback`: an object, or `false`/`null` for none. The `true` of packages signed
/// before rollbacks were bound is refused: it would be a downgrade pass forever.
fn rollback_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Rollback>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Bool(false)) => Ok(None),
        Some(serde_json::Value::Bool(true)) => Err(serde::de::Error::custom(
            "an unbound rollback (true) is a downgrade pass forever: sign it as {\"from\": the version it replaces, \"expires\": an RFC 3339 time}",
        )),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl Package {
    /// Parses and validates a package with [`Limits::DEFAULT`]; see [`Self::from_json_with_limits`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_json_with_limits(bytes, &Limits::DEFAULT)
    }

    /// Parses and validates a package (bounded by [`Limits::max_package_bytes`], since a
    /// statement carries its chunk table).
    pub fn from_json_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("package", bytes, limits.max_package_bytes)
    }

    /// Sets the artifact fields from what sealing produced: `sha256`, `size_bytes`, the chunk
    /// table and the seal information.
    pub fn set_sealed(&mut self, sealed: &Sealed) {
        self.sha256 = sealed.sha256;
        self.size_bytes = sealed.size_bytes;
        self.chunks = Some(sealed.chunks.clone());
        self.seal = Some(sealed.info());
    }

    /// The package as compact JSON; [`Package::from_json`] reads it back unchanged.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

/// What a package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PackageType {
    /// Firmware.
    Fw,
    /// Software.
    Sw,
    /// An ML model, described by a [`ModelManifest`].
    Model,
}

impl PackageType {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Fw => "fw",
            PackageType::Sw => "sw",
            PackageType::Model => "model",
        }
    }
}

/// Which devices a build may target. Every list that is not empty must contain the device's
/// value; `min_version`/`max_version` bound the version of this package the device has
/// installed now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compatibility {
    /// The device types (`temp-sensor`); empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_types: Vec<Name>,
    /// The hardware profiles; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware_profiles: Vec<Name>,
    /// The oldest installed version this build upgrades from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<Version>,
    /// The newest installed version this build upgrades from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<Version>,
}

/// Where an artifact came from. In JSON, `{"kind": "upload"}` or
/// `{"kind": "registry", "reference": "name@sha256:..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "SourceRepr")]
#[non_exhaustive]
pub enum Source {
    /// Pushed directly to the platform.
    #[default]
    Upload,
    /// Resolved from a registry the publisher already uses, pinned to an immutable digest.
    Registry {
        /// The reference, `name[:tag]@sha256:<digest>`.
        reference: PinnedReference,
    },
}

/// The JSON form of [`Source`], read as a plain struct so that errors name
/// `source.reference`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRepr {
    kind: SourceKind,
    #[serde(default)]
    reference: Option<PinnedReference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SourceKind {
    Upload,
    Registry,
}

impl TryFrom<SourceRepr> for Source {
    type Error = String;

    fn try_from(r: SourceRepr) -> Result<Self, Self::Error> {
        match (r.kind, r.reference) {
            (SourceKind::Upload, None) => Ok(Source::Upload),
            (SourceKind::Upload, Some(_)) => Err("an upload has no registry reference".into()),
            (SourceKind::Registry, Some(reference)) => Ok(Source::Registry { reference }),
            (SourceKind::Registry, None) => {
                Err("a registry source needs its reference, pinned as name@sha256:<64 hex>".into())
            }
        }
    }
}

/// A registry reference pinned to an immutable digest: `name[:tag]@sha256:<64 hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedReference {
    text: String,
    digest: Sha256Digest,
}

/// A registry reference that is not pinned to a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The reference has a tag or nothing, but no digest.
    #[error(
        "registry reference {found:?} is not pinned: tags like :latest move, so pin the digest (name@sha256:<64 hex>)"
    )]
    NotPinned {
        /// The text.
        found: String,
    },
    /// The reference is malformed.
    #[error("invalid registry reference {found:?}: {why}")]
    Invalid {
        /// The text.
        found: String,
        /// What is wrong.
        why: String,
    },
}

impl PinnedReference {
    /// The digest the reference is pinned to.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    /// The repository name, without tag and digest.
    pub fn repository(&self) -> &str {
        let name = self.text.split('@').next().unwrap_or_default();
        match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => &name[..i],
            _ => name,
        }
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PinnedReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| ReferenceError::Invalid {
            found: s.to_string(),
            why: why.to_string(),
        };
        let Some((name, digest)) = s.split_once('@') else {
            return Err(ReferenceError::NotPinned {
                found: s.to_string(),
            });
        };
        if name.is_empty() {
            return Err(invalid("the repository name is empty"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':')))
        {
            return Err(invalid(&format!(
                "character {bad:?} is not allowed in a repository name"
            )));
        }
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return Err(invalid("the digest must be sha256:<64 lowercase hex>"));
        };
        let digest = hex
            .parse::<Sha256Digest>()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(PinnedReference {
            text: s.to_string(),
            digest,
        })
    }
}

impl fmt::Display for PinnedReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PinnedReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinnedReference({:?})", self.text)
    }
}

serde_via_str!(PinnedReference);

impl Validate for Package {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        if self.size_bytes == 0 {
            fault(
                faults,
                field(path, "size_bytes"),
                "the artifact size must be more than 0",
            );
        }
        let c = field(path, "compatibility");
        duplicates(
            faults,
            &field(&c, "device_types"),
            None,
            &self.compatibility.device_types,
        );
        duplicates(
            faults,
            &field(&c, "hardware_profiles"),
            None,
            &self.compatibility.hardware_profiles,
        );
        if let (Some(min), Some(max)) = (
            &self.compatibility.min_version,
            &self.compatibility.max_version,
        ) && min > max
        {
            fault(
                faults,
                field(&c, "max_version"),
                format!("empty version range: min_version {min} is above max_version {max}"),
            );
        }
        if let Some(chunks) = &self.chunks {
            let c = field(path, "chunks");
            if chunks.chunk_size != CHUNK_SIZE {
                fault(
                    faults,
                    field(&c, "chunk_size"),
                    format!(
                        "the chunk size is {CHUNK_SIZE}, found {}",
                        chunks.chunk_size
                    ),
                );
            }
            let expected = ChunkTable::count_for(self.size_bytes);
            if chunks.len() != expected {
                fault(
                    faults,
                    field(&c, "sha256"),
                    format!(
                        "an artifact of {} bytes has {expected} chunks, the table lists {}",
                        self.size_bytes,
                        chunks.len()
                    ),
                );
            }
        }
        if let Some(probe) = &self.probe
            && let Err(e) = probe.check_form()
        {
            fault(faults, field(path, "probe"), e.to_string());
        }
        if let Some(r) = &self.rollback
            && r.from <= self.version
        {
            fault(
                faults,
                field(&field(path, "rollback"), "from"),
                format!(
                    "a rollback replaces a newer version: from {} is not above {}",
                    r.from, self.version
                ),
            );
        }
        if self.seal.is_some()
            && let Some(why) = crate::seal::size_fault(self.size_bytes)
        {
            fault(faults, field(path, "size_bytes"), why);
        }
        if let Some(seal) = &self.seal
            && let Some(segments) = &seal.segments
            && let Some((member, why)) = segments.fault(seal.plaintext_size, self.size_bytes)
        {
            let at = field(&field(&field(path, "seal"), "segments"), member);
            fault(faults, at, why);
        }
        let m = field(path, "manifest");
        match (self.kind, &self.manifest) {
            (PackageType::Model, None) => {
                fault(faults, m, "a model package needs its manifest");
            }
            (PackageType::Model, Some(manifest)) => {
                manifest.validate_at(&m, faults);
                if manifest.name != self.name {
                    fault(
                        faults,
                        field(&m, "name"),
                        format!(
                            "the manifest names {}, the package {}",
                            manifest.name, self.name
                        ),
                    );
                }
                if manifest.version != self.version {
                    fault(
                        faults,
                        field(&m, "version"),
                        format!(
                            "the manifest has version {}, the package {}",
                            manifest.version, self.version
                        ),
                    );
                }
            }
            (kind, Some(_)) => {
                fault(
                    faults,
                    m,
                    format!(
                        "only a model package has a manifest, this is {}",
                        kind.as_str()
                    ),
                );
            }
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn pinned_references() {
        let r: PinnedReference = format!("ghcr.io/acme/yolo:2.1.0@sha256:{D}")
            .parse()
            .unwrap();
        assert_eq!(r.repository(), "ghcr.io/acme/yolo");
        assert_eq!(r.digest().to_hex(), D);
        let r: PinnedReference = format!("localhost:5000/yolo@sha256:{D}").parse().unwrap();
        assert_eq!(r.repository(), "localhost:5000/yolo");
        for unpinned in ["ghcr.io/acme/yolo:latest", "yolo"] {
            let e = unpinned.parse::<PinnedReference>().unwrap_err();
            assert!(e.to_string().contains("pin the digest"), "{e}");
        }
        for bad in [
            format!("yolo@sha256:{}", &D[1..]),
            format!("@sha256:{D}"),
            format!("yolo@md5:{D}"),
        ] {
            assert!(
                matches!(
                    bad.parse::<PinnedReference>(),
                    Err(ReferenceError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn seed_004_package_parses_without_its_signature_field() {
        // The seed's example, with `signature` moved into the DSSE envelope, a name added, and
        // `device_type` written as the list `device_types`.
        let json = format!(
            r#"{{"type":"fw","name":"temp-sensor-fw","version":"2.0.0",
            "artifact_uri":"s3://ota-artifacts/temp-sensor/fw-2.0.0.bin","sha256":"{D}",
            "size_bytes":524288,"compatibility":{{"device_types":["temp-sensor"],"min_version":"1.0.0"}},
            "release_notes":"Fix sensor drift above 60C; reduce idle current."}}"#
        );
        let p = Package::from_json(json.as_bytes()).unwrap();
        assert_eq!(p.kind, PackageType::Fw);
        assert_eq!(p.channel, Channel::Stable);
        assert_eq!(p.source, Source::Upload);
        assert_eq!(Package::from_json(p.to_json().as_bytes()).unwrap(), p);
        let with_sig = json.replacen(
            "\"size_bytes\"",
            "\"signature\":\"MEUCIQD\",\"size_bytes\"",
            1,
        );
        let e = Package::from_json(with_sig.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("unknown field `signature`"), "{e}");
    }

    #[test]
    fn segments_that_cannot_be_the_artifacts_are_refused_naming_the_member() {
        let with = |segments: &str| {
            format!(
                r#"{{"type":"fw","name":"fw","version":"1.5.0","artifact_uri":"https://cdn/fw",
                "sha256":"{D}","size_bytes":3145760,"seal":{{"cipher":"aes-256-cbc",
                "compression":"gzip","plaintext_size":3000000,"plaintext_sha256":"{D}",
                "segments":{segments}}}}}"#
            )
        };
        let p = Package::from_json(
            with(r#"{"plaintext_size":1048576,"offsets":[1000000,2000000]}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            p.seal.as_ref().unwrap().segments.as_ref().unwrap().offsets,
            [1_000_000, 2_000_000]
        );
        assert_eq!(Package::from_json(p.to_json().as_bytes()).unwrap(), p);
        for (bad, at) in [
            (
                r#"{"plaintext_size":1048576,"offsets":[1000000]}"#,
                "seal.segments.offsets",
            ),
            (
                r#"{"plaintext_size":1048576,"offsets":[1000000,900000]}"#,
                "offsets[1]",
            ),
            (
                r#"{"plaintext_size":1048576,"offsets":[1000000,4000000]}"#,
                "offsets[1]",
            ),
            (
                r#"{"plaintext_size":5,"offsets":[]}"#,
                "seal.segments.plaintext_size",
            ),
            (
                r#"{"plaintext_size":1048576,"offsets":[1,2],"x":1}"#,
                "unknown field `x`",
            ),
        ] {
            let e = Package::from_json(with(bad).as_bytes()).unwrap_err();
            assert!(e.to_string().contains(at), "{bad}: {e}");
        }
    }

    #[test]
    fn an_unbound_rollback_is_refused_and_a_bound_one_names_what_it_replaces() {
        let base = format!(
            r#"{{"type":"fw","name":"fw","version":"1.5.0","artifact_uri":"https://cdn/fw",
            "sha256":"{D}","size_bytes":10"#
        );
        let with = |extra: &str| format!("{base},{extra}}}");
        let e = Package::from_json(with(r#""rollback":true"#).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("rollback"), "{e}");
        assert!(e.to_string().contains("downgrade pass forever"), "{e}");
        let p = Package::from_json(with(r#""rollback":false"#).as_bytes()).unwrap();
        assert_eq!(p.rollback, None);
        let p = Package::from_json(
            with(r#""rollback":{"from":"2.0.0","expires":"2027-01-31T00:00:00Z"}"#).as_bytes(),
        )
        .unwrap();
        let r = p.rollback.clone().unwrap();
        assert_eq!(r.from.to_string(), "2.0.0");
        assert!(!r.expired(UnixMs(r.expires.at().get() - 1)));
        assert!(r.expired(r.expires.at()));
        assert_eq!(Package::from_json(p.to_json().as_bytes()).unwrap(), p);
        for (bad, why) in [
            (
                r#""rollback":{"from":"1.5.0","expires":"2027-01-31T00:00:00Z"}"#,
                "rollback.from",
            ),
            (r#""rollback":{"from":"2.0.0"}"#, "expires"),
            (
                r#""rollback":{"from":"2.0.0","expires":"next week"}"#,
                "RFC 3339",
            ),
            (
                r#""probe":{"kind":"exec","path":"/usr/bin/env","args":["sh"],"timeout_ms":5}"#,
                "interpreter",
            ),
            (r#""probe":{"kind":"file","path":"ready"}"#, "probe"),
        ] {
            let e = Package::from_json(with(bad).as_bytes()).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn source_kinds() {
        let up: Source = serde_json::from_str(r#"{"kind":"upload"}"#).unwrap();
        assert_eq!(up, Source::Upload);
        let reg: Source = serde_json::from_str(&format!(
            r#"{{"kind":"registry","reference":"a/b@sha256:{D}"}}"#
        ))
        .unwrap();
        assert!(matches!(reg, Source::Registry { .. }));
        assert!(serde_json::from_str::<Source>(r#"{"kind":"upload","x":1}"#).is_err());
        let e = serde_json::from_str::<Source>(r#"{"kind":"registry","reference":"a/b:latest"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("pin the digest"), "{e}");
    }
}
