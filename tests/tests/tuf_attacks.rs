//! The TUF attacks, one fixture directory each under `tests/fixtures/tuf/`: `trusted/` is the
//! client's state before the refresh, `repo/` what the attacker serves, `expect.json` the
//! status the client must give (at `now`; for a target attack, when downloading `target`).
//! After a refused refresh the client's state is unchanged.
//!
//! `OTA_BLESS=1 cargo test -p ota-tests --test tuf_attacks` rebuilds the fixtures, with tough's
//! signing used directly to make metadata our publisher refuses to make.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use ota_host::tuf::client::Client;
use ota_host::tuf::repo::{Expiries, Repo, Roles};
use ota_tests::{TUF_NOW as NOW, fixture, signing_key, tuf_role as role};
use serde_json::{Value, json};
use tough::editor::signed::SignedRole;
use tough::schema::{
    Hashes, KeyHolder, Metafile, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
};

const DAY: u64 = 86_400_000;

fn keys(ids: &[u8]) -> Vec<ota_core::sign::SigningKey> {
    ids.iter().map(|k| signing_key(*k)).collect()
}

fn expect(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn snapshot_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_attack_is_refused_with_its_own_error() {
    if std::env::var_os("OTA_BLESS").is_some() {
        bless();
    }
    let root = fixture("tuf");
    let mut seen = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let e = expect(&dir);
        let now = ota_core::UnixMs(e["now"].as_u64().unwrap());
        let state =
            std::env::temp_dir().join(format!("ota-tuf-attack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        copy_dir(&dir.join("trusted"), &state);
        let before = snapshot_of(&state);
        let repo = dir.join("repo");
        let client = Client::new(
            std::fs::read(state.join("root.json")).unwrap(),
            repo.join("metadata").to_str().unwrap(),
            repo.join("targets").to_str().unwrap(),
        )
        .unwrap()
        .state_dir(&state);
        let result = client
            .refresh(now)
            .and_then(|t| match e["target"].as_str() {
                Some(target) => {
                    let mut sink = Vec::new();
                    t.download(target, &mut sink).map(|_| ())
                }
                None => Ok(()),
            });
        let want = e["status"].as_str().unwrap();
        match (&result, want) {
            (Ok(()), "ok") => {}
            (Err(err), want) => {
                eprintln!("{name}: {want}: {err}");
                assert_eq!(err.status().name(), want, "{name}: {err}");
                let needle = e["message"].as_str().unwrap_or_default();
                assert!(
                    err.to_string().contains(needle),
                    "{name}: {err:?} lacks {needle:?}"
                );
                if e["target"].is_null() {
                    // Each role that verified before the refusal is kept (and only those):
                    // the fixture lists the files it expects written.
                    let after = snapshot_of(&state);
                    let changed: Vec<&str> = after
                        .iter()
                        .filter(|f| !before.contains(f))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let persisted: Vec<&str> = e["persisted"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    eprintln!("{name}: persisted {changed:?}");
                    if changed != persisted {
                        wrong.push(format!("{name}: wrote {changed:?}, expected {persisted:?}"));
                    }
                    let kept: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
                    for n in kept {
                        assert!(after.iter().any(|(a, _)| a == n), "{name}: {n} was removed");
                    }
                }
            }
            (Ok(()), want) => panic!("{name}: accepted, expected {want}"),
        }
        std::fs::remove_dir_all(&state).unwrap();
        seen.push((name, want.to_string()));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let statuses: std::collections::BTreeSet<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    for s in [
        "tuf_unknown_key",
        "tuf_threshold_not_met",
        "tuf_duplicate_signature",
        "tuf_rollback",
        "tuf_expired",
        "tuf_target_mismatch",
        "tuf_target_too_long",
        "tuf_metadata_too_large",
        "tuf_mix_and_match",
        "tuf_unsafe_target_name",
        "tuf_root_rotation_refused",
        "ok",
    ] {
        assert!(statuses.contains(s), "no fixture for {s}: {seen:?}");
    }
}

// --- Building the fixtures. ------------------------------------------------------------------

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ts(at: ota_core::UnixMs) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(at.get() as i64).unwrap()
}

fn sources(ids: &[u8]) -> Vec<Box<dyn tough::key_source::KeySource>> {
    ota_host::tuf::key_sources(&keys(ids))
}

/// Signs `role` with the keys `ids`, as `holder` would check them (any threshold).
fn sign<T: tough::schema::Role + serde::Serialize + serde::de::DeserializeOwned>(
    role: T,
    holder: &Root,
    ids: &[u8],
) -> Signed<T> {
    let mut lax = holder.clone();
    for r in lax.roles.values_mut() {
        r.threshold = NonZeroU64::MIN;
    }
    let signed = rt()
        .block_on(SignedRole::new(
            role,
            &KeyHolder::Root(lax),
            &sources(ids),
            &aws_lc_rs::rand::SystemRandom::new(),
        ))
        .unwrap();
    let bytes = signed.buffer().clone();
    serde_json::from_slice(&bytes).unwrap()
}

fn bytes_of<T: serde::Serialize>(s: &Signed<T>) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(s).unwrap();
    b.push(b'\n');
    b
}

fn meta_of(bytes: &[u8], version: u64) -> Metafile {
    Metafile {
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: ota_core::Sha256Digest::of(bytes).as_bytes().to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: NonZeroU64::new(version).unwrap(),
        _extra: HashMap::new(),
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes targets (as given), then a snapshot naming it and a timestamp naming that, both
/// validly signed by keys 4 and 5: only what the caller did to the targets is wrong.
fn publish_chain(
    meta: &Path,
    root: &Root,
    targets: &Signed<Targets>,
    snapshot_version: u64,
    timestamp_version: u64,
) {
    let tbytes = bytes_of(targets);
    let tv = targets.signed.version.get();
    std::fs::write(meta.join(format!("{tv}.targets.json")), &tbytes).unwrap();
    let mut snap = Snapshot::new(
        "1.0.0".into(),
        NonZeroU64::new(snapshot_version).unwrap(),
        ts(NOW + 7 * DAY),
    );
    snap.meta
        .insert("targets.json".into(), meta_of(&tbytes, tv));
    let snap = sign(snap, root, &[4]);
    let sbytes = bytes_of(&snap);
    std::fs::write(
        meta.join(format!("{snapshot_version}.snapshot.json")),
        &sbytes,
    )
    .unwrap();
    publish_timestamp(
        meta,
        root,
        &sbytes,
        snapshot_version,
        timestamp_version,
        &[5],
    );
}

fn publish_timestamp(
    meta: &Path,
    root: &Root,
    snapshot: &[u8],
    snapshot_version: u64,
    version: u64,
    ids: &[u8],
) {
    let mut t = Timestamp::new(
        "1.0.0".into(),
        NonZeroU64::new(version).unwrap(),
        ts(NOW + DAY),
    );
    t.meta
        .insert("snapshot.json".into(), meta_of(snapshot, snapshot_version));
    std::fs::write(meta.join("timestamp.json"), bytes_of(&sign(t, root, ids))).unwrap();
}

/// A fresh repository (root keys 1+2 of 2, targets `targets` of `threshold`, snapshot 4,
/// timestamp 5) with package `fw.enc`, and the client state that trusts its first root.
fn base(dir: &Path, targets: &[u8], threshold: u64) -> Repo {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let roles = Roles {
        root: role(&[1, 2], 2),
        targets: role(targets, threshold),
        snapshot: role(&[4], 1),
        timestamp: role(&[5], 1),
    };
    let expires = Expiries::from(NOW);
    let repo = Repo::create(
        dir.join("repo"),
        &roles,
        &keys(&[1, 2, 3, 4, 5, 6]),
        &expires,
    )
    .unwrap();
    let mut p = ota_tests::firmware_package();
    let artifact = ota_tests::seal_into(&mut p, &ota_tests::noise(6_000, 42));
    let scratch = std::env::temp_dir().join(format!("ota-bless-{}.enc", std::process::id()));
    std::fs::write(&scratch, artifact).unwrap();
    repo.add_package("fw.enc", &scratch, &p, &keys(&[3, 4, 5, 6]), &expires)
        .unwrap();
    std::fs::remove_file(scratch).unwrap();
    let trusted = dir.join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::copy(
        repo.metadata_dir().join("1.root.json"),
        trusted.join("root.json"),
    )
    .unwrap();
    repo
}

fn set_expect(dir: &Path, v: Value) {
    std::fs::write(
        dir.join("expect.json"),
        serde_json::to_string_pretty(&v).unwrap() + "\n",
    )
    .unwrap();
}

fn root_of(repo: &Repo) -> Root {
    read::<Signed<Root>>(&repo.metadata_dir().join("1.root.json")).signed
}

/// Refreshes a client from the repository as it is, into `dir/trusted`.
fn trust_current(dir: &Path, repo: &Repo) {
    let trusted = dir.join("trusted");
    let root = std::fs::read(trusted.join("root.json")).unwrap();
    Client::new(
        root,
        repo.metadata_dir().to_str().unwrap(),
        repo.targets_dir().to_str().unwrap(),
    )
    .unwrap()
    .state_dir(&trusted)
    .refresh(NOW)
    .unwrap();
}

fn target_file(repo: &Repo) -> PathBuf {
    std::fs::read_dir(repo.targets_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".fw.enc"))
        .unwrap()
}

fn bless() {
    let all = fixture("tuf");
    let _ = std::fs::remove_dir_all(&all);
    let at = |name: &str| all.join(name);
    let expires = Expiries::from(NOW);

    // Metadata signed by a key the role does not trust.
    let d = at("unknown-key");
    let repo = base(&d, &[3], 1);
    let root = root_of(&repo);
    let mut other = root.clone();
    other.keys.insert(
        ota_host::tuf::tuf_key(&signing_key(9).public_key())
            .key_id()
            .unwrap(),
        ota_host::tuf::tuf_key(&signing_key(9).public_key()),
    );
    other.roles.get_mut(&RoleType::Timestamp).unwrap().keyids = vec![
        ota_host::tuf::tuf_key(&signing_key(9).public_key())
            .key_id()
            .unwrap(),
    ];
    let t: Signed<Timestamp> = read(&repo.metadata_dir().join("timestamp.json"));
    let mut forged = t.signed.clone();
    forged.version = NonZeroU64::new(forged.version.get() + 1).unwrap();
    std::fs::write(
        repo.metadata_dir().join("timestamp.json"),
        bytes_of(&sign(forged, &other, &[9])),
    )
    .unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_unknown_key", "message": "timestamp"}),
    );

    // Threshold not met: targets needs keys 3 and 6, only 3 signed.
    let d = at("threshold-not-met");
    let repo = base(&d, &[3, 6], 2);
    let root = root_of(&repo);
    let cur: Signed<Targets> = read(&repo.metadata_dir().join("2.targets.json"));
    let mut t = cur.signed.clone();
    t.version = NonZeroU64::new(3).unwrap();
    publish_chain(&repo.metadata_dir(), &root, &sign(t, &root, &[3]), 3, 3);
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_threshold_not_met", "message": "targets", "persisted": ["snapshot.json", "timestamp.json"]}),
    );

    // Two signatures by one key do not make a threshold of two.
    let d = at("threshold-duplicate-signature");
    let repo = base(&d, &[3, 6], 2);
    let root = root_of(&repo);
    let mut t = cur.signed.clone();
    t.version = NonZeroU64::new(3).unwrap();
    let mut signed = sign(t, &root, &[3]);
    signed.signatures.push(signed.signatures[0].clone());
    publish_chain(&repo.metadata_dir(), &root, &signed, 3, 3);
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_duplicate_signature", "message": "targets", "persisted": ["snapshot.json", "timestamp.json"]}),
    );

    // Rollbacks: the client trusts version 3 of everything.
    for what in ["timestamp", "snapshot", "targets"] {
        let d = at(&format!("rollback-{what}"));
        let repo = base(&d, &[3], 1);
        let meta = repo.metadata_dir();
        let old_ts = std::fs::read(meta.join("timestamp.json")).unwrap();
        let mut p = ota_tests::firmware_package();
        p.version = "2.1.0".parse().unwrap();
        let artifact = ota_tests::seal_into(&mut p, &ota_tests::noise(10_000, 7));
        let scratch = d.join("scratch.enc");
        std::fs::write(&scratch, artifact).unwrap();
        repo.add_package("fw-2.1.0.enc", &scratch, &p, &keys(&[3, 4, 5]), &expires)
            .unwrap();
        std::fs::remove_file(scratch).unwrap();
        trust_current(&d, &repo);
        let root = root_of(&repo);
        match what {
            // The attacker serves the old timestamp (version 2).
            "timestamp" => std::fs::write(meta.join("timestamp.json"), old_ts).unwrap(),
            // A new timestamp that names the old snapshot (version 2).
            "snapshot" => {
                let snap = std::fs::read(meta.join("2.snapshot.json")).unwrap();
                publish_timestamp(&meta, &root, &snap, 2, 4, &[5]);
            }
            // A new snapshot that names the old targets (version 2).
            _ => {
                let old: Signed<Targets> = read(&meta.join("2.targets.json"));
                let tbytes = bytes_of(&old);
                let mut snap = Snapshot::new(
                    "1.0.0".into(),
                    NonZeroU64::new(4).unwrap(),
                    ts(NOW + 7 * DAY),
                );
                snap.meta.insert("targets.json".into(), meta_of(&tbytes, 2));
                let sbytes = bytes_of(&sign(snap, &root, &[4]));
                std::fs::write(meta.join("4.snapshot.json"), &sbytes).unwrap();
                publish_timestamp(&meta, &root, &sbytes, 4, 4, &[5]);
            }
        }
        set_expect(
            &d,
            // The new timestamp of the targets rollback verified, and is kept (5.4.6).
            json!({"now": NOW, "status": "tuf_rollback", "message": "rollback",
                   "persisted": if what == "targets" { vec!["timestamp.json"] } else { vec![] }}),
        );
    }

    // A freeze: the timestamp (a day) is replayed two days later.
    let d = at("expired");
    base(&d, &[3], 1);
    set_expect(
        &d,
        json!({"now": NOW + 2 * DAY, "status": "tuf_expired", "message": "timestamp"}),
    );

    // A target whose bytes differ from its metadata, and one longer than it says.
    let d = at("target-bytes");
    let repo = base(&d, &[3], 1);
    let f = target_file(&repo);
    let mut b = std::fs::read(&f).unwrap();
    b[1000] ^= 1;
    std::fs::write(&f, b).unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_target_mismatch", "target": "fw.enc", "message": "fw.enc"}),
    );
    let d = at("target-endless");
    let repo = base(&d, &[3], 1);
    let f = target_file(&repo);
    let mut b = std::fs::read(&f).unwrap();
    b.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&f, b).unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_target_too_long", "target": "fw.enc", "message": "fw.enc"}),
    );

    // Oversized metadata: a timestamp of 20 KB (the limit is 16 KiB).
    let d = at("oversized-metadata");
    let repo = base(&d, &[3], 1);
    let path = repo.metadata_dir().join("timestamp.json");
    let mut b = std::fs::read(&path).unwrap();
    b.extend(std::iter::repeat_n(b' ', 20_000));
    std::fs::write(&path, b).unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_metadata_too_large", "message": "16384"}),
    );

    // Mix and match: a validly signed targets version 2 that is not the one the snapshot names.
    let d = at("mix-and-match");
    let repo = base(&d, &[3], 1);
    let root = root_of(&repo);
    let cur: Signed<Targets> = read(&repo.metadata_dir().join("2.targets.json"));
    let mut other = cur.signed.clone();
    other.targets.clear();
    std::fs::write(
        repo.metadata_dir().join("2.targets.json"),
        bytes_of(&sign(other, &root, &[3])),
    )
    .unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_mix_and_match", "message": "targets", "persisted": ["snapshot.json", "timestamp.json"]}),
    );

    // A target name that climbs out of the download directory.
    let d = at("path-traversal");
    let repo = base(&d, &[3], 1);
    let root = root_of(&repo);
    let cur: Signed<Targets> = read(&repo.metadata_dir().join("2.targets.json"));
    let mut t = cur.signed.clone();
    let fw = t.targets.values().next().unwrap().clone();
    t.targets.insert(
        tough::TargetName::new("../../../../tmp/ota-evil").unwrap(),
        fw,
    );
    t.version = NonZeroU64::new(3).unwrap();
    publish_chain(&repo.metadata_dir(), &root, &sign(t, &root, &[3]), 3, 3);
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_unsafe_target_name", "target": "../../../../tmp/ota-evil", "message": ".."}),
    );

    // Root rotation: done right (key 1 out, key 7 in, cross-signed by the old threshold) ...
    let d = at("rotation-good");
    let repo = base(&d, &[3], 1);
    repo.rotate_root(&role(&[2, 7], 2), &keys(&[1, 2, 7]), NOW + 365 * DAY)
        .unwrap();
    set_expect(&d, json!({"now": NOW, "status": "ok"}));
    // ... and signed only by the new keys: refused.
    let d = at("rotation-unsigned");
    let repo = base(&d, &[3], 1);
    let old = root_of(&repo);
    let mut new = old.clone();
    new.version = NonZeroU64::new(2).unwrap();
    let (k2, k7) = (
        ota_host::tuf::tuf_key(&signing_key(2).public_key()),
        ota_host::tuf::tuf_key(&signing_key(7).public_key()),
    );
    new.keys.insert(k7.key_id().unwrap(), k7.clone());
    new.roles.get_mut(&RoleType::Root).unwrap().keyids =
        vec![k2.key_id().unwrap(), k7.key_id().unwrap()];
    let mut signed = sign(new.clone(), &new, &[7]);
    // Key 2 is in both roots, but one old signature is short of the old threshold of two.
    signed.signatures.extend(sign(new, &old, &[2]).signatures);
    std::fs::write(repo.metadata_dir().join("2.root.json"), bytes_of(&signed)).unwrap();
    set_expect(
        &d,
        json!({"now": NOW, "status": "tuf_root_rotation_refused", "message": "root"}),
    );
}
