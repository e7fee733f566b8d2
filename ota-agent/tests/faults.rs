//! The daemon under faults, against a real `ota-server` on 127.0.0.1:
//!
//! - several daemons (tasks of one runtime) update through `ota_sim::proxy::FaultProxy` with
//!   every kind of fault on — dropped connections, resets mid-body, 500s, truncated bodies,
//!   wrong `Content-Length`, stalls longer than the daemons' request timeout, duplicated and
//!   reordered responses — and one device's probe fails: every device ends on a good version
//!   (the new one, or the previous one restored on the sick device) and the server counts
//!   each device exactly once;
//! - the server, a process of its own, is killed (`kill -9`) in the middle of a rollout with
//!   the daemons running, and restarted on the same database and port: no device's progress
//!   is lost, the server's counts match what the devices run, and the audit trail verifies.
//!
//! Every loop is bounded in count and time; seeds are fixed.

mod common;
#[path = "common/server_process.rs"]
mod server_process;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{FACTORY, World, active_payload, directory_agent, open, tmp};
use ota_agent::Cycle;
use ota_sim::proxy::{FaultProxy, Faults};
use serde_json::{Value, json};
use server_process::{Admin, ServerProcess};

const NEW: &str = "2.0.0";
/// Cycles a daemon runs at most, and the pause between two.
const MAX_CYCLES: usize = 600;
const PAUSE: Duration = Duration::from_millis(100);
/// The bound on each scenario.
const LIMIT: Duration = Duration::from_secs(120);

/// The entry of the server process of [`a_kill_9_of_the_server_mid_rollout_loses_no_progress`]
/// (see `common/server_process.rs`): run only by that test, as a child process.
#[test]
#[ignore = "the server process of the kill -9 test, run by that test as a child"]
fn server_process_entry() {
    assert!(
        server_process::serve_if_asked(),
        "run only as the child of a_kill_9_of_the_server_mid_rollout_loses_no_progress"
    );
}

/// A device under test: its configuration and its slots.
struct Device {
    id: String,
    toml: String,
    root: PathBuf,
    sick: bool,
}

/// What a daemon did, cycle by cycle.
#[derive(Debug)]
struct Run {
    id: String,
    /// The cycles that did something.
    outcomes: Vec<Cycle>,
    /// The cycles that failed, and why.
    errors: Vec<String>,
    /// The version it runs in the end.
    running: Option<String>,
}

/// Devices `{prefix}0..n` of profile `profile`, the last one with a failing probe; `server`
/// is what they talk to, `tune` edits each configuration.
fn devices(
    dir: &Path,
    prefix: &str,
    n: usize,
    server: &str,
    profile: &str,
    enroll: &Path,
    tune: impl Fn(usize, String) -> String,
) -> Vec<Device> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let home = dir.join(&id);
            let sick = i == n - 1;
            let probe = if sick { "/bin/false" } else { "/bin/true" };
            let (toml, _) = directory_agent(&home, server, &id, profile, enroll, probe, "");
            let root = home.join("app");
            Device {
                id,
                toml: tune(i, toml),
                root,
                sick,
            }
        })
        .collect()
}

/// Runs a daemon as a task: cycles (at most [`MAX_CYCLES`], [`PAUSE`] apart, within
/// [`LIMIT`]) until `done`, publishing the version it runs to `running` after each cycle
/// that succeeded (so after the first, the device is registered).
fn spawn_daemon(
    dev: &Device,
    done: Arc<AtomicBool>,
    running: Arc<Mutex<HashMap<String, String>>>,
) -> tokio::task::JoinHandle<Run> {
    let (id, toml) = (dev.id.clone(), dev.toml.clone());
    tokio::spawn(async move {
        let mut d = open(&toml).await;
        let deadline = Instant::now() + LIMIT;
        let mut run = Run {
            id: id.clone(),
            outcomes: Vec::new(),
            errors: Vec::new(),
            running: None,
        };
        for _ in 0..MAX_CYCLES {
            if done.load(Ordering::SeqCst) || Instant::now() >= deadline {
                break;
            }
            match d.cycle().await {
                Ok(c) => {
                    if c != Cycle::Idle {
                        run.outcomes.push(c);
                    }
                    let v = d
                        .running_version()
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    running.lock().unwrap().insert(id.clone(), v);
                }
                Err(e) => run.errors.push(e.to_string()),
            }
            tokio::time::sleep(PAUSE).await;
        }
        run.running = d.running_version().map(|v| v.to_string());
        run
    })
}

/// Waits (bounded) until every daemon has had a cycle succeed: all devices are registered,
/// so a rollout created now targets them all.
async fn registered(running: &Mutex<HashMap<String, String>>, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while running.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = running.lock().unwrap().len();
    assert_eq!(seen, n, "every daemon registered within {LIMIT:?}");
}

/// The daemons of some devices, each a task ([`spawn_daemon`]).
struct Fleet {
    /// Tells them to stop.
    done: Arc<AtomicBool>,
    /// The version each runs, by device id, once it has registered.
    running: Arc<Mutex<HashMap<String, String>>>,
    tasks: Vec<tokio::task::JoinHandle<Run>>,
}

impl Fleet {
    /// Spawns a daemon for each of `devs` and waits until every one has registered.
    async fn registered(devs: &[Device]) -> Fleet {
        let done = Arc::new(AtomicBool::new(false));
        let running: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let tasks = devs
            .iter()
            .map(|d| spawn_daemon(d, done.clone(), running.clone()))
            .collect();
        registered(&running, devs.len()).await;
        Fleet {
            done,
            running,
            tasks,
        }
    }

    /// Stops the daemons; their runs, in the devices' order.
    async fn stop(self) -> Vec<Run> {
        self.done.store(true, Ordering::SeqCst);
        let mut runs = Vec::new();
        for t in self.tasks {
            runs.push(t.await.unwrap());
        }
        runs
    }
}

/// A rollout of `package` to every device of `profile` at once, which no failure halts.
fn rollout_body(package: &str, profile: &str) -> Value {
    json!({
        "package_id": package, "target_profile_id": profile,
        "canary_percent": 100, "failure_threshold_percent": 100,
    })
}

/// Checks each device's end: the healthy ones run the new version from slot `b`, the sick
/// one the factory version from slot `a`, both in the daemon's view and on disk, after
/// exactly one update outcome.
fn check_devices(devices: &[Device], runs: &[Run], new_plain: &[u8]) {
    let factory = common::plaintext(FACTORY, 10_000);
    for (dev, run) in devices.iter().zip(runs) {
        let ends: Vec<&Cycle> = run
            .outcomes
            .iter()
            .filter(|c| matches!(c, Cycle::Updated { .. } | Cycle::RolledBack { .. }))
            .collect();
        assert_eq!(ends.len(), 1, "{}: one update outcome: {run:?}", dev.id);
        if dev.sick {
            assert!(
                matches!(ends[0], Cycle::RolledBack { running: Some(r), .. } if r.to_string() == FACTORY),
                "{}: {run:?}",
                dev.id
            );
            assert_eq!(run.running.as_deref(), Some(FACTORY), "{}: {run:?}", dev.id);
            assert!(
                active_payload(&dev.root) == ("a".into(), factory.clone()),
                "{} is not restored to the factory version",
                dev.id
            );
        } else {
            assert!(
                matches!(ends[0], Cycle::Updated { .. }),
                "{}: {run:?}",
                dev.id
            );
            assert_eq!(run.running.as_deref(), Some(NEW), "{}: {run:?}", dev.id);
            assert!(
                active_payload(&dev.root) == ("b".into(), new_plain.to_vec()),
                "{} does not run {NEW} from slot b",
                dev.id
            );
        }
    }
}

const FAULT_DEVICES: usize = 8;
/// The proxy's seed; `OTA_FAULTS_SEED` overrides it, to replay or explore.
const FAULT_SEED: u64 = 2026;

fn fault_seed() -> u64 {
    std::env::var("OTA_FAULTS_SEED")
        .ok()
        .map(|s| s.parse().expect("OTA_FAULTS_SEED: an unsigned integer"))
        .unwrap_or(FAULT_SEED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_through_a_faulty_network_all_end_on_a_good_version_counted_once() {
    let dir = tmp("faults-proxy");
    let w = World::start(&dir, 100).await;
    // Sixteen 64 KiB chunks: enough exchanges for every kind of fault to land.
    let (pkg, plain) = w.upload(NEW, 1_000_000).await;
    w.profile("prof-faults").await;
    // Each kind on 4 % of the exchanges (a third of them get a fault); a stall outlasts the
    // daemons' 2 s request timeout.
    let faults = Faults {
        stall_for: Duration::from_millis(2500),
        ..Faults::each(0.04)
    };
    let seed = fault_seed();
    let proxy = FaultProxy::start(w.running.addr, faults, seed).unwrap();
    eprintln!("fault proxy seed {seed}: {}", proxy.url());
    let devs = devices(
        &dir,
        "fd",
        FAULT_DEVICES,
        &proxy.url(),
        "prof-faults",
        &w.enrollment_token(),
        |_, t| {
            // A stall (2.5 s) outlasts the request timeout.
            assert!(t.contains("request_timeout_ms = 10000"), "{t}");
            t.replace("request_timeout_ms = 10000", "request_timeout_ms = 2000")
        },
    );
    // The daemons register through the faults, then the rollout targets them all.
    let fleet = Fleet::registered(&devs).await;
    let (code, v) = w
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            Some(&rollout_body(&pkg, "prof-faults")),
        )
        .await;
    assert_eq!(
        (code, &v["scheduled_count"]),
        (201, &json!(FAULT_DEVICES)),
        "{v}"
    );
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    // Until the server has every device terminal and knows the version each runs (bounded).
    let deadline = Instant::now() + LIMIT;
    let mut status = Value::Null;
    while Instant::now() < deadline {
        status = w
            .call("GET", &format!("/api/v1/ota/rollouts/{rid}"), None)
            .await
            .1;
        if status["cumulative"]["terminal"] == json!(FAULT_DEVICES) {
            let seen = fleet.running.lock().unwrap().clone();
            let mut agree = true;
            for d in &devs {
                let installed = w.installed(&d.id).await;
                agree &= seen.get(&d.id) == Some(&installed);
            }
            if agree {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = fleet.stop().await;
    let counts = proxy.counts();
    eprintln!("injected: {counts:?}");
    for r in &runs {
        eprintln!("{}: {} failed cycles", r.id, r.errors.len());
    }
    drop(proxy);

    check_devices(&devs, &runs, &plain);
    // Faults of every kind landed, and the daemons got through them.
    for (kind, n) in [
        ("dropped", counts.dropped),
        ("reset", counts.reset),
        ("error_500", counts.error_500),
        ("truncated", counts.truncated),
        ("wrong_length", counts.wrong_length),
        ("stalled", counts.stalled),
        ("duplicated", counts.duplicated),
        ("reordered", counts.reordered),
    ] {
        assert!(n > 0, "no {kind} fault landed: {counts:?}");
    }
    // The server counts every device once, and knows what each runs.
    assert_eq!(
        status["devices"],
        json!({"succeeded": FAULT_DEVICES - 1, "failed": 1}),
        "{status}"
    );
    assert_eq!(
        status["cumulative"],
        json!({"terminal": FAULT_DEVICES, "succeeded": FAULT_DEVICES - 1, "failures": 1}),
        "{status}"
    );
    for d in &devs {
        let want = if d.sick { FACTORY } else { NEW };
        assert_eq!(w.installed(&d.id).await, want, "{}", d.id);
        let state = w.device_state(&rid, &d.id).await;
        let want = if d.sick { "failed" } else { "succeeded" };
        assert_eq!(state, want, "{}", d.id);
    }
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

const KILL_DEVICES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_server_mid_rollout_loses_no_progress() {
    let dir = tmp("faults-kill");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let server = ServerProcess::spawn("server_process_entry", &dir, "127.0.0.1:0".parse().unwrap());
    let addr = server.addr;
    let admin = Admin::new(&server.base);
    let (body, pkg, _, plain) = common::firmware(&dir.join("in"), NEW, 500_000);
    let (code, v) = admin
        .call("POST", "/api/v1/ota/packages", Some(&body))
        .await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = admin
        .call(
            "PUT",
            "/api/v1/ota/profiles/prof-kill",
            Some(&json!({"description": "daemons through a kill -9"})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let enroll = dir.join("enroll.jwt");
    std::fs::write(&enroll, &admin.token).unwrap();
    // Downloads capped at 400 kB/s for the first device (about 1.3 s), less and less for the
    // next ones (down to 114 kB/s, about 4.5 s): when the first device is counted, the others
    // are still downloading.
    let devs = devices(
        &dir,
        "kd",
        KILL_DEVICES,
        &server.base,
        "prof-kill",
        &enroll,
        |i, t| format!("bandwidth_bytes_per_sec = {}\n{t}", 800_000 / (2 + i)),
    );
    let fleet = Fleet::registered(&devs).await;
    let (code, v) = admin
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            Some(&rollout_body(&pkg, "prof-kill")),
        )
        .await;
    assert_eq!(
        (code, &v["scheduled_count"]),
        (201, &json!(KILL_DEVICES)),
        "{v}"
    );
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let status_path = format!("/api/v1/ota/rollouts/{rid}");
    // Kill the server as soon as it has counted a device, restart it, and kill it again once
    // it has counted half of them (each wait bounded). The first kill lands mid-rollout; the
    // second may land anywhere.
    let deadline = Instant::now() + LIMIT;
    let mut server = Some(server);
    for (kill, counted) in [(1, 1), (2, KILL_DEVICES as u64 / 2)] {
        let mut before = Value::Null;
        while Instant::now() < deadline {
            before = admin.call("GET", &status_path, None).await.1;
            if before["cumulative"]["terminal"].as_u64().unwrap_or(0) >= counted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(server.take()); // kill -9
        let terminal_before = before["cumulative"]["terminal"].as_u64().unwrap_or(0);
        eprintln!("counted before kill {kill}: {}", before["cumulative"]);
        assert!(terminal_before >= counted, "{before}");
        if kill == 1 {
            assert!(
                terminal_before < KILL_DEVICES as u64,
                "the kill came in the middle of the rollout: {before}"
            );
        }
        // The daemons find no server for a while, then the same database on the same port.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let restarted = ServerProcess::spawn("server_process_entry", &dir, addr);
        assert_eq!(restarted.addr, addr);
        server = Some(restarted);
        // Nothing counted before the kill is lost.
        let (code, after) = admin.call("GET", &status_path, None).await;
        assert_eq!(code, 200, "{after}");
        for key in ["terminal", "succeeded", "failures"] {
            assert!(
                after["cumulative"][key].as_u64() >= before["cumulative"][key].as_u64(),
                "{key} went back after kill {kill}: {before} then {after}"
            );
        }
    }

    // Until the server has every device terminal and knows the version each runs (bounded).
    let mut status = Value::Null;
    let mut installed = HashMap::new();
    while Instant::now() < deadline {
        status = admin.call("GET", &status_path, None).await.1;
        if status["cumulative"]["terminal"] == json!(KILL_DEVICES) {
            let seen = fleet.running.lock().unwrap().clone();
            installed.clear();
            for d in &devs {
                let (_, v) = admin
                    .call("GET", &format!("/api/v1/devices/{}", d.id), None)
                    .await;
                let v = v["device"]["installed"][common::FW]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                installed.insert(d.id.clone(), v);
            }
            if devs.iter().all(|d| seen.get(&d.id) == installed.get(&d.id)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = fleet.stop().await;
    for r in &runs {
        eprintln!("{}: {} failed cycles", r.id, r.errors.len());
    }

    check_devices(&devs, &runs, &plain);
    // What the server counts is what the devices run, each device once.
    assert_eq!(
        status["devices"],
        json!({"succeeded": KILL_DEVICES - 1, "failed": 1}),
        "{status}"
    );
    assert_eq!(
        status["cumulative"],
        json!({"terminal": KILL_DEVICES, "succeeded": KILL_DEVICES - 1, "failures": 1}),
        "{status}"
    );
    for (d, r) in devs.iter().zip(&runs) {
        assert_eq!(
            installed.get(&d.id).map(String::as_str),
            r.running.as_deref(),
            "{}: the server's installed version",
            d.id
        );
    }
    let (_, list) = admin
        .call(
            "GET",
            &format!("/api/v1/ota/rollouts/{rid}/devices?page_size=1000"),
            None,
        )
        .await;
    for d in &devs {
        let state = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["device_id"] == d.id.as_str())
            .map(|x| x["state"].as_str().unwrap().to_string());
        let want = if d.sick { "failed" } else { "succeeded" };
        assert_eq!(state.as_deref(), Some(want), "{}: {list}", d.id);
    }
    // The audit trail survived the kill and verifies to its head.
    let (_, status) = admin.call("GET", &status_path, None).await;
    let (code, trail) = admin
        .call(
            "GET",
            &format!("/api/v1/ota/rollouts/{rid}/audit?limit=10000"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{trail}");
    let records: Vec<ota_core::audit::AuditRecord> =
        ota_core::audit::parse_values(trail["records"].as_array().unwrap()).unwrap();
    let head: ota_core::audit::AuditHead = status["audit_head"].as_str().unwrap().parse().unwrap();
    ota_core::audit::verify_with_head(&records, &head).unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
