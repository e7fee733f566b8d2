//! TUF end to end: a repository made with tough's editor, a client that refreshes from it (a
//! directory and HTTP), resolves a target to the same `VerifiedPackage` the DSSE route gives,
//! downloads it, feeds the device download, and shows the Trust Center; updates, a timestamp
//! re-signed alone, root rotation; and the attack fixtures in `tests/fixtures/tuf/`.

use std::path::{Path, PathBuf};

use ota_core::Status;
use ota_host::tuf::TufLimits;
use ota_host::tuf::client::Client;
use ota_host::tuf::repo::{Expiries, Repo, Roles};
use ota_tests::{TUF_NOW as NOW, serve_dir, signing_key, tuf_role as role};

const DAY: u64 = 86_400_000;

/// Roles: root keys 1 and 2 (threshold 2), targets 3, snapshot 4, timestamp 5.
fn roles() -> Roles {
    Roles {
        root: role(&[1, 2], 2),
        targets: role(&[3], 1),
        snapshot: role(&[4], 1),
        timestamp: role(&[5], 1),
    }
}

fn keys(ids: &[u8]) -> Vec<ota_core::sign::SigningKey> {
    ids.iter().map(|k| signing_key(*k)).collect()
}

/// A sealed firmware package at `version` and its artifact, written to `dir`.
fn package(dir: &Path, version: &str, size: usize) -> (ota_core::Package, PathBuf, Vec<u8>) {
    let mut p = ota_tests::firmware_package();
    p.version = version.parse().unwrap();
    let plain = ota_tests::noise(size, size as u64 + 1);
    let artifact = ota_tests::seal_into(&mut p, &plain);
    let path = dir.join(format!("fw-{version}.enc"));
    std::fs::write(&path, &artifact).unwrap();
    (p, path, artifact)
}

/// A repository in `dir/repo` with the roles above, holding a package at 2.0.0 (`size` bytes
/// of plaintext) as target `name`; the package and its artifact's path and bytes.
fn repo_with(dir: &Path, name: &str, size: usize) -> (Repo, ota_core::Package, PathBuf, Vec<u8>) {
    let repo = Repo::create(
        dir.join("repo"),
        &roles(),
        &keys(&[1, 2, 3, 4, 5]),
        &Expiries::from(NOW),
    )
    .unwrap();
    let (pkg, path, artifact) = package(dir, "2.0.0", size);
    repo.add_package(name, &path, &pkg, &keys(&[3, 4, 5]), &Expiries::from(NOW))
        .unwrap();
    (repo, pkg, path, artifact)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-tuf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn client(repo: &Repo, state: &Path) -> Client {
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    Client::new(
        root,
        repo.metadata_dir().to_str().unwrap(),
        repo.targets_dir().to_str().unwrap(),
    )
    .unwrap()
    .state_dir(state)
}

#[test]
fn publish_refresh_resolve_download_and_trust_center() {
    let dir = tmp("happy");
    let (repo, pkg, _, artifact) = repo_with(&dir, "temp-sensor-fw/2.0.0/fw.enc", 200_000);

    let state = dir.join("state");
    let trusted = client(&repo, &state).refresh(NOW + 1000).unwrap();
    assert_eq!(trusted.versions(), [1, 2, 2, 2]);
    // The state directory holds the four trusted files and nothing else.
    let mut names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );

    let r = trusted.resolve("temp-sensor-fw/2.0.0/fw.enc").unwrap();
    assert_eq!(r.length, artifact.len() as u64);
    assert_eq!(r.package.package(), &pkg);
    // The same statement through DSSE gives the same package id.
    let env = ota_core::sign::sign(&pkg, &[&signing_key(3)]).unwrap();
    let trusted_keys = [signing_key(3).public_key()].into_iter().collect();
    let via_dsse =
        ota_core::sign::verify_envelope(env, &trusted_keys, 1, &ota_core::Limits::DEFAULT).unwrap();
    assert_eq!(r.package.id(), via_dsse.id());
    assert_eq!(
        r.package.signed_by(),
        via_dsse.signed_by(),
        "signed by the targets key, as our key id"
    );
    match r.package.provenance() {
        ota_core::sign::Provenance::Tuf {
            target,
            versions,
            tuf_keyids,
        } => {
            assert_eq!(target, "temp-sensor-fw/2.0.0/fw.enc");
            assert_eq!(versions, &[1, 2, 2, 2]);
            assert_eq!(tuf_keyids.len(), 1);
        }
        other => panic!("{other:?}"),
    }

    // The download is verified as it streams, and feeds the device download unchanged.
    let mut got = Vec::new();
    assert_eq!(
        trusted
            .download("temp-sensor-fw/2.0.0/fw.enc", &mut got)
            .unwrap(),
        artifact.len() as u64
    );
    assert_eq!(got, artifact);
    let mut d = ota_core::download::Download::new(&r.package);
    let mut staging = Vec::new();
    for (i, chunk) in artifact.chunks(65536).enumerate() {
        d.accept(i as u64 * 65536, chunk, &mut staging).unwrap();
    }
    assert!(d.is_complete());

    let tc = trusted.trust_center();
    let roles: Vec<(&str, u64, u64, usize)> = tc
        .roles
        .iter()
        .map(|r| (r.role.as_str(), r.version, r.threshold, r.signed_by.len()))
        .collect();
    assert_eq!(
        roles,
        [
            ("root", 1, 2, 2),
            ("timestamp", 2, 1, 1),
            ("snapshot", 2, 1, 1),
            ("targets", 2, 1, 1)
        ]
    );
    assert_eq!(tc.targets.len(), 1);
    assert_eq!(
        tc.targets[0].package.as_deref(),
        Some("temp-sensor-fw 2.0.0")
    );
    assert_eq!(
        tc.targets[0].package_id.as_deref(),
        Some(r.package.id().as_str())
    );
    assert_eq!(tc.targets[0].sha256, pkg.sha256.to_hex());

    assert_eq!(
        trusted.resolve("nope").unwrap_err().status(),
        Status::TufTargetNotFound
    );
    assert_eq!(
        trusted.resolve("../etc/passwd").unwrap_err().status(),
        Status::TufUnsafeTargetName
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn updates_timestamp_only_resigning_and_root_rotation() {
    let dir = tmp("update");
    let (repo, _, a1, _) = repo_with(&dir, "fw-2.0.0", 70_000);
    let state = dir.join("state");
    client(&repo, &state).refresh(NOW).unwrap();

    // Without the snapshot key nothing is written.
    let (p2, a2, _) = package(&dir, "2.1.0", 80_000);
    let before = std::fs::read_dir(repo.metadata_dir()).unwrap().count();
    let err = repo
        .add_package("fw-2.1.0", &a2, &p2, &keys(&[3, 5]), &Expiries::from(NOW))
        .unwrap_err();
    assert_eq!(err.status(), Status::TufRepository, "{err}");
    assert_eq!(
        std::fs::read_dir(repo.metadata_dir()).unwrap().count(),
        before
    );
    // A package whose artifact is not the file given is refused.
    let err = repo
        .add_package(
            "fw-2.1.0",
            &a1,
            &p2,
            &keys(&[3, 4, 5]),
            &Expiries::from(NOW),
        )
        .unwrap_err();
    assert_eq!(err.status(), Status::TufPackageInvalid, "{err}");

    repo.add_package(
        "fw-2.1.0",
        &a2,
        &p2,
        &keys(&[3, 4, 5]),
        &Expiries::from(NOW),
    )
    .unwrap();
    let t = client(&repo, &state).refresh(NOW + 1).unwrap();
    assert_eq!(t.target_names(), ["fw-2.0.0", "fw-2.1.0"]);
    assert_eq!(t.versions(), [1, 3, 3, 3]);

    // The timestamp alone, re-signed a week later: clients move on.
    repo.refresh_timestamp(&keys(&[5]), NOW + 8 * DAY).unwrap();
    let later = NOW + 2 * DAY;
    let t = client(&repo, &state).refresh(later).unwrap();
    assert_eq!(t.versions(), [1, 4, 3, 3]);
    // Without the timestamp key, refused.
    assert_eq!(
        repo.refresh_timestamp(&keys(&[4]), NOW)
            .unwrap_err()
            .status(),
        Status::TufRepository
    );

    // Rotating root key 1 out for key 6: needs two old (1, 2) and both new (2, 6).
    let new_root = role(&[2, 6], 2);
    let err = repo
        .rotate_root(&new_root, &keys(&[2, 6]), NOW + 365 * DAY)
        .unwrap_err();
    assert_eq!(
        err.status(),
        Status::TufRepository,
        "the old threshold is not met: {err}"
    );
    assert!(!repo.metadata_dir().join("2.root.json").exists());
    repo.rotate_root(&new_root, &keys(&[1, 2, 6]), NOW + 365 * DAY)
        .unwrap();
    let t = client(&repo, &state).refresh(later).unwrap();
    assert_eq!(t.versions()[0], 2);
    let root = &t.trust_center().roles[0];
    // Key 1 signed too (the old threshold), but is no longer a root key.
    assert_eq!(
        (root.version, root.threshold, root.signed_by.len()),
        (2, 2, 2)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refresh_and_download_over_http() {
    let dir = tmp("http");
    let (repo, pkg, _, artifact) = repo_with(&dir, "fw.enc", 150_000);
    let base = serve_dir(dir.join("repo"));
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    let state = dir.join("state");
    let client = Client::new(
        root,
        &format!("{base}/metadata"),
        &format!("{base}/targets"),
    )
    .unwrap()
    .state_dir(&state);
    let trusted = client.refresh(NOW).unwrap();
    assert_eq!(trusted.resolve("fw.enc").unwrap().package.package(), &pkg);
    let mut got = Vec::new();
    trusted.download("fw.enc", &mut got).unwrap();
    assert_eq!(got, artifact);
    // The trusted state is kept byte for byte as signed, so it loads again offline.
    let metadata = repo.metadata_dir();
    for (kept, served) in [
        ("root.json", "1.root.json"),
        ("timestamp.json", "timestamp.json"),
        ("snapshot.json", "2.snapshot.json"),
        ("targets.json", "2.targets.json"),
    ] {
        assert_eq!(
            std::fs::read(state.join(kept)).unwrap(),
            std::fs::read(metadata.join(served)).unwrap(),
            "{kept}"
        );
    }
    let offline = Client::offline(&state, NOW, TufLimits::default()).unwrap();
    assert_eq!(offline.versions(), trusted.versions());
    assert_eq!(offline.resolve("fw.enc").unwrap().package.package(), &pkg);
    // A repository that is not there is a fetch error, and the trusted state stays.
    let before = std::fs::read(state.join("timestamp.json")).unwrap();
    let root = std::fs::read(state.join("root.json")).unwrap();
    let gone = Client::new(root, &format!("{base}/nothing"), &format!("{base}/targets"))
        .unwrap()
        .state_dir(&state);
    let e = gone.refresh(NOW).unwrap_err();
    assert_eq!(e.status(), Status::TufFetch, "{e}");
    assert_eq!(std::fs::read(state.join("timestamp.json")).unwrap(), before);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The core's own check of a TUF target (`ota_core::tuf::verify_target`), on the files a real
/// repository wrote: it verifies as written, and refuses an edited target, a signature
/// dropped, a key the root does not give the targets role, and a target that is not there.
#[test]
fn the_core_checks_the_targets_role_itself() {
    use ota_core::tuf::{ChainVersions, TufTargetError, verify_target};
    let dir = tmp("core-check");
    let name = "temp-sensor-fw/2.0.0/fw.enc";
    let (repo, pkg, _, _) = repo_with(&dir, name, 10_000);
    let meta = repo.metadata_dir();
    let root = std::fs::read(meta.join("1.root.json")).unwrap();
    // The latest targets: create wrote version 1 (empty), adding the package version 2.
    let targets = std::fs::read(meta.join("2.targets.json")).unwrap();
    let limits = ota_core::Limits::DEFAULT;
    let chain = ChainVersions {
        timestamp: 1,
        snapshot: 1,
    };

    let v = verify_target(&root, &targets, name, chain, &limits).unwrap();
    assert_eq!(v.package(), &pkg);
    assert_eq!(v.signed_by(), &[signing_key(3).public_key().key_id()]);

    let doc: serde_json::Value = serde_json::from_slice(&targets).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = doc.clone();
        f(&mut d);
        serde_json::to_vec(&d).unwrap()
    };
    // The target's length edited after signing: the signature no longer covers it.
    let edited = edit(&|d| d["signed"]["targets"][name]["length"] = 1.into());
    assert!(matches!(
        verify_target(&root, &edited, name, chain, &limits),
        Err(TufTargetError::ThresholdNotMet {
            valid: 0,
            threshold: 1
        })
    ));
    // No signature at all.
    let unsigned = edit(&|d| d["signatures"] = serde_json::json!([]));
    assert_eq!(
        verify_target(&root, &unsigned, name, chain, &limits)
            .unwrap_err()
            .status(),
        Status::TufThresholdNotMet
    );
    // The same signature presented under the key id of the root's own key: not a targets key.
    let root_doc: serde_json::Value = serde_json::from_slice(&root).unwrap();
    let root_keyid = root_doc["signed"]["roles"]["root"]["keyids"][0].clone();
    let wrong_key = edit(&|d| d["signatures"][0]["keyid"] = root_keyid.clone());
    assert!(matches!(
        verify_target(&root, &wrong_key, name, chain, &limits),
        Err(TufTargetError::ThresholdNotMet { valid: 0, .. })
    ));
    // A target the metadata does not list.
    assert!(matches!(
        verify_target(&root, &targets, "other/1.0.0/fw.enc", chain, &limits),
        Err(TufTargetError::TargetNotFound { .. })
    ));
    // Malformed metadata names the field.
    let e = verify_target(b"{}", &targets, name, chain, &limits).unwrap_err();
    assert_eq!(e.to_string(), "root metadata: signed: missing");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The device of the agent tests: a sensor running 1.2.0 whose agent trusts no DSSE key of
/// this repository (key 9), so only the TUF route can bring it a package.
fn sensor_device() -> ota_tests::device::Device {
    use ota_tests::device::{Device, config, healthy};
    let profile = ota_core::DeviceProfile::from_json(
        br#"{"device_id":"dev_8f3a","device_type":"temp-sensor","hardware_profile":"acme-sensor-v2","arch":"armv7",
             "installed":{"temp-sensor-fw":"1.2.0"}}"#,
    )
    .unwrap();
    let trusted = [signing_key(9).public_key()].into_iter().collect();
    Device::new(config(profile, trusted), b"firmware 1.2.0", healthy())
}

#[test]
fn a_tuf_verified_package_drives_the_agent_through_install_and_commit() {
    use ota_core::agent::{AgentError, AgentState, Rejection};
    use ota_core::assignment::{Assignment, Proof};
    use ota_core::report::ReportStatus;
    use ota_tests::device::in_order;

    let dir = tmp("agent");
    let size = 300_000;
    let (repo, _, _, artifact) = repo_with(&dir, "temp-sensor-fw/2.0.0/fw.enc", size);
    let plain = ota_tests::noise(size, size as u64 + 1);
    let trusted = client(&repo, &dir.join("state"))
        .refresh(NOW + 1000)
        .unwrap();
    let package = trusted
        .resolve("temp-sensor-fw/2.0.0/fw.enc")
        .unwrap()
        .package;

    // The control plane's assignment names the target; it survives its JSON form.
    let a = Assignment::new(
        &package,
        ota_tests::seal_key(),
        Some("rol_4c7e".parse().unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(
        a.proof,
        Proof::Tuf {
            target: "temp-sensor-fw/2.0.0/fw.enc".into()
        }
    );
    let json = a.to_json();
    assert!(
        json.contains(r#""tuf_target":"temp-sensor-fw/2.0.0/fw.enc""#)
            && !json.contains("envelope"),
        "{json}"
    );
    let a = Assignment::from_json(json.as_bytes(), &ota_core::Limits::default()).unwrap();

    // Without the package the TUF client verified, the agent refuses it.
    let mut d = sensor_device();
    let e = d.assign(a.clone()).unwrap_err();
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::Unverified { target }) if target == "temp-sensor-fw/2.0.0/fw.enc"),
        "{e:?}"
    );

    // With it: install, swap, probe, commit.
    d.assign_verified(a.clone(), package.clone()).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), plain);
    assert_eq!(d.agent().state(), AgentState::Idle);
    assert_eq!(
        d.agent().installed("temp-sensor-fw").unwrap().to_string(),
        "2.0.0"
    );
    let r = d.disk.reports.last().unwrap();
    assert_eq!(r.status, ReportStatus::Success);
    assert_eq!(r.rollout_id.as_ref().unwrap().as_str(), "rol_4c7e");

    // A power cut mid-download: the host resolves the target again and restores the agent
    // with it; the download resumes and commits.
    let mut d = sensor_device();
    d.assign_verified(a.clone(), package.clone()).unwrap();
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    for _ in 0..2 {
        let (o, data) = in_order(&mut d.wanted, &artifact).unwrap();
        d.chunk(o, &data).unwrap();
    }
    d.power_cut();
    let again = trusted
        .resolve("temp-sensor-fw/2.0.0/fw.enc")
        .unwrap()
        .package;
    d.boot_with(again).unwrap();
    assert_eq!(d.agent().state(), AgentState::Downloading);
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), plain);
    assert_eq!(d.disk.reports.last().unwrap().status, ReportStatus::Success);

    // Restarted without it, the agent cannot verify the target again: the update fails
    // before anything was swapped, and the device stays on its version.
    let mut d = sensor_device();
    d.assign_verified(a, package).unwrap();
    d.drain(&mut budget).unwrap();
    d.power_cut();
    d.boot();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), b"firmware 1.2.0");
    let r = d.disk.reports.last().unwrap();
    assert_eq!(r.status, ReportStatus::Failure);
    assert!(
        r.reason.as_deref().unwrap().contains("was not verified"),
        "{r:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
