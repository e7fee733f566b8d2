//! The TUF specification's client workflow (section 5), one test per behaviour, against
//! repositories python-tuf's metadata API writes (`tuf_spec/make.py`, one scenario per
//! behaviour, named after it): the independent repository writer. `OTA_SKIP_PYTHON_TUF=1`
//! skips these tests.
//!
//! Most drive the core's sans-IO [`Updater`] directly over the scenario's directory with a
//! small driver that records every path fetched (to check what is *not* fetched) and every
//! file persisted; the rest go through the host's client, as the CLI and the C ABI do.

use std::path::{Path, PathBuf};
use std::process::Command;

use ota_core::UnixMs;
use ota_core::tuf::{Config, Input, Output, UpdateError, Updater};
use ota_host::tuf::client::Client;

/// 2026-04-15T00:00:00Z, as make.py's NOW.
const NOW: UnixMs = UnixMs(1_776_211_200_000);

fn skip() -> bool {
    std::env::var_os("OTA_SKIP_PYTHON_TUF").is_some()
}

/// Writes scenario `name` with python-tuf into a fresh directory.
fn scenario(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ota-tuf-spec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf_spec/make.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .arg(name)
        .arg(&dir)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "make.py {name} (pip install tuf; OTA_SKIP_PYTHON_TUF=1 skips this test) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(dir.join("root.json"), dir.join("state/root.json")).unwrap();
    dir
}

/// A client of a scenario: its state directory, and what it fetched.
struct Run {
    dir: PathBuf,
    fetched: Vec<String>,
    config: Config,
}

impl Run {
    fn new(dir: &Path) -> Run {
        Run {
            dir: dir.to_path_buf(),
            fetched: Vec::new(),
            config: Config::default(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn updater(&self) -> Updater {
        Updater::new(
            &std::fs::read(self.state().join("root.json")).unwrap(),
            self.config,
        )
        .unwrap()
    }

    /// Feeds `input`, then answers the updater from step `step` of the repository and the
    /// state directory until it concludes.
    fn drive(&mut self, u: &mut Updater, input: Input, step: usize) -> Output {
        let repo = self.dir.join(format!("step{step}/metadata"));
        let state = self.state();
        u.handle(input, NOW).unwrap();
        for _ in 0..10_000 {
            let next = match u.poll().expect("the updater concludes") {
                Output::Load { role_file } => Input::Loaded {
                    bytes: std::fs::read(state.join(&role_file)).ok(),
                    role_file,
                },
                Output::Fetch { url_path, .. } => {
                    self.fetched.push(url_path.clone());
                    match std::fs::read(repo.join(&url_path)) {
                        Ok(bytes) => Input::Fetched { url_path, bytes },
                        Err(e) => Input::FetchFailed {
                            url_path,
                            not_found: true,
                            detail: e.to_string(),
                        },
                    }
                }
                Output::Persist { role_file, bytes } => {
                    assert!(!role_file.contains('/'), "{role_file} is a path");
                    std::fs::write(state.join(&role_file), bytes).unwrap();
                    continue;
                }
                concluded => return concluded,
            };
            u.handle(next, NOW).unwrap();
        }
        panic!("the updater did not conclude in 10 000 steps");
    }

    fn refresh(&mut self, step: usize) -> Output {
        self.fetched.clear();
        let mut u = self.updater();
        self.drive(&mut u, Input::Refresh, step)
    }

    /// A refresh then a search for `name`, from step 0.
    fn find(&mut self, name: &str) -> Output {
        self.fetched.clear();
        let mut u = self.updater();
        self.drive(&mut u, Input::FindTarget { name: name.into() }, 0)
    }

    fn state_file(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.state().join(name)).ok()
    }

    fn repo_file(&self, step: usize, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(format!("step{step}/metadata/{name}"))).unwrap()
    }

    /// The delegated roles fetched, in order (the top-level ones left out).
    fn roles_fetched(&self) -> Vec<String> {
        self.fetched
            .iter()
            .filter(|p| {
                !["root", "timestamp", "snapshot", "targets"]
                    .iter()
                    .any(|r| p.ends_with(&format!("{r}.json")))
            })
            .cloned()
            .collect()
    }
}

fn failed(out: Output) -> UpdateError {
    match out {
        Output::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn found_in(out: Output) -> String {
    match out {
        Output::Found(f) => f.role,
        other => panic!("expected a target, got {other:?}"),
    }
}

#[test]
fn persists_each_role_as_it_verifies() {
    if skip() {
        return;
    }
    let dir = scenario("persists_each_role_as_it_verifies");
    let mut run = Run::new(&dir);
    assert_eq!(run.refresh(0), Output::Refreshed);
    let snapshot_before = run.state_file("snapshot.json").unwrap();
    // Step 1: a new root and timestamp that verify, then a snapshot signed by a stranger.
    let e = failed(run.refresh(1));
    assert!(
        matches!(&e, UpdateError::UnknownKey { role, .. } if role == "snapshot"),
        "{e}"
    );
    assert_eq!(
        run.state_file("root.json").unwrap(),
        run.repo_file(1, "2.root.json")
    );
    assert_eq!(
        run.state_file("timestamp.json").unwrap(),
        run.repo_file(1, "timestamp.json")
    );
    assert_eq!(run.state_file("snapshot.json").unwrap(), snapshot_before);
}

#[test]
fn root_rotation_stops_at_a_root_with_too_few_signatures() {
    if skip() {
        return;
    }
    let dir = scenario("root_rotation_stops_at_a_root_with_too_few_signatures");
    let mut run = Run::new(&dir);
    assert_eq!(run.refresh(0), Output::Refreshed);
    let e = failed(run.refresh(1));
    assert!(
        matches!(e, UpdateError::RootRotation { version: 3, .. }),
        "{e}"
    );
    // Version 2 verified and is kept.
    assert_eq!(
        run.state_file("root.json").unwrap(),
        run.repo_file(1, "2.root.json")
    );
}

#[test]
fn root_rotation_to_an_expired_root() {
    if skip() {
        return;
    }
    let dir = scenario("root_rotation_to_an_expired_root");
    let mut run = Run::new(&dir);
    assert_eq!(run.refresh(0), Output::Refreshed);
    let e = failed(run.refresh(1));
    assert!(
        matches!(&e, UpdateError::Expired { role, .. } if role == "root"),
        "{e}"
    );
    // The chain was walked (version 2 kept), and nothing after the root was fetched.
    assert_eq!(
        run.state_file("root.json").unwrap(),
        run.repo_file(1, "2.root.json")
    );
    assert_eq!(run.fetched, ["2.root.json", "3.root.json"]);
}

#[test]
fn root_rotation_then_snapshot_not_found() {
    if skip() {
        return;
    }
    let dir = scenario("root_rotation_then_snapshot_not_found");
    let mut run = Run::new(&dir);
    assert_eq!(run.refresh(0), Output::Refreshed);
    let e = failed(run.refresh(1));
    assert!(
        matches!(&e, UpdateError::Fetch { url_path, .. } if url_path == "2.snapshot.json"),
        "{e}"
    );
    assert_eq!(
        run.state_file("root.json").unwrap(),
        run.repo_file(1, "2.root.json")
    );
    assert_eq!(
        run.state_file("timestamp.json").unwrap(),
        run.repo_file(1, "timestamp.json")
    );
}

#[test]
fn timestamp_content_changed_without_new_version() {
    if skip() {
        return;
    }
    let dir = scenario("timestamp_content_changed_without_new_version");
    let mut run = Run::new(&dir);
    assert_eq!(run.refresh(0), Output::Refreshed);
    let before = run.state_file("timestamp.json").unwrap();
    assert_ne!(before, run.repo_file(1, "timestamp.json"));
    // The changed timestamp is not used (the trusted one stays), not persisted, and the
    // snapshot it names is not fetched.
    assert_eq!(run.refresh(1), Output::Refreshed);
    assert_eq!(run.state_file("timestamp.json").unwrap(), before);
    assert_eq!(run.fetched, ["2.root.json", "timestamp.json"]);
}

#[test]
fn snapshot_version_does_not_match_url() {
    if skip() {
        return;
    }
    let dir = scenario("snapshot_version_does_not_match_url");
    let e = failed(Run::new(&dir).refresh(0));
    assert!(
        matches!(&e, UpdateError::VersionMismatch { role, expected: 2, got: 3, .. } if role == "snapshot"),
        "{e}"
    );
    assert_eq!(Run::new(&dir).state_file("snapshot.json"), None);
}

#[test]
fn snapshot_hash_mismatch() {
    if skip() {
        return;
    }
    let dir = scenario("snapshot_hash_mismatch");
    let e = failed(Run::new(&dir).refresh(0));
    assert!(
        matches!(&e, UpdateError::MetaMismatch { role, .. } if role == "snapshot"),
        "{e}"
    );
}

#[test]
fn targets_hash_mismatch() {
    if skip() {
        return;
    }
    let dir = scenario("targets_hash_mismatch");
    let run = &mut Run::new(&dir);
    let e = failed(run.refresh(0));
    assert!(
        matches!(&e, UpdateError::MetaMismatch { role, .. } if role == "targets"),
        "{e}"
    );
    assert_eq!(run.state_file("targets.json"), None);
    assert!(run.state_file("snapshot.json").is_some());
}

#[test]
fn incorrect_metadata_type() {
    if skip() {
        return;
    }
    let dir = scenario("incorrect_metadata_type");
    let e = failed(Run::new(&dir).refresh(0));
    assert!(
        matches!(&e, UpdateError::WrongType { role, found, .. } if role == "timestamp" && found == "snapshot"),
        "{e}"
    );
}

#[test]
fn expired_roles_are_refused_at_the_time_given() {
    if skip() {
        return;
    }
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let dir = scenario(&format!("expired_{role}"));
        let e = failed(Run::new(&dir).refresh(0));
        assert!(
            matches!(&e, UpdateError::Expired { role: r, .. } if r == role),
            "{role}: {e}"
        );
    }
}

#[test]
fn target_hashes_all_checked() {
    if skip() {
        return;
    }
    let dir = scenario("target_hashes_all_checked");
    let client = Client::new(
        std::fs::read(dir.join("root.json")).unwrap(),
        dir.join("step0/metadata").to_str().unwrap(),
        dir.join("step0/targets").to_str().unwrap(),
    )
    .unwrap();
    let t = client.refresh(NOW).unwrap();
    let mut got = Vec::new();
    t.download("good.txt", &mut got).unwrap();
    assert_eq!(got, b"good");
    // Its sha256 matches, its sha512 does not.
    let e = t.download("bad512.txt", &mut Vec::new()).unwrap_err();
    assert_eq!(e.status(), ota_core::Status::TufTargetMismatch, "{e}");
    assert!(e.to_string().contains("sha512"), "{e}");
}

#[test]
fn artifact_cache_skips_a_present_target() {
    if skip() {
        return;
    }
    let dir = scenario("target_hashes_all_checked");
    let client = Client::new(
        std::fs::read(dir.join("root.json")).unwrap(),
        dir.join("step0/metadata").to_str().unwrap(),
        dir.join("step0/targets").to_str().unwrap(),
    )
    .unwrap();
    let t = client.refresh(NOW).unwrap();
    let found = t.find("good.txt").unwrap();
    let path = dir.join("good.txt");
    assert!(!t.is_cached(&found, &path));
    std::fs::write(&path, b"good").unwrap();
    assert!(t.is_cached(&found, &path));
    std::fs::write(&path, b"evil").unwrap();
    assert!(!t.is_cached(&found, &path), "same length, other bytes");
    std::fs::write(&path, b"good!").unwrap();
    assert!(!t.is_cached(&found, &path), "longer");
}

#[test]
fn delegations_are_searched_pre_order_depth_first_loading_only_what_is_needed() {
    if skip() {
        return;
    }
    let dir = scenario("delegation_tree");
    // deep.txt is in C (under A) and in B: A's subtree comes first, and B is never fetched.
    let mut run = Run::new(&dir);
    assert_eq!(found_in(run.find("deep.txt")), "C");
    assert_eq!(run.roles_fetched(), ["1.A.json", "1.C.json"]);
    // Each visited role was persisted, and only those.
    assert!(run.state_file("A.json").is_some() && run.state_file("C.json").is_some());
    assert_eq!(run.state_file("B.json"), None);
    // A second search loads them from the state directory: nothing fetched but the
    // timestamp.
    assert_eq!(found_in(run.find("deep.txt")), "C");
    assert_eq!(run.roles_fetched(), Vec::<String>::new());
    // b.txt: A, then C (covers *.txt), then B.
    let mut run = Run::new(&scenario("delegation_tree"));
    assert_eq!(found_in(run.find("b.txt")), "B");
    assert_eq!(run.roles_fetched(), ["1.A.json", "1.C.json", "1.B.json"]);
}

#[test]
fn a_terminating_delegation_ends_the_search() {
    if skip() {
        return;
    }
    let mut run = Run::new(&scenario("delegation_tree"));
    let e = failed(run.find("term/x"));
    assert!(matches!(e, UpdateError::TargetNotFound { .. }), "{e}");
    assert_eq!(
        run.roles_fetched(),
        ["1.T.json"],
        "U, after the terminating T, is not visited"
    );
}

#[test]
fn path_patterns_star_does_not_match_a_slash() {
    if skip() {
        return;
    }
    let mut run = Run::new(&scenario("delegation_tree"));
    let e = failed(run.find("dir/sub/f"));
    assert!(matches!(e, UpdateError::TargetNotFound { .. }), "{e}");
    assert_eq!(
        run.roles_fetched(),
        Vec::<String>::new(),
        "dir/* does not cover dir/sub/f"
    );
}

#[test]
fn path_hash_prefixes_pick_the_role() {
    if skip() {
        return;
    }
    let mut run = Run::new(&scenario("delegation_tree"));
    assert_eq!(found_in(run.find("hashed.txt")), "H");
    assert_eq!(
        run.roles_fetched(),
        ["1.A.json", "1.C.json", "1.B.json", "1.H.json"]
    );
}

#[test]
fn the_search_visits_at_most_max_delegations_roles() {
    if skip() {
        return;
    }
    let dir = scenario("delegation_chain_longer_than_max");
    let mut run = Run::new(&dir);
    assert_eq!(found_in(run.find("near.txt")), "R2");
    let e = failed(run.find("far.txt"));
    assert!(matches!(e, UpdateError::TargetNotFound { .. }), "{e}");
    assert_eq!(
        run.roles_fetched().len(),
        32 - 3,
        "R3..R31 (R0..R2 were loaded locally)"
    );
    run.config.max_delegations = 64;
    assert_eq!(found_in(run.find("far.txt")), "R39");
}

#[test]
fn a_delegated_role_missing_from_the_snapshot_is_an_error() {
    if skip() {
        return;
    }
    let mut run = Run::new(&scenario("delegated_role_missing_from_snapshot"));
    let e = failed(run.find("a.txt"));
    assert!(
        matches!(&e, UpdateError::NotInSnapshot { role } if role == "A"),
        "{e}"
    );
    assert_eq!(run.roles_fetched(), Vec::<String>::new());
}

#[test]
fn role_names_that_need_quoting_are_percent_encoded_and_stored_as_one_file() {
    if skip() {
        return;
    }
    let dir = scenario("role_names_that_need_quoting");
    let mut run = Run::new(&dir);
    let mut fetched = Vec::new();
    for (i, role) in ["?", "#", "/delegatedrole", "../delegatedrole"]
        .iter()
        .enumerate()
    {
        assert_eq!(found_in(run.find(&format!("t{i}"))), *role);
        fetched.extend(run.roles_fetched());
    }
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "1.%23.json",
            "1.%2Fdelegatedrole.json",
            "1.%3F.json",
            "1...%2Fdelegatedrole.json"
        ]
    );
    for file in [
        "%3F.json",
        "%23.json",
        "%2Fdelegatedrole.json",
        "..%2Fdelegatedrole.json",
    ] {
        assert!(run.state_file(file).is_some(), "{file}");
    }
    assert!(!dir.join("delegatedrole.json").exists());
    assert!(!dir.join("state/delegatedrole.json").exists());
}

#[test]
fn consistent_snapshot_targets_are_fetched_as_dir_hash_name() {
    if skip() {
        return;
    }
    let dir = scenario("consistent_snapshot_targets_by_hash");
    let mut run = Run::new(&dir);
    let Output::Found(found) = run.find("dir/sub/file.txt") else {
        panic!("not found");
    };
    let sha256 = found.target.hashes.get("sha256").unwrap().to_string();
    assert_eq!(found.url_path, format!("dir/sub/{sha256}.file.txt"));
    // Through the host's client, which fetches just that.
    let client = Client::new(
        std::fs::read(dir.join("root.json")).unwrap(),
        dir.join("step0/metadata").to_str().unwrap(),
        dir.join("step0/targets").to_str().unwrap(),
    )
    .unwrap();
    let mut got = Vec::new();
    client
        .refresh(NOW)
        .unwrap()
        .download("dir/sub/file.txt", &mut got)
        .unwrap();
    assert_eq!(got, b"a target in a directory");
}

#[test]
fn ecdsa_and_rsa_keys_sign_roles() {
    if skip() {
        return;
    }
    let dir = scenario("ecdsa_and_rsa_keys");
    let mut run = Run::new(&dir);
    let mut u = run.updater();
    assert_eq!(run.drive(&mut u, Input::Refresh, 0), Output::Refreshed);
    assert_eq!(u.timestamp().unwrap().signers.len(), 1, "ECDSA P-256");
    assert_eq!(u.snapshot().unwrap().signers.len(), 1, "RSA-PSS-SHA256");
    assert_eq!(
        u.targets("targets").unwrap().signers.len(),
        1,
        "ECDSA P-256"
    );
}
