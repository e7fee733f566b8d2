//! TUF interoperability with python-tuf, the specification's reference implementation (from
//! PyPI: `pip install tuf`; `OTA_SKIP_PYTHON_TUF=1` skips these tests), both ways:
//!
//! - python-tuf's client (`tuf.ngclient.Updater`) refreshes from a repository our publisher
//!   made and downloads a target in a directory, over HTTP, reading our `custom.ota`;
//! - our client refreshes from a repository python-tuf's metadata API made (its own
//!   canonical JSON, key format and consistent-snapshot layout `dir/HASH.name`) and downloads
//!   the target.

use std::path::PathBuf;
use std::process::Command;

use ota_host::tuf::client::Client;
use ota_host::tuf::repo::{Expiries, Repo, Roles};
use ota_tests::{TUF_NOW as NOW, serve_dir, signing_key, tuf_role as role};
use serde_json::Value;

fn skip() -> bool {
    std::env::var_os("OTA_SKIP_PYTHON_TUF").is_some()
}

/// Runs a Python script with `args`; its stdout, or a panic with its stderr.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python-tuf (pip install tuf; OTA_SKIP_PYTHON_TUF=1 skips this test) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-tuf-interop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const PY_CLIENT: &str = r#"
import hashlib, json, sys
from tuf.ngclient import Updater
root, base, md, tdir, name = sys.argv[1:6]
u = Updater(metadata_dir=md, metadata_base_url=base + "/metadata/",
            target_base_url=base + "/targets/", target_dir=tdir,
            bootstrap=open(root, "rb").read())
u.refresh()
info = u.get_targetinfo(name)
path = u.download_target(info)
data = open(path, "rb").read()
print(json.dumps({
    "path": path, "length": info.length, "sha256": hashlib.sha256(data).hexdigest(),
    "statement": json.loads(info.custom["ota"]["package"]),
    "versions": [u._trusted_set.root.version, u._trusted_set.timestamp.version,
                 u._trusted_set.snapshot.version, u._trusted_set.targets.version],
}))
"#;

#[test]
fn python_tuf_reads_a_repository_we_publish() {
    if skip() {
        return;
    }
    let dir = tmp("ours");
    let roles = Roles {
        root: role(&[1, 2], 2),
        targets: role(&[3], 1),
        snapshot: role(&[4], 1),
        timestamp: role(&[5], 1),
    };
    let keys: Vec<_> = (1..=5).map(signing_key).collect();
    // python-tuf checks expiry against the clock, so these expire after it.
    let now = ota_core::UnixMs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let repo = Repo::create(dir.join("repo"), &roles, &keys, &Expiries::from(now)).unwrap();
    let mut pkg = ota_tests::firmware_package();
    let plain = ota_tests::noise(200_000, 5);
    let artifact = ota_tests::seal_into(&mut pkg, &plain);
    std::fs::write(dir.join("fw.enc"), &artifact).unwrap();
    let name = "stable/arm64/fw-2.0.0.enc";
    repo.add_package(name, &dir.join("fw.enc"), &pkg, &keys, &Expiries::from(now))
        .unwrap();
    let base = serve_dir(dir.join("repo"));
    let md = dir.join("py-metadata");
    let tdir = dir.join("py-targets");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::create_dir_all(&tdir).unwrap();
    let root = repo.metadata_dir().join("1.root.json");
    let out = python(
        PY_CLIENT,
        &[
            root.to_str().unwrap(),
            &base,
            md.to_str().unwrap(),
            tdir.to_str().unwrap(),
            name,
        ],
    );
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got["length"], artifact.len());
    assert_eq!(got["sha256"], pkg.sha256.to_hex());
    assert_eq!(got["versions"], serde_json::json!([1, 2, 2, 2]));
    assert_eq!(got["statement"]["name"], pkg.name.to_string());
    // python-tuf's stable file name is ours too (`ota tuf download`).
    assert!(
        got["path"]
            .as_str()
            .unwrap()
            .ends_with("stable%2Farm64%2Ffw-2.0.0.enc"),
        "{got}"
    );
    assert_eq!(
        std::fs::read(got["path"].as_str().unwrap()).unwrap(),
        artifact
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const PY_REPO: &str = r#"
import datetime, hashlib, os, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, MetaFile, Root, Snapshot, TargetFile, Targets,
                              Timestamp)
out, name = sys.argv[1:3]
data = bytes(range(256)) * 1000
expires = datetime.datetime(2027, 4, 15, tzinfo=datetime.timezone.utc)
signer = CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32))
root = Metadata(Root(expires=expires, consistent_snapshot=True))
for role in ["root", "timestamp", "snapshot", "targets"]:
    root.signed.add_key(signer.public_key, role)
targets = Metadata(Targets(expires=expires))
target = TargetFile.from_data(name, data, ["sha256"])
targets.signed.targets[name] = target
snapshot = Metadata(Snapshot(expires=expires))
snapshot.signed.meta["targets.json"] = MetaFile(version=1)
timestamp = Metadata(Timestamp(expires=expires))
timestamp.signed.snapshot_meta = MetaFile(version=1)
os.makedirs(os.path.join(out, "metadata"))
for md, file in [(root, "1.root.json"), (targets, "1.targets.json"),
                 (snapshot, "1.snapshot.json"), (timestamp, "timestamp.json")]:
    md.sign(signer)
    md.to_file(os.path.join(out, "metadata", file))
d, _, base = name.rpartition("/")
path = os.path.join(out, "targets", d, hashlib.sha256(data).hexdigest() + "." + base)
os.makedirs(os.path.dirname(path))
open(path, "wb").write(data)
"#;

#[test]
fn we_read_a_repository_python_tuf_publishes() {
    if skip() {
        return;
    }
    let dir = tmp("theirs");
    let name = "models/yolo/v8n.engine";
    python(PY_REPO, &[dir.join("repo").to_str().unwrap(), name]);
    let base = serve_dir(dir.join("repo"));
    let root = std::fs::read(dir.join("repo/metadata/1.root.json")).unwrap();
    let state = dir.join("state");
    let trusted = Client::new(
        root,
        &format!("{base}/metadata"),
        &format!("{base}/targets"),
    )
    .unwrap()
    .state_dir(&state)
    .refresh(NOW)
    .unwrap();
    assert_eq!(trusted.versions(), [1, 1, 1, 1]);
    assert_eq!(trusted.target_names(), [name]);
    let mut got = Vec::new();
    trusted.download(name, &mut got).unwrap();
    let data: Vec<u8> = (0..1000).flat_map(|_| 0..=255u8).collect();
    assert_eq!(got, data);
    // It carries no ota statement, so it resolves to no package: refused, naming the field.
    let e = trusted.resolve(name).unwrap_err();
    assert!(e.to_string().contains("custom.ota.package"), "{e}");
    // The Trust Center shows python-tuf's key signing all four roles.
    let tc = trusted.trust_center();
    assert!(tc.roles.iter().all(|r| r.signed_by == r.keyids));
    // The state is kept as python-tuf signed it, and loads again offline.
    assert_eq!(
        std::fs::read(state.join("timestamp.json")).unwrap(),
        std::fs::read(dir.join("repo/metadata/timestamp.json")).unwrap()
    );
    let offline = Client::offline(&state, NOW, ota_host::tuf::TufLimits::default()).unwrap();
    assert_eq!(offline.target_names(), [name]);
    std::fs::remove_dir_all(dir).unwrap();
}
