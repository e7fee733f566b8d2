use super::*;
use ed25519_dalek::Signer;
use serde_json::{Value, json};

const NOW: UnixMs = UnixMs(1_776_211_200_000); // 2026-04-15
const EXPIRES: &str = "2027-01-01T00:00:00Z";

fn signed(key: &ed25519_dalek::SigningKey, keyid: &str, body: Value) -> Vec<u8> {
    let sig = key.sign(&metadata::canonical(&body));
    serde_json::to_vec(&json!({
        "signed": body,
        "signatures": [{"keyid": keyid, "sig": hex::encode(sig.to_bytes())}],
    }))
    .unwrap()
}

/// A repository with one Ed25519 key for every role: root, timestamp, snapshot, targets.
fn repo() -> [Vec<u8>; 4] {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let id = "k1";
    let role = json!({"keyids": [id], "threshold": 1});
    let root = json!({
        "_type": "root", "spec_version": "1.0.31", "version": 1, "expires": EXPIRES,
        "consistent_snapshot": false,
        "keys": {id: {"keytype": "ed25519", "scheme": "ed25519",
                      "keyval": {"public": hex::encode(key.verifying_key().to_bytes())}}},
        "roles": {"root": role, "timestamp": role, "snapshot": role, "targets": role},
    });
    let targets = json!({"_type": "targets", "spec_version": "1.0.31", "version": 1,
        "expires": EXPIRES, "targets": {}});
    let snapshot = json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 1,
        "expires": EXPIRES, "meta": {"targets.json": {"version": 1}}});
    let timestamp = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1,
        "expires": EXPIRES, "meta": {"snapshot.json": {"version": 1}}});
    [root, timestamp, snapshot, targets].map(|b| signed(&key, id, b))
}

fn fetch(u: &mut Updater) -> String {
    match u.poll() {
        Some(Output::Fetch { url_path, .. }) => url_path,
        other => panic!("expected a fetch, got {other:?}"),
    }
}

fn load(u: &mut Updater) -> String {
    match u.poll() {
        Some(Output::Load { role_file }) => role_file,
        other => panic!("expected a load, got {other:?}"),
    }
}

#[test]
fn a_refresh_asks_in_the_specification_order_and_persists_each_role() {
    let [root, timestamp, snapshot, targets] = repo();
    let mut u = Updater::new(&root, Config::default()).unwrap();
    u.handle(Input::Refresh, NOW).unwrap();
    assert_eq!(fetch(&mut u), "2.root.json");
    let not_found = |url_path: &str| Input::FetchFailed {
        url_path: url_path.into(),
        not_found: true,
        detail: "404".into(),
    };
    u.handle(not_found("2.root.json"), NOW).unwrap();
    assert_eq!(load(&mut u), "timestamp.json");
    let none = |role_file: &str| Input::Loaded {
        role_file: role_file.into(),
        bytes: None,
    };
    u.handle(none("timestamp.json"), NOW).unwrap();
    assert_eq!(fetch(&mut u), "timestamp.json");
    let fetched = |url_path: &str, bytes: &[u8]| Input::Fetched {
        url_path: url_path.into(),
        bytes: bytes.to_vec(),
    };
    u.handle(fetched("timestamp.json", &timestamp), NOW)
        .unwrap();
    assert!(
        matches!(u.poll(), Some(Output::Persist { role_file, .. }) if role_file == "timestamp.json")
    );
    assert_eq!(load(&mut u), "snapshot.json");
    u.handle(none("snapshot.json"), NOW).unwrap();
    assert_eq!(fetch(&mut u), "snapshot.json");
    u.handle(fetched("snapshot.json", &snapshot), NOW).unwrap();
    assert!(
        matches!(u.poll(), Some(Output::Persist { role_file, .. }) if role_file == "snapshot.json")
    );
    assert_eq!(load(&mut u), "targets.json");
    // An answer to something not asked for is refused, and changes nothing.
    assert!(matches!(
        u.handle(fetched("targets.json", &targets), NOW),
        Err(UpdateError::Misuse { .. })
    ));
    u.handle(none("targets.json"), NOW).unwrap();
    assert_eq!(fetch(&mut u), "targets.json");
    u.handle(fetched("targets.json", &targets), NOW).unwrap();
    assert!(
        matches!(u.poll(), Some(Output::Persist { role_file, .. }) if role_file == "targets.json")
    );
    assert_eq!(u.poll(), Some(Output::Refreshed));
    assert_eq!(u.poll(), None);
    assert_eq!(u.versions(), [1, 1, 1, 1]);
    assert_eq!(u.poll_timeout(), None);
    // A second refresh of the same updater is refused.
    assert!(matches!(
        u.handle(Input::Refresh, NOW),
        Err(UpdateError::Misuse { .. })
    ));
    // An unsafe target name is refused before anything is asked for.
    u.handle(
        Input::FindTarget {
            name: "../x".into(),
        },
        NOW,
    )
    .unwrap();
    assert!(matches!(
        u.poll(),
        Some(Output::Failed(UpdateError::UnsafeTargetName { .. }))
    ));
}

#[test]
fn the_final_root_is_expired_from_the_instant_it_names() {
    let [root, ..] = repo();
    let mut u = Updater::new(&root, Config::default()).unwrap();
    let later = UnixMs(1_900_000_000_000); // 2030
    u.handle(Input::Refresh, later).unwrap();
    assert_eq!(fetch(&mut u), "2.root.json");
    u.handle(
        Input::FetchFailed {
            url_path: "2.root.json".into(),
            not_found: true,
            detail: "404".into(),
        },
        later,
    )
    .unwrap();
    // The root itself has expired by then.
    assert!(
        matches!(u.poll(), Some(Output::Failed(UpdateError::Expired { role, .. })) if role == "root")
    );
    let mut u = Updater::new(&root, Config::default()).unwrap();
    let late = UnixMs(1_798_761_600_000 - 1); // just before 2027-01-01
    u.handle(Input::Refresh, late).unwrap();
    fetch(&mut u);
    u.handle(
        Input::FetchFailed {
            url_path: "2.root.json".into(),
            not_found: true,
            detail: "404".into(),
        },
        late + 1,
    )
    .unwrap();
    // At exactly the expiry instant the root has expired.
    assert!(matches!(
        u.poll(),
        Some(Output::Failed(UpdateError::Expired { .. }))
    ));
}
