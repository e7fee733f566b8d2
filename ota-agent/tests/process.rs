//! The `ota-agent` binary as a process against a real `ota-server` on loopback: `kill -9` at
//! random points of an update, 100 times, each ending on the new version after restarts with
//! `--once`; SIGTERM stops it at a safe point (mid-download, or between polls) with exit 0.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, active_payload, directory_agent, tmp};

/// Kill iterations, and the bound on the whole test.
const KILLS: usize = 100;
const KILL_TEST_LIMIT: Duration = Duration::from_secs(420);

fn agent(config: &Path, once: bool) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ota-agent"));
    c.arg("--config").arg(config).args(["--log", "warn"]);
    if once {
        c.arg("--once");
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the process, at most `limit`: (success, stdout, stderr).
async fn finish(mut child: Child, limit: Duration) -> (bool, String, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                format!("{status}: {}", String::from_utf8_lossy(&out.stderr)),
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ota-agent did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn record_state(state: &Path) -> String {
    std::fs::read(state.join("record.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

struct Device {
    id: String,
    config: PathBuf,
    state: PathBuf,
    root: PathBuf,
}

/// A device with its factory slot and its configuration file; its profile exists.
async fn device(w: &World, dir: &Path, id: &str, probe: &str, extra: &str) -> Device {
    let profile = format!("prof-{id}");
    w.profile(&profile).await;
    let d = dir.join(id);
    let enroll = w.enrollment_token();
    let (toml, _) = directory_agent(&d, &w.base, id, &profile, &enroll, probe, extra);
    let toml = toml.replace("failures_tolerated = 0", "failures_tolerated = 3");
    let config = d.join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let (root, state) = (d.join("app"), d.join("state"));
    Device {
        id: id.to_string(),
        config,
        state,
        root,
    }
}

/// Runs `--once` until a cycle finds nothing left to do (at most 10 runs).
async fn settle(w: &World, dev: &Device) -> Vec<String> {
    let mut outputs = Vec::new();
    for _ in 0..10 {
        let (ok, out, err) = finish(agent(&dev.config, true), Duration::from_secs(60)).await;
        outputs.push(format!("{ok} {} {}", out.trim(), err.trim()));
        if ok && out.trim() == "idle: nothing assigned" {
            return outputs;
        }
    }
    let rpc = w
        .call("GET", &format!("/api/v1/devices/{}/rpc", dev.id), None)
        .await;
    let (_, list) = w.call("GET", "/api/v1/ota/rollouts", None).await;
    let rid = list["rollouts"].as_array().unwrap().last().unwrap()["rollout_id"]
        .as_str()
        .unwrap()
        .to_string();
    let audit = w
        .call("GET", &format!("/api/v1/ota/rollouts/{rid}/audit"), None)
        .await;
    let metrics = w
        .http
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    panic!(
        "{}: never settled: {outputs:#?}\nrecord: {}\nrpc: {rpc:?}\naudit: {audit:?}\nmetrics: {metrics}",
        dev.id,
        std::fs::read_to_string(dev.state.join("record.json")).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_always_ends_on_the_new_version() {
    let started = Instant::now();
    let dir = tmp("kill9");
    let w = World::start(&dir, 200).await;
    let (pkg, plain) = w.upload("2.0.0", 1_500_000).await;
    // xorshift, seeded: the kill delays are the same on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut window = Duration::from_millis(500);
    // Where the kills landed: the record's state right after each.
    let mut killed_in: std::collections::BTreeMap<String, usize> = Default::default();
    for i in 0..=KILLS {
        assert!(
            started.elapsed() < KILL_TEST_LIMIT,
            "{i} iterations took longer than {KILL_TEST_LIMIT:?}"
        );
        let dev = device(&w, &dir, &format!("dev-kill-{i:03}"), "/bin/true", "").await;
        // Registers, finds nothing; then the rollout.
        let (ok, out, err) = finish(agent(&dev.config, true), Duration::from_secs(60)).await;
        assert!(ok && out.trim() == "idle: nothing assigned", "{out} {err}");
        let rid = w.rollout(&pkg, &format!("prof-{}", dev.id)).await;
        if i == 0 {
            // The first update runs whole, to learn how long one takes: the kills land
            // anywhere within it.
            let t = Instant::now();
            let (ok, out, err) = finish(agent(&dev.config, true), Duration::from_secs(60)).await;
            assert!(ok && out.starts_with("updated: "), "{out} {err}");
            window = t.elapsed().mul_f64(1.2);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let delay = Duration::from_micros(x % u64::try_from(window.as_micros()).unwrap());
            let mut child = agent(&dev.config, true);
            tokio::time::sleep(delay).await;
            let _ = child.kill();
            let _ = child.wait();
            *killed_in.entry(record_state(&dev.state)).or_default() += 1;
        }
        let outputs = settle(&w, &dev).await;
        assert_eq!(
            active_payload(&dev.root),
            ("b".into(), plain.clone()),
            "{}: {outputs:#?}",
            dev.id
        );
        assert_eq!(record_state(&dev.state), "idle", "{}", dev.id);
        assert_eq!(
            w.device_state(&rid, &dev.id).await,
            "succeeded",
            "{}: {outputs:#?}",
            dev.id
        );
        assert_eq!(w.installed(&dev.id).await, "2.0.0");
        let _ = std::fs::remove_dir_all(dir.join(&dev.id));
    }
    eprintln!("kills by the record's state after them: {killed_in:?}");
    // The kills landed before, during and after the download.
    assert!(killed_in.contains_key("downloading"), "{killed_in:?}");
    assert!(
        killed_in.get("idle").is_some_and(|n| *n < KILLS),
        "{killed_in:?}"
    );
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_at_a_safe_point_and_the_download_resumes() {
    let dir = tmp("sigterm");
    let w = World::start(&dir, 200).await;
    let (pkg, plain) = w.upload("2.0.0", 1_500_000).await;

    // Between polls: a device with nothing to do stops at once.
    let idle = device(&w, &dir, "dev-term-idle", "/bin/true", "").await;
    assert!(!idle.state.join("credential").exists());
    let started = Instant::now();
    let child = agent(&idle.config, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !idle.state.join("credential").exists() {
        assert!(Instant::now() < deadline, "the agent never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = started.elapsed();
    sigterm(&child);
    let (ok, _, err) = finish(child, Duration::from_secs(10)).await;
    assert!(ok, "{err} (SIGTERM {waited:?} after the start)");

    // Mid-download: a capped download (about 8 s) stops at the next chunk boundary.
    let dev = device(
        &w,
        &dir,
        "dev-term-busy",
        "/bin/true",
        "bandwidth_bytes_per_sec = 200000",
    )
    .await;
    let (ok, out, err) = finish(agent(&dev.config, true), Duration::from_secs(60)).await;
    assert!(ok && out.trim() == "idle: nothing assigned", "{out} {err}");
    let rid = w.rollout(&pkg, &format!("prof-{}", dev.id)).await;
    let child = agent(&dev.config, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while record_state(&dev.state) != "downloading" {
        assert!(Instant::now() < deadline, "the download never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&child);
    let (ok, _, err) = finish(child, Duration::from_secs(10)).await;
    assert!(ok, "{err}");
    // It stopped with the download unfinished and the factory version running, and its
    // record keeps the chunks verified so far (about 300 KB of them): they are not fetched
    // again.
    assert_eq!(record_state(&dev.state), "downloading");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev.state.join("record.json")).unwrap()).unwrap();
    let verified = record["update"]["download"]["verified"]
        .as_str()
        .unwrap_or_default();
    assert!(
        verified.chars().any(|c| c != '0'),
        "no chunk recorded as verified: {record}"
    );
    assert_eq!(active_payload(&dev.root).0, "a");
    assert_eq!(w.device_state(&rid, &dev.id).await, "in_progress");
    // Without the cap, the next start finishes it.
    let text = std::fs::read_to_string(&dev.config)
        .unwrap()
        .replace("bandwidth_bytes_per_sec = 200000", "");
    std::fs::write(&dev.config, text).unwrap();
    let (ok, out, err) = finish(agent(&dev.config, true), Duration::from_secs(60)).await;
    assert!(ok && out.starts_with("updated: "), "{out} {err}");
    assert_eq!(active_payload(&dev.root), ("b".into(), plain));
    assert_eq!(w.device_state(&rid, &dev.id).await, "succeeded");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
