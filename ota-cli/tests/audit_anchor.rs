//! `ota audit verify` calls a trail intact only when it is anchored on its head (issue 15,
//! item 21): an empty trail fails, and a trail cut short is never called intact.

use ota_core::UnixMs;
use ota_core::audit::{AuditRecord, Cause, Chain};
use ota_core::rollout::{Effect, Input};

struct Run {
    code: i32,
    stdout: String,
}

fn verify(args: &[&str]) -> Run {
    let out = assert_cmd::cargo::cargo_bin_cmd!("ota")
        .args(["audit", "verify"])
        .args(args)
        .output()
        .expect("running ota");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn trail(n: u64) -> Vec<AuditRecord> {
    let mut c = Chain::default();
    (0..n)
        .map(|i| {
            c.append(
                UnixMs(1000 + i),
                Cause::Timer,
                Input::Tick,
                vec![Effect::Sent { commands: i }],
            )
        })
        .collect()
}

fn write(dir: &std::path::Path, name: &str, records: &[AuditRecord]) -> String {
    let path = dir.join(name);
    let text: String = records.iter().map(|r| r.to_json() + "\n").collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_empty_trail_is_not_reported_intact() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.jsonl", &[]);
    let r = verify(&[&empty]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("empty"), "{}", r.stdout);
    assert!(!r.stdout.contains("intact"), "{}", r.stdout);
    let head = trail(1)[0].hash;
    let r = verify(&[&empty, "--head", &format!("0:{head}")]);
    assert_eq!(r.code, 1, "{}", r.stdout);
}

#[test]
fn a_truncated_trail_is_never_reported_intact() {
    let dir = tempfile::tempdir().unwrap();
    let whole = trail(5);
    let head = format!("4:{}", whole[4].hash);
    let short = write(dir.path(), "short.jsonl", &whole[..3]);
    // Without a head the records link, and the answer says the trail is not anchored.
    let r = verify(&[&short]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("intact"), "{}", r.stdout);
    assert!(r.stdout.contains("not anchored"), "{}", r.stdout);
    let r = verify(&[&short, "--json"]);
    let j: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (j["anchored"].as_bool(), j["intact"].as_bool()),
        (Some(false), Some(false))
    );
    // Against its head, the cut is caught.
    let r = verify(&[&short, "--head", &head]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    // The whole trail, anchored, is intact.
    let full = write(dir.path(), "full.jsonl", &whole);
    let r = verify(&[&full, "--head", &head]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("chain intact"), "{}", r.stdout);
}
