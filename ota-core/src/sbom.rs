//! Software bills of materials: references from packages and manifests, a minimal validator
//! for SPDX 2.3 JSON and CycloneDX 1.5 JSON, and the compliance-coverage figure.
//!
//! The validator checks what each specification requires (the document header, the identity
//! and hashes of every package or component, licence expressions), not every optional field.
//! Unknown fields are allowed: both formats are open.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Sha256Digest;
use crate::json::{Fault, ParseError, fault, field, index};
use crate::limits::Limits;
use crate::text::{ArtifactUri, RelativePath, Timestamp};

/// An SBOM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    #[serde(rename = "spdx-2.3")]
    Spdx23,
    /// CycloneDX 1.5, JSON.
    #[serde(rename = "cyclonedx-1.5")]
    CycloneDx15,
}

impl SbomFormat {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SbomFormat::Spdx23 => "spdx-2.3",
            SbomFormat::CycloneDx15 => "cyclonedx-1.5",
        }
    }
}

/// A package's reference to its SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomRef {
    /// Its format.
    pub format: SbomFormat,
    /// Where it lives.
    pub uri: ArtifactUri,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// A model manifest's reference to its SBOM, one of the model's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSbom {
    /// Its format.
    pub format: SbomFormat,
    /// Its path among the model's files.
    pub path: RelativePath,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// What a valid SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SbomSummary {
    /// Its format.
    pub format: SbomFormat,
    /// The document's name (SPDX `name`; CycloneDX `metadata.component.name`, if any).
    pub name: Option<String>,
    /// How many packages (SPDX) or components (CycloneDX) it lists.
    pub components: usize,
}

/// Validates an SBOM document of the given format.
pub fn validate(
    format: SbomFormat,
    bytes: &[u8],
    limits: &Limits,
) -> Result<SbomSummary, ParseError> {
    let what = format.as_str();
    let doc: Value = crate::json::from_slice(what, bytes, limits.max_document_bytes)?;
    let mut faults = Vec::new();
    let summary = match doc.as_object() {
        None => {
            fault(&mut faults, String::new(), "an SBOM is a JSON object");
            None
        }
        Some(obj) => Some(match format {
            SbomFormat::Spdx23 => spdx(obj, &mut faults),
            SbomFormat::CycloneDx15 => cyclonedx(obj, &mut faults),
        }),
    };
    match summary {
        Some(s) if faults.is_empty() => Ok(s),
        _ => Err(ParseError::Invalid { what, faults }),
    }
}

/// The share of packages that carry a valid SBOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Packages considered.
    pub total: usize,
    /// Packages that reference an SBOM whose bytes match the declared sha256 and validate.
    pub covered: usize,
}

impl Coverage {
    /// `covered / total` as a percentage (100 when there are no packages).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.covered as f64 * 100.0 / self.total as f64
        }
    }
}

/// Computes compliance coverage over packages: for each, its SBOM reference (a package's
/// [`sbom`](crate::package::Package::sbom) field) and the bytes of that SBOM if fetched. Each
/// document is validated within `limits`.
pub fn coverage<'a>(
    items: impl IntoIterator<Item = (Option<&'a SbomRef>, Option<&'a [u8]>)>,
    limits: &Limits,
) -> Coverage {
    let mut c = Coverage {
        total: 0,
        covered: 0,
    };
    for (sbom, doc) in items {
        c.total += 1;
        if let (Some(r), Some(bytes)) = (sbom, doc)
            && Sha256Digest::of(bytes) == r.sha256
            && validate(r.format, bytes, limits).is_ok()
        {
            c.covered += 1;
        }
    }
    c
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    faults: &mut Vec<Fault>,
) -> Option<&'a str> {
    match obj.get(key) {
        None => {
            fault(faults, field(path, key), "missing required field");
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => {
            fault(faults, field(path, key), "must not be empty");
            None
        }
        Some(_) => {
            fault(faults, field(path, key), "must be a string");
            None
        }
    }
}

fn expect_eq(obj: &Map<String, Value>, path: &str, key: &str, want: &str, faults: &mut Vec<Fault>) {
    if let Some(s) = str_field(obj, path, key, faults)
        && s != want
    {
        fault(
            faults,
            field(path, key),
            format!("must be {want:?}, found {s:?}"),
        );
    }
}

fn array<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    key: &str,
    required: bool,
    faults: &mut Vec<Fault>,
) -> &'a [Value] {
    match obj.get(key) {
        None if required => {
            fault(faults, field(path, key), "missing required field");
            &[]
        }
        None => &[],
        Some(Value::Array(a)) => a,
        Some(_) => {
            fault(faults, field(path, key), "must be an array");
            &[]
        }
    }
}

fn objects<'a>(
    items: &'a [Value],
    path: &str,
    faults: &mut Vec<Fault>,
) -> Vec<(String, &'a Map<String, Value>)> {
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        match v.as_object() {
            Some(o) => out.push((index(path, i), o)),
            None => fault(faults, index(path, i), "must be an object"),
        }
    }
    out
}

/// The expected hex length of a digest by algorithm name (SPDX and CycloneDX spellings).
fn hash_hex_len(alg: &str) -> Option<Option<usize>> {
    Some(match alg {
        "MD2" | "MD4" | "MD5" => Some(32),
        "SHA1" | "SHA-1" => Some(40),
        "SHA224" => Some(56),
        "SHA256" | "SHA-256" | "SHA3-256" | "BLAKE2b-256" => Some(64),
        "SHA384" | "SHA-384" | "SHA3-384" | "BLAKE2b-384" => Some(96),
        "SHA512" | "SHA-512" | "SHA3-512" | "BLAKE2b-512" => Some(128),
        "ADLER32" => Some(8),
        "BLAKE3" | "MD6" => None,
        _ => return None,
    })
}

fn check_hash(
    path: &str,
    alg: Option<&str>,
    value: Option<&str>,
    alg_key: &str,
    value_key: &str,
    faults: &mut Vec<Fault>,
) {
    let (Some(alg), Some(value)) = (alg, value) else {
        return;
    };
    match hash_hex_len(alg) {
        None => fault(
            faults,
            field(path, alg_key),
            format!("unknown hash algorithm {alg:?}"),
        ),
        Some(len) => {
            let hex_ok = value.bytes().all(|b| b.is_ascii_hexdigit());
            let len_ok = len.is_none_or(|l| value.len() == l);
            if !hex_ok || !len_ok || value.is_empty() {
                fault(
                    faults,
                    field(path, value_key),
                    match len {
                        Some(l) => format!("a {alg} digest is {l} hex characters"),
                        None => format!("a {alg} digest is hex"),
                    },
                );
            }
        }
    }
}

fn check_license_expr(path: String, s: &str, faults: &mut Vec<Fault>) {
    if matches!(s, "NONE" | "NOASSERTION") {
        return;
    }
    if let Err(e) = spdx::Expression::parse(s) {
        fault(
            faults,
            path,
            format!("{s:?} is not an SPDX license expression: {}", e.reason),
        );
    }
}

fn check_timestamp(path: String, s: &str, faults: &mut Vec<Fault>) {
    if s.parse::<Timestamp>().is_err() {
        fault(faults, path, format!("{s:?} is not an RFC 3339 timestamp"));
    }
}

fn spdx(doc: &Map<String, Value>, faults: &mut Vec<Fault>) -> SbomSummary {
    expect_eq(doc, "", "spdxVersion", "SPDX-2.3", faults);
    expect_eq(doc, "", "dataLicense", "CC0-1.0", faults);
    expect_eq(doc, "", "SPDXID", "SPDXRef-DOCUMENT", faults);
    let name = str_field(doc, "", "name", faults).map(str::to_string);
    if let Some(ns) = str_field(doc, "", "documentNamespace", faults)
        && (!ns.contains("://") || ns.contains('#'))
    {
        fault(
            faults,
            "documentNamespace".into(),
            "must be an absolute URI without a '#' part",
        );
    }
    match doc.get("creationInfo").and_then(Value::as_object) {
        None => fault(faults, "creationInfo".into(), "missing required object"),
        Some(ci) => {
            if let Some(t) = str_field(ci, "creationInfo", "created", faults) {
                check_timestamp("creationInfo.created".into(), t, faults);
            }
            let creators = array(ci, "creationInfo", "creators", true, faults);
            if creators.is_empty() && ci.contains_key("creators") {
                fault(
                    faults,
                    "creationInfo.creators".into(),
                    "at least one creator is required",
                );
            }
            for (i, c) in creators.iter().enumerate() {
                let ok = c.as_str().is_some_and(|s| {
                    ["Tool: ", "Organization: ", "Person: "]
                        .iter()
                        .any(|p| s.starts_with(p) && s.len() > p.len())
                });
                if !ok {
                    fault(
                        faults,
                        index("creationInfo.creators", i),
                        "a creator is \"Tool: ...\", \"Organization: ...\" or \"Person: ...\"",
                    );
                }
            }
        }
    }
    let valid_id = |s: &str| {
        s.strip_prefix("SPDXRef-").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        })
    };
    let mut ids = std::collections::BTreeSet::new();
    let packages = objects(
        array(doc, "", "packages", false, faults),
        "packages",
        faults,
    );
    for (p, pkg) in &packages {
        str_field(pkg, p, "name", faults);
        str_field(pkg, p, "downloadLocation", faults);
        if let Some(id) = str_field(pkg, p, "SPDXID", faults) {
            if !valid_id(id) {
                fault(
                    faults,
                    field(p, "SPDXID"),
                    format!("{id:?} is not SPDXRef-[A-Za-z0-9.-]+"),
                );
            } else if !ids.insert(id.to_string()) {
                fault(
                    faults,
                    field(p, "SPDXID"),
                    format!("duplicate SPDXID {id:?}"),
                );
            }
        }
        for key in ["licenseConcluded", "licenseDeclared"] {
            if let Some(v) = pkg.get(key) {
                match v.as_str() {
                    Some(s) => check_license_expr(field(p, key), s, faults),
                    None => fault(faults, field(p, key), "must be a string"),
                }
            }
        }
        let sums = field(p, "checksums");
        for (c, sum) in objects(array(pkg, p, "checksums", false, faults), &sums, faults) {
            let alg = str_field(sum, &c, "algorithm", faults);
            let val = str_field(sum, &c, "checksumValue", faults);
            check_hash(&c, alg, val, "algorithm", "checksumValue", faults);
        }
    }
    for (p, file) in objects(array(doc, "", "files", false, faults), "files", faults) {
        str_field(file, &p, "fileName", faults);
        if let Some(id) = str_field(file, &p, "SPDXID", faults)
            && !valid_id(id)
        {
            fault(
                faults,
                field(&p, "SPDXID"),
                format!("{id:?} is not SPDXRef-[A-Za-z0-9.-]+"),
            );
        }
        let sums = field(&p, "checksums");
        let list = objects(array(file, &p, "checksums", true, faults), &sums, faults);
        let mut has_sha1 = false;
        for (c, sum) in list {
            let alg = str_field(sum, &c, "algorithm", faults);
            has_sha1 |= alg == Some("SHA1");
            let val = str_field(sum, &c, "checksumValue", faults);
            check_hash(&c, alg, val, "algorithm", "checksumValue", faults);
        }
        if !has_sha1 && file.contains_key("checksums") {
            fault(faults, sums, "a file needs a SHA1 checksum");
        }
    }
    for (p, rel) in objects(
        array(doc, "", "relationships", false, faults),
        "relationships",
        faults,
    ) {
        for key in ["spdxElementId", "relationshipType", "relatedSpdxElement"] {
            str_field(rel, &p, key, faults);
        }
    }
    SbomSummary {
        format: SbomFormat::Spdx23,
        name,
        components: packages.len(),
    }
}

const CDX_TYPES: &[&str] = &[
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
];

fn cyclonedx(doc: &Map<String, Value>, faults: &mut Vec<Fault>) -> SbomSummary {
    expect_eq(doc, "", "bomFormat", "CycloneDX", faults);
    expect_eq(doc, "", "specVersion", "1.5", faults);
    if let Some(v) = doc.get("serialNumber") {
        let ok = v.as_str().is_some_and(|s| {
            s.strip_prefix("urn:uuid:").is_some_and(|u| {
                u.len() == 36
                    && u.char_indices().all(|(i, c)| {
                        if matches!(i, 8 | 13 | 18 | 23) {
                            c == '-'
                        } else {
                            c.is_ascii_hexdigit()
                        }
                    })
            })
        });
        if !ok {
            fault(
                faults,
                "serialNumber".into(),
                "must be urn:uuid:<RFC 4122 UUID>",
            );
        }
    }
    if let Some(v) = doc.get("version")
        && v.as_u64().is_none_or(|n| n == 0)
    {
        fault(faults, "version".into(), "must be an integer of at least 1");
    }
    let mut name = None;
    if let Some(meta) = doc.get("metadata") {
        match meta.as_object() {
            None => fault(faults, "metadata".into(), "must be an object"),
            Some(m) => {
                if let Some(t) = m.get("timestamp") {
                    match t.as_str() {
                        Some(s) => check_timestamp("metadata.timestamp".into(), s, faults),
                        None => fault(faults, "metadata.timestamp".into(), "must be a string"),
                    }
                }
                if let Some(c) = m.get("component").and_then(Value::as_object) {
                    component(c, "metadata.component", faults);
                    name = c.get("name").and_then(Value::as_str).map(str::to_string);
                }
            }
        }
    }
    let list = objects(
        array(doc, "", "components", false, faults),
        "components",
        faults,
    );
    let mut refs = std::collections::BTreeSet::new();
    for (p, c) in &list {
        component(c, p, faults);
        if let Some(r) = c.get("bom-ref").and_then(Value::as_str)
            && !refs.insert(r.to_string())
        {
            fault(
                faults,
                field(p, "bom-ref"),
                format!("duplicate bom-ref {r:?}"),
            );
        }
    }
    SbomSummary {
        format: SbomFormat::CycloneDx15,
        name,
        components: list.len(),
    }
}

fn component(c: &Map<String, Value>, p: &str, faults: &mut Vec<Fault>) {
    if let Some(t) = str_field(c, p, "type", faults)
        && !CDX_TYPES.contains(&t)
    {
        fault(
            faults,
            field(p, "type"),
            format!("unknown component type {t:?}"),
        );
    }
    str_field(c, p, "name", faults);
    let hp = field(p, "hashes");
    for (h, hash) in objects(array(c, p, "hashes", false, faults), &hp, faults) {
        let alg = str_field(hash, &h, "alg", faults);
        let content = str_field(hash, &h, "content", faults);
        check_hash(&h, alg, content, "alg", "content", faults);
    }
    let lp = field(p, "licenses");
    for (l, lic) in objects(array(c, p, "licenses", false, faults), &lp, faults) {
        if let Some(e) = lic.get("expression") {
            match e.as_str() {
                Some(s) => check_license_expr(field(&l, "expression"), s, faults),
                None => fault(faults, field(&l, "expression"), "must be a string"),
            }
        } else if let Some(inner) = lic.get("license").and_then(Value::as_object) {
            let lp = field(&l, "license");
            match (inner.get("id"), inner.get("name")) {
                (Some(Value::String(id)), _) => {
                    if spdx::license_id(id).is_none() {
                        fault(
                            faults,
                            field(&lp, "id"),
                            format!("{id:?} is not an SPDX license id"),
                        );
                    }
                }
                (None, Some(Value::String(n))) if !n.is_empty() => {}
                _ => fault(faults, lp, "a license needs an SPDX id or a name"),
            }
        } else {
            fault(
                faults,
                l,
                "a license entry has \"license\" or \"expression\"",
            );
        }
    }
}
