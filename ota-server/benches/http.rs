//! N simulated devices over loopback HTTP against an in-process `ota-server` on SQLite (or
//! `OTA_BENCH_DATABASE=postgres://...`): each polls its assignment, downloads a chunk and
//! reports `in_progress` then `success`. Prints requests/s, p50/p99 latency, device
//! reports/s, server memory per device and database size per device, and the ratio to the
//! library's rollout engine alone on the same reports.
//!
//! `cargo bench -p ota-server --bench http` (N from `OTA_BENCH_DEVICES`, default 10000;
//! concurrency from `OTA_BENCH_CLIENTS`, default 64; `OTA_BENCH_SNAPSHOT_EVERY`, default 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_core::rollout::{Create, Input, Rollout};
use ota_core::sign::{self, SigningKey};
use ota_core::{DeviceProfile, Limits, Package, UnixMs};
use serde_json::{Value, json};
use tokio::sync::Mutex;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn package(dir: &std::path::Path) -> (Value, ota_core::VerifiedPackage) {
    let key = SigningKey::from_secret([1; 32]);
    let mut p = Package::from_json(
        json!({"type": "fw", "name": "temp-sensor-fw", "version": "2.0.0",
               "artifact_uri": "s3://b/fw.enc", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
               "size_bytes": 1, "compatibility": {"device_types": ["temp-sensor"]}})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let seal = ota_core::seal::SealKey::from_bytes([7; 32]);
    let plain: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
    let (bytes, sealed) = ota_core::seal::seal_bytes(&seal, [1; 16], &plain).unwrap();
    p.set_sealed(&sealed);
    let env = sign::sign(&p, &[&key]).unwrap();
    let path = dir.join("fw.enc");
    std::fs::write(&path, bytes).unwrap();
    let trusted = [key.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(env.clone(), &trusted, 1, &Limits::DEFAULT).unwrap();
    let body = json!({
        "envelope": serde_json::from_str::<Value>(&env.to_json()).unwrap(),
        "encryption_key": seal.to_hex(),
        "artifact_uri": format!("file://{}", path.display()),
    });
    (body, verified)
}

fn device_json(i: usize) -> Value {
    json!({"profile_id": "p", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
           "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}, "device_id": format!("d{i:06}")})
}

/// The library alone: create the same rollout and feed the same reports.
fn engine_alone(n: usize, package: &ota_core::VerifiedPackage) -> f64 {
    let fleet: Vec<DeviceProfile> = (0..n)
        .map(|i| {
            let mut v = device_json(i);
            v.as_object_mut().unwrap().remove("profile_id");
            v["labels"] = json!({"profile": "p"});
            DeviceProfile::from_json(v.to_string().as_bytes()).unwrap()
        })
        .collect();
    let spec = ota_core::plan::RolloutSpec::from_json(
        json!({"package_id": package.id(), "target_profile_id": "p", "canary_percent": 100,
               "failure_threshold_percent": 100})
        .to_string()
        .as_bytes(),
        &Limits::DEFAULT,
    )
    .unwrap();
    let mut r = Rollout::create(Create {
        rollout_id: "rol_bench".parse().unwrap(),
        tenant: "acme".parse().unwrap(),
        spec,
        package,
        rollback: None,
        fleet: &fleet,
        by: "bench".parse().unwrap(),
        now: UnixMs(1),
    })
    .unwrap();
    while r.poll().is_some() {}
    let start = Instant::now();
    for (k, status) in ["in_progress", "success"].iter().enumerate() {
        for i in 0..n {
            let rep = ota_core::report::DeviceReport::from_json(
                json!({"device_id": format!("d{i:06}"), "rollout_id": "rol_bench", "status": status,
                       "firmware_version": "2.0.0"}).to_string().as_bytes(),
                &Limits::DEFAULT,
            )
            .unwrap();
            r.handle(Input::Report(rep), UnixMs(10 + k as u64)).unwrap();
            while r.poll().is_some() {}
        }
    }
    (2 * n) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env("OTA_BENCH_DEVICES", 10_000);
    let clients = env("OTA_BENCH_CLIENTS", 64);
    let dir = std::env::temp_dir().join(format!("ota-server-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let (upload, verified) = package(&dir.join("in"));
    let mut cfg = ota_server::Config::new(dir.join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.artifact_roots = vec![dir.join("in")];
    cfg.trusted_keys = vec![SigningKey::from_secret([1; 32]).public_key().to_hex()];
    cfg.jwt_secret = Some("bench".into());
    cfg.snapshot_every = env("OTA_BENCH_SNAPSHOT_EVERY", 1000) as u64;
    if let Ok(db) = std::env::var("OTA_BENCH_DATABASE") {
        cfg.database = db;
    }
    let sqlite = cfg.database.starts_with("sqlite:");
    let running = ota_server::serve(cfg).await.unwrap();
    let base = format!("http://{}", running.addr);
    let admin = running.state.jwt.token("bench", "acme", "admin", 3600);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let (h2, b2) = (http.clone(), base.clone());
    let post = move |path: String, token: String, body: Value| {
        let http = h2.clone();
        let base = b2.clone();
        async move {
            let r = http
                .request(
                    if path.contains("/devices/d") && !path.ends_with("report") {
                        reqwest::Method::PUT
                    } else {
                        reqwest::Method::POST
                    },
                    format!("{base}{path}"),
                )
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(
        post("/api/v1/ota/packages".into(), admin.clone(), upload)
            .await
            .0,
        201
    );
    http.put(format!("{base}/api/v1/ota/profiles/p"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let rss0 = rss_kib();

    // Register the fleet.
    let t = Instant::now();
    let creds = Arc::new(Mutex::new(vec![String::new(); n]));
    let mut tasks = Vec::new();
    for c in 0..clients.min(16) {
        let (post, admin, creds) = (post.clone(), admin.clone(), creds.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(clients.min(16)) {
                let (code, v) = post(
                    format!("/api/v1/devices/d{i:06}"),
                    admin.clone(),
                    device_json(i),
                )
                .await;
                assert_eq!(code, 201, "{v}");
                creds.lock().await[i] = v["credential"].as_str().unwrap().to_string();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "registered {n} devices in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (code, v) = post(
        "/api/v1/ota/rollouts".into(),
        admin.clone(),
        json!({
        "package_id": verified.id(), "target_profile_id": "p", "canary_percent": 100,
        "failure_threshold_percent": 100}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    println!(
        "created the rollout over {n} devices in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // The devices: poll, one chunk, two reports.
    let creds = Arc::new(creds.lock().await.clone());
    let lat = Arc::new(Mutex::new(Vec::with_capacity(4 * n)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, rid, creds, lat, pkg) = (
            http.clone(),
            base.clone(),
            rid.clone(),
            creds.clone(),
            lat.clone(),
            verified.id().to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (c..n).step_by(clients) {
                let d = format!("d{i:06}");
                let cred = &creds[i];
                let t = Instant::now();
                let r = http.get(format!("{base}/api/v1/devices/{d}/ota")).bearer_auth(cred).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                mine.push(t.elapsed());
                let t = Instant::now();
                let r = http.get(format!("{base}/api/v1/devices/{d}/ota/chunk?package_id={pkg}&offset=0")).bearer_auth(cred).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                mine.push(t.elapsed());
                for status in ["in_progress", "success"] {
                    let t = Instant::now();
                    let r = http
                        .post(format!("{base}/api/v1/devices/{d}/ota/report"))
                        .bearer_auth(cred)
                        .header("content-type", "application/json")
                        .body(json!({"device_id": d, "rollout_id": rid, "status": status, "firmware_version": "2.0.0"}).to_string())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    mine.push(t.elapsed());
                }
            }
            lat.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = lat.lock().await.clone();
    lat.sort();
    let reports_per_s = (2 * n) as f64 / secs;
    println!(
        "{n} devices, {clients} clients: {} requests in {secs:.1} s = {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / secs,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    let rss1 = rss_kib();
    println!(
        "device reports/s sustained: {reports_per_s:.0}; server memory per device: {:.0} bytes (RSS growth, client included)",
        (rss1.saturating_sub(rss0) * 1024) as f64 / n as f64
    );
    if sqlite {
        let db: u64 = ["ota.db", "ota.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "database size per device: {:.0} bytes (SQLite file and WAL)",
            db as f64 / n as f64
        );
    }
    let alone = engine_alone(n, &verified);
    println!(
        "the library's engine alone: {alone:.0} reports/s; the server reaches {:.1} % of it",
        100.0 * reports_per_s / alone
    );
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
