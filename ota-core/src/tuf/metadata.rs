//! The four top-level roles and delegated targets roles, read from their JSON, and the check
//! of a role's signatures: its threshold of valid signatures by distinct keys its delegator
//! lists for it, over the canonical JSON of `signed`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use super::envelope::{Envelope, canonical, open};
use super::error::UpdateError;
use super::hashes::Hashes;
use super::keys::Key;
use super::paths;
use crate::UnixMs;

fn invalid(role: &str, field: &str, detail: impl Into<String>) -> UpdateError {
    UpdateError::Invalid {
        role: role.into(),
        field: field.into(),
        detail: detail.into(),
    }
}

/// Which keys a role trusts and how many must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    /// The key ids.
    pub keyids: Vec<String>,
    /// The threshold (at least 1).
    pub threshold: u64,
}

/// The keys by id, unreadable ones kept as `None` (their signatures never count).
pub type KeyRing = BTreeMap<String, Option<Key>>;

/// Checks `env`'s signatures for `role` against `keys`; returns the key ids whose signatures
/// are valid.
pub fn verify(
    role: &str,
    env: &Envelope,
    ring: &KeyRing,
    keys: &RoleKeys,
) -> Result<Vec<String>, UpdateError> {
    let mut valid = Vec::new();
    // The keys that signed: one key listed under two ids counts once.
    let mut signed_by: Vec<&Key> = Vec::new();
    for id in &keys.keyids {
        if valid.contains(id) {
            continue;
        }
        let Some(Some(key)) = ring.get(id) else {
            continue;
        };
        if signed_by.iter().any(|k| k.is(key)) {
            continue;
        }
        let Some((_, sig)) = env.signatures.iter().find(|(k, _)| k == id) else {
            continue;
        };
        if key.verify(&env.canonical, sig) {
            valid.push(id.clone());
            signed_by.push(key);
        }
    }
    if (valid.len() as u64) < keys.threshold {
        let signers: Vec<&str> = env.signatures.iter().map(|(k, _)| k.as_str()).collect();
        if valid.is_empty()
            && !signers.is_empty()
            && signers.iter().all(|s| !keys.keyids.iter().any(|k| k == s))
        {
            return Err(UpdateError::UnknownKey {
                role: role.into(),
                keyids: signers.join(", "),
            });
        }
        return Err(UpdateError::ThresholdNotMet {
            role: role.into(),
            valid: valid.len(),
            threshold: keys.threshold,
        });
    }
    Ok(valid)
}

/// The raw Ed25519 keys among `ids` in `ring`.
pub fn ed25519_of(ring: &KeyRing, ids: &[String]) -> Vec<[u8; 32]> {
    ids.iter()
        .filter_map(|id| ring.get(id).and_then(Option::as_ref).and_then(Key::ed25519))
        .collect()
}

/// What every role's `signed` has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Its version (at least 1).
    pub version: u64,
    /// When it expires.
    pub expires: UnixMs,
    /// The expiry as written.
    pub expires_text: String,
}

impl Common {
    fn read(role: &str, s: &Value) -> Result<Common, UpdateError> {
        let spec = s
            .get("spec_version")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(role, "signed.spec_version", "must be a string"))?;
        let mut parts = spec.split('.');
        if parts.next() != Some("1") || parts.count() < 1 {
            return Err(invalid(
                role,
                "signed.spec_version",
                format!("{spec:?} is not a supported 1.x version"),
            ));
        }
        let version = s
            .get("version")
            .and_then(Value::as_u64)
            .filter(|v| *v >= 1)
            .ok_or_else(|| invalid(role, "signed.version", "must be an integer of at least 1"))?;
        let expires_text = s
            .get("expires")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(role, "signed.expires", "must be a string"))?;
        let expires = crate::time::parse_rfc3339(expires_text)
            .ok_or_else(|| invalid(role, "signed.expires", "must be YYYY-MM-DDTHH:MM:SSZ"))?;
        Ok(Common {
            version,
            expires,
            expires_text: expires_text.into(),
        })
    }

    /// Whether it has expired at `now` (expired from the instant it names).
    pub fn expired(&self, now: UnixMs) -> bool {
        now >= self.expires
    }
}

fn object<'a>(
    role: &str,
    v: &'a Value,
    field: &str,
) -> Result<&'a Map<String, Value>, UpdateError> {
    v.get(field.rsplit('.').next().unwrap_or(field))
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(role, field, "must be an object"))
}

fn role_keys(role: &str, v: &Value, field: &str) -> Result<RoleKeys, UpdateError> {
    let keyids = v
        .get("keyids")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(role, &format!("{field}.keyids"), "must be an array"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(role, &format!("{field}.keyids"), "must hold strings"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let threshold = v
        .get("threshold")
        .and_then(Value::as_u64)
        .filter(|t| *t >= 1)
        .ok_or_else(|| {
            invalid(
                role,
                &format!("{field}.threshold"),
                "must be an integer of at least 1",
            )
        })?;
    Ok(RoleKeys { keyids, threshold })
}

fn key_ring(role: &str, keys: &Map<String, Value>, field: &str) -> Result<KeyRing, UpdateError> {
    let mut ring = KeyRing::new();
    for (id, key) in keys {
        if !key.is_object() {
            return Err(invalid(role, &format!("{field}.{id}"), "must be an object"));
        }
        ring.insert(id.clone(), Key::from_json(key).ok());
    }
    Ok(ring)
}

/// A root: the keys and thresholds of the four top-level roles.
#[derive(Debug, Clone)]
pub struct Root {
    /// Version and expiry.
    pub common: Common,
    /// Whether the repository publishes consistent snapshots.
    pub consistent_snapshot: bool,
    /// The keys.
    pub keys: KeyRing,
    /// `root`, `timestamp`, `snapshot` and `targets`.
    pub roles: BTreeMap<String, RoleKeys>,
}

impl Root {
    /// Reads a root's `signed`.
    pub fn read(s: &Value) -> Result<Root, UpdateError> {
        let role = "root";
        let common = Common::read(role, s)?;
        let consistent_snapshot = match s.get("consistent_snapshot") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| invalid(role, "signed.consistent_snapshot", "must be a boolean"))?,
        };
        let keys = key_ring(role, object(role, s, "signed.keys")?, "signed.keys")?;
        let roles_v = object(role, s, "signed.roles")?;
        let mut roles = BTreeMap::new();
        for name in ["root", "timestamp", "snapshot", "targets"] {
            let field = format!("signed.roles.{name}");
            let r = roles_v
                .get(name)
                .ok_or_else(|| invalid(role, &field, "missing"))?;
            roles.insert(name.to_string(), role_keys(role, r, &field)?);
        }
        Ok(Root {
            common,
            consistent_snapshot,
            keys,
            roles,
        })
    }

    /// The keys of a top-level role.
    pub fn role(&self, name: &str) -> &RoleKeys {
        // `read` made sure the four are there; other names are never asked for.
        &self.roles[name]
    }
}

/// What a role lists about another role's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFile {
    /// Its version.
    pub version: u64,
    /// Its length, when listed.
    pub length: Option<u64>,
    /// Its hashes, when listed.
    pub hashes: Hashes,
}

fn hashes(role: &str, v: Option<&Value>, field: &str) -> Result<Hashes, UpdateError> {
    let Some(v) = v else {
        return Ok(Hashes::default());
    };
    let map = v
        .as_object()
        .ok_or_else(|| invalid(role, field, "must be an object"))?;
    let mut out = Vec::with_capacity(map.len());
    for (alg, h) in map {
        let h = h
            .as_str()
            .ok_or_else(|| invalid(role, &format!("{field}.{alg}"), "must be a string"))?;
        out.push((alg.clone(), h.to_ascii_lowercase()));
    }
    Ok(Hashes(out))
}

fn length(role: &str, v: Option<&Value>, field: &str) -> Result<Option<u64>, UpdateError> {
    v.map(|l| {
        l.as_u64()
            .ok_or_else(|| invalid(role, field, "must be a non-negative integer"))
    })
    .transpose()
}

fn meta_file(role: &str, v: &Value, field: &str) -> Result<MetaFile, UpdateError> {
    let version = v
        .get("version")
        .and_then(Value::as_u64)
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            invalid(
                role,
                &format!("{field}.version"),
                "must be an integer of at least 1",
            )
        })?;
    Ok(MetaFile {
        version,
        length: length(role, v.get("length"), &format!("{field}.length"))?,
        hashes: hashes(role, v.get("hashes"), &format!("{field}.hashes"))?,
    })
}

/// A timestamp: the snapshot's version (and length and hashes).
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// Version and expiry.
    pub common: Common,
    /// `meta["snapshot.json"]`.
    pub snapshot: MetaFile,
}

impl Timestamp {
    /// Reads a timestamp's `signed`.
    pub fn read(s: &Value) -> Result<Timestamp, UpdateError> {
        let role = "timestamp";
        let common = Common::read(role, s)?;
        let meta = object(role, s, "signed.meta")?;
        let snap = meta
            .get("snapshot.json")
            .ok_or_else(|| invalid(role, "signed.meta.snapshot.json", "missing"))?;
        Ok(Timestamp {
            common,
            snapshot: meta_file(role, snap, "signed.meta.snapshot.json")?,
        })
    }
}

/// A snapshot: the version (and length and hashes) of every targets role's file.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Version and expiry.
    pub common: Common,
    /// By file name (`targets.json`, `ROLE.json`).
    pub meta: BTreeMap<String, MetaFile>,
}

impl Snapshot {
    /// Reads a snapshot's `signed`.
    pub fn read(s: &Value) -> Result<Snapshot, UpdateError> {
        let role = "snapshot";
        let common = Common::read(role, s)?;
        let mut meta = BTreeMap::new();
        for (name, v) in object(role, s, "signed.meta")? {
            meta.insert(
                name.clone(),
                meta_file(role, v, &format!("signed.meta.{name}"))?,
            );
        }
        Ok(Snapshot { common, meta })
    }

    /// What it lists for a targets role.
    pub fn role(&self, role: &str) -> Option<&MetaFile> {
        self.meta.get(&format!("{role}.json"))
    }
}

/// A target: its length, hashes and custom data.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// Its name (path).
    pub name: String,
    /// Its length.
    pub length: u64,
    /// Its hashes (at least one).
    pub hashes: Hashes,
    /// Its `custom`, if any.
    pub custom: Option<Value>,
}

/// A delegated role: who it is, which keys, and which targets it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedRole {
    /// Its name.
    pub name: String,
    /// Its keys and threshold.
    pub keys: RoleKeys,
    /// Whether the search ends with it.
    pub terminating: bool,
    /// Shell-style patterns of the targets it covers.
    pub paths: Option<Vec<String>>,
    /// Prefixes of the hex SHA-256 of the names of the targets it covers.
    pub path_hash_prefixes: Option<Vec<String>>,
}

impl DelegatedRole {
    /// Whether it covers `target`.
    pub fn covers(&self, target: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| paths::path_matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            return paths::hash_prefix_matches(prefixes, target);
        }
        false
    }
}

/// Hashed bins delegated succinctly (TAP 15): `2^bit_length` roles `PREFIX-HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccinctRoles {
    /// Their keys and threshold, shared.
    pub keys: RoleKeys,
    /// How many leading bits of the target name's SHA-256 pick the bin (1 to 32).
    pub bit_length: u32,
    /// The bins' name prefix.
    pub name_prefix: String,
}

impl SuccinctRoles {
    /// The bin that covers `target`.
    pub fn role_for(&self, target: &str) -> String {
        use sha2::Digest;
        let h = sha2::Sha256::digest(target.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let bin = u64::from(first) >> (32 - self.bit_length);
        let width = self.bit_length.div_ceil(4) as usize;
        format!("{}-{bin:0width$x}", self.name_prefix)
    }

    /// Whether `role` is one of the bins.
    pub fn is_bin(&self, role: &str) -> bool {
        let Some(suffix) = role
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|r| r.strip_prefix('-'))
        else {
            return false;
        };
        let width = self.bit_length.div_ceil(4) as usize;
        suffix.len() == width
            && u64::from_str_radix(suffix, 16).is_ok_and(|b| b < (1u64 << self.bit_length))
            && suffix.bytes().all(|c| !c.is_ascii_uppercase())
    }
}

/// A targets role's delegations.
#[derive(Debug, Clone)]
pub struct Delegations {
    /// The keys.
    pub keys: KeyRing,
    /// The roles, in order.
    pub roles: Vec<DelegatedRole>,
    /// Or hashed bins.
    pub succinct: Option<SuccinctRoles>,
}

impl Delegations {
    /// The delegated roles that cover `target`, in order, each with whether it terminates the
    /// search.
    pub fn roles_for(&self, target: &str) -> Vec<(String, bool)> {
        if let Some(s) = &self.succinct {
            return vec![(s.role_for(target), false)];
        }
        self.roles
            .iter()
            .filter(|r| r.covers(target))
            .map(|r| (r.name.clone(), r.terminating))
            .collect()
    }

    /// The keys of delegated role `name`, if delegated here.
    pub fn role_keys(&self, name: &str) -> Option<&RoleKeys> {
        if let Some(s) = &self.succinct {
            return s.is_bin(name).then_some(&s.keys);
        }
        self.roles.iter().find(|r| r.name == name).map(|r| &r.keys)
    }
}

/// A targets role (top-level or delegated): its targets and delegations.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Version and expiry.
    pub common: Common,
    /// By name.
    pub targets: BTreeMap<String, TargetFile>,
    /// Its delegations, if any.
    pub delegations: Option<Delegations>,
}

impl Targets {
    /// Reads the `signed` of targets role `role`.
    pub fn read(role: &str, s: &Value) -> Result<Targets, UpdateError> {
        let common = Common::read(role, s)?;
        let mut targets = BTreeMap::new();
        for (name, t) in object(role, s, "signed.targets")? {
            let field = format!("signed.targets.{name}");
            let length = length(role, t.get("length"), &format!("{field}.length"))?
                .ok_or_else(|| invalid(role, &format!("{field}.length"), "missing"))?;
            let h = hashes(role, t.get("hashes"), &format!("{field}.hashes"))?;
            if h.is_empty() {
                return Err(invalid(
                    role,
                    &format!("{field}.hashes"),
                    "must list a hash",
                ));
            }
            targets.insert(
                name.clone(),
                TargetFile {
                    name: name.clone(),
                    length,
                    hashes: h,
                    custom: t.get("custom").cloned(),
                },
            );
        }
        let delegations = match s.get("delegations") {
            None | Some(Value::Null) => None,
            Some(d) => Some(Self::delegations(role, d)?),
        };
        Ok(Targets {
            common,
            targets,
            delegations,
        })
    }

    fn delegations(role: &str, d: &Value) -> Result<Delegations, UpdateError> {
        let f = "signed.delegations";
        let keys = key_ring(
            role,
            object(role, d, &format!("{f}.keys"))?,
            &format!("{f}.keys"),
        )?;
        let mut roles = Vec::new();
        let mut succinct = None;
        match (d.get("roles"), d.get("succinct_roles")) {
            (Some(list), None) => {
                let list = list
                    .as_array()
                    .ok_or_else(|| invalid(role, &format!("{f}.roles"), "must be an array"))?;
                for (i, r) in list.iter().enumerate() {
                    let field = format!("{f}.roles[{i}]");
                    let name = r.get("name").and_then(Value::as_str).ok_or_else(|| {
                        invalid(role, &format!("{field}.name"), "must be a string")
                    })?;
                    // A delegated role named like a top-level one would share its file.
                    if name.is_empty()
                        || ["root", "timestamp", "snapshot", "targets"].contains(&name)
                    {
                        return Err(invalid(
                            role,
                            &format!("{field}.name"),
                            format!("{name:?} cannot be a delegated role's name"),
                        ));
                    }
                    if roles.iter().any(|d: &DelegatedRole| d.name == name) {
                        return Err(invalid(
                            role,
                            &format!("{field}.name"),
                            format!("{name:?} is delegated twice"),
                        ));
                    }
                    let strings = |k: &str| -> Result<Option<Vec<String>>, UpdateError> {
                        r.get(k)
                            .map(|v| {
                                v.as_array()
                                    .and_then(|a| {
                                        a.iter()
                                            .map(|s| s.as_str().map(str::to_string))
                                            .collect::<Option<Vec<_>>>()
                                    })
                                    .ok_or_else(|| {
                                        invalid(
                                            role,
                                            &format!("{field}.{k}"),
                                            "must be an array of strings",
                                        )
                                    })
                            })
                            .transpose()
                    };
                    let paths = strings("paths")?;
                    let path_hash_prefixes = strings("path_hash_prefixes")?;
                    if paths.is_some() && path_hash_prefixes.is_some() {
                        return Err(invalid(
                            role,
                            &field,
                            "has both paths and path_hash_prefixes",
                        ));
                    }
                    roles.push(DelegatedRole {
                        name: name.into(),
                        keys: role_keys(role, r, &field)?,
                        terminating: r
                            .get("terminating")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        paths,
                        path_hash_prefixes,
                    });
                }
            }
            (None, Some(s)) => {
                let field = format!("{f}.succinct_roles");
                let bit_length = s
                    .get("bit_length")
                    .and_then(Value::as_u64)
                    .filter(|b| (1..=32).contains(b))
                    .ok_or_else(|| {
                        invalid(role, &format!("{field}.bit_length"), "must be 1 to 32")
                    })?;
                let name_prefix =
                    s.get("name_prefix")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            invalid(role, &format!("{field}.name_prefix"), "must be a string")
                        })?;
                succinct = Some(SuccinctRoles {
                    keys: role_keys(role, s, &field)?,
                    bit_length: bit_length as u32,
                    name_prefix: name_prefix.into(),
                });
            }
            _ => {
                return Err(invalid(
                    role,
                    f,
                    "must have exactly one of roles and succinct_roles",
                ));
            }
        }
        Ok(Delegations {
            keys,
            roles,
            succinct,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn one_key_listed_under_two_ids_signs_once() {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let canonical = b"{\"_type\":\"targets\"}".to_vec();
        let sig = |k: &ed25519_dalek::SigningKey| hex::encode(k.sign(&canonical).to_bytes());
        let env = |sigs: &[(&str, String)]| Envelope {
            signed: serde_json::json!({"_type": "targets"}),
            canonical: canonical.clone(),
            signatures: sigs.iter().map(|(k, s)| ((*k).into(), s.clone())).collect(),
        };
        let keys = RoleKeys {
            keyids: vec!["a".into(), "b".into(), "c".into()],
            threshold: 2,
        };
        let ring: KeyRing = [
            ("a", &secret),
            ("b", &secret), // the same key again, under another id
            ("c", &other),
        ]
        .into_iter()
        .map(|(id, k)| (id.to_string(), Some(Key::Ed25519(k.verifying_key()))))
        .collect();
        let twice = env(&[("a", sig(&secret)), ("b", sig(&secret))]);
        assert!(matches!(
            verify("targets", &twice, &ring, &keys),
            Err(UpdateError::ThresholdNotMet {
                valid: 1,
                threshold: 2,
                ..
            })
        ));
        let two_keys = env(&[("a", sig(&secret)), ("c", sig(&other))]);
        assert_eq!(
            verify("targets", &two_keys, &ring, &keys).unwrap(),
            vec!["a".to_string(), "c".to_string()]
        );
    }
}
