//! The agent can be cancelled (issue 15, item 4), end to end: a real `ota-server` on loopback
//! and the `ota-agent` binary as a process. A rollout aborted with `forced_cancel` while the
//! device downloads ends the download (the daemon reads its rollout's `ota_cancel` record and
//! feeds the agent `Input::Cancel`); an artifact that disappears mid-download ends it at the
//! download deadline (`download_deadline_ms`). Either way the device stays on its previous
//! version and takes its next assignment.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FACTORY, World, active_payload, directory_agent, tmp};
use serde_json::{Value, json};

/// A bandwidth cap that makes the first package's download last about ten seconds.
const SLOW: &str = "bandwidth_bytes_per_sec = 200000";
/// The first package: 2 MB, incompressible.
const BIG: usize = 2_000_000;

/// The daemon, running until killed; its log goes to `log`.
struct Agent(Child);

impl Agent {
    fn start(config: &Path, log: &Path) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_ota-agent"))
            .arg("--config")
            .arg(config)
            .args(["--log", "info"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Device {
    id: String,
    profile: String,
    config: PathBuf,
    state: PathBuf,
    root: PathBuf,
    log: PathBuf,
}

async fn device(w: &World, dir: &Path, id: &str, extra: &str) -> Device {
    let profile = format!("prof-{id}");
    w.profile(&profile).await;
    let d = dir.join(id);
    let enroll = w.enrollment_token();
    let (toml, _) = directory_agent(&d, &w.base, id, &profile, &enroll, "/bin/true", extra);
    let config = d.join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let (root, state) = (d.join("app"), d.join("state"));
    Device {
        id: id.to_string(),
        profile,
        config,
        state,
        log: d.join("agent.log"),
        root,
    }
}

fn record(dev: &Device) -> Value {
    std::fs::read(dev.state.join("record.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Waits (at most `limit`) until `done` holds; panics with the agent's log and record.
async fn until<F, Fut>(dev: &Device, what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{}: {what} did not happen within {limit:?}\nrecord: {}\nlog:\n{}",
        dev.id,
        record(dev),
        std::fs::read_to_string(&dev.log).unwrap_or_default()
    );
}

/// Waits (at most 30 s) until the server knows `dev`: its daemon has registered.
async fn until_registered(w: &World, dev: &Device) {
    until(dev, "registration", Duration::from_secs(30), || async {
        w.call("GET", &format!("/api/v1/devices/{}", dev.id), None)
            .await
            .0
            == 200
    })
    .await;
}

/// A rollout of `package_id` to the device's profile, stopping devices in flight when it
/// stops.
async fn forced_rollout(w: &World, package_id: &str, profile: &str) -> String {
    let (code, v) = w
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            Some(&json!({
                "package_id": package_id, "target_profile_id": profile,
                "canary_percent": 100, "failure_threshold_percent": 100,
                "in_flight": "forced_cancel",
            })),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    v["rollout_id"].as_str().unwrap().to_string()
}

/// The device runs `version` and its active slot holds `plain`; the next rollout (of `next`,
/// whose plaintext is `next_plain`) updates it.
async fn takes_the_next_assignment(
    w: &World,
    dev: &Device,
    factory: &[u8],
    next: &str,
    next_plain: &[u8],
) {
    assert_eq!(
        active_payload(&dev.root),
        ("a".to_string(), factory.to_vec())
    );
    assert_eq!(record(dev)["installed"][common::FW], FACTORY);
    let rid = w.rollout(next, &dev.profile).await;
    until(dev, "the next update", Duration::from_secs(60), || async {
        w.device_state(&rid, &dev.id).await == "succeeded"
    })
    .await;
    assert_eq!(active_payload(&dev.root).1, next_plain);
    assert_eq!(w.installed(&dev.id).await, "2.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_rollout_ends_the_download_and_the_device_takes_the_next_assignment() {
    let dir = tmp("cancel");
    let w = World::start(&dir, 200).await;
    let (big, _) = w.upload("2.0.0", BIG).await;
    let (next, next_plain) = w.upload("2.1.0", 100_000).await;
    let dev = device(&w, &dir, "dev-cancel", SLOW).await;
    let factory = active_payload(&dev.root).1;
    let _agent = Agent::start(&dev.config, &dev.log);
    // Registered and idle, then the slow update.
    until_registered(&w, &dev).await;
    let rid = forced_rollout(&w, &big, &dev.profile).await;
    until(&dev, "the download", Duration::from_secs(30), || async {
        w.device_state(&rid, &dev.id).await == "in_progress"
            && record(&dev)["state"] == "downloading"
    })
    .await;
    let (code, v) = w
        .call("POST", &format!("/api/v1/ota/rollouts/{rid}/abort"), None)
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(w.device_state(&rid, &dev.id).await, "cancelled");
    // The daemon hears of the cancel and stops, long before the download could finish.
    until(&dev, "the cancel", Duration::from_secs(30), || async {
        record(&dev)["state"] == "idle"
    })
    .await;
    let log = std::fs::read_to_string(&dev.log).unwrap_or_default();
    assert!(log.contains("update cancelled"), "{log}");
    // Its failure report, after the cancel, is recorded and changes nothing.
    let (_, audit) = w
        .call("GET", &format!("/api/v1/ota/rollouts/{rid}/audit"), None)
        .await;
    assert!(
        audit.to_string().contains("cancelled by the control plane"),
        "{audit}"
    );
    assert_eq!(w.device_state(&rid, &dev.id).await, "cancelled");
    takes_the_next_assignment(&w, &dev, &factory, &next, &next_plain).await;
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_that_disappears_ends_the_download_at_its_deadline() {
    let dir = tmp("vanished");
    let w = World::start(&dir, 200).await;
    let (big, _) = w.upload("2.0.0", BIG).await;
    let (next, next_plain) = w.upload("2.1.0", 100_000).await;
    let dev = device(
        &w,
        &dir,
        "dev-vanished",
        &format!("{SLOW}\ndownload_deadline_ms = 3000"),
    )
    .await;
    let factory = active_payload(&dev.root).1;
    let _agent = Agent::start(&dev.config, &dev.log);
    until_registered(&w, &dev).await;
    let rid = w.rollout(&big, &dev.profile).await;
    until(&dev, "the download", Duration::from_secs(30), || async {
        record(&dev)["state"] == "downloading"
    })
    .await;
    // The artifact disappears from the server's store; the assignment stays.
    let stored = dir.join("data/artifacts/acme").join(format!("{big}.enc"));
    std::fs::remove_file(&stored).unwrap();
    until(&dev, "the deadline", Duration::from_secs(30), || async {
        w.device_state(&rid, &dev.id).await == "failed"
    })
    .await;
    // (The report goes out before the agent's record says idle.)
    until(&dev, "idle", Duration::from_secs(30), || async {
        record(&dev)["state"] == "idle"
    })
    .await;
    takes_the_next_assignment(&w, &dev, &factory, &next, &next_plain).await;
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
