//! N simulated devices over loopback HTTP against the `ota-server` binary (its own process,
//! so its memory is its own) on SQLite, or on PostgreSQL with `OTA_BENCH_DATABASE=postgres`
//! (a cluster of the bench's own, fsync on) or `=postgres://...`. After the fleet registers
//! and one rollout over all of it is created, the devices run in two phases, each device
//! of a client one after the other: first each polls its assignment and downloads a chunk,
//! then each reports `in_progress` then `success`. Prints, per phase and overall, requests/s
//! and p50/p99 latency; device reports/s sustained (the report phase); the server's memory
//! per device (its RSS growth from before registration); the database size per device; and
//! the ratio to the library's rollout engine alone on the same reports.
//!
//! `cargo bench -p ota-server --bench http` (N from `OTA_BENCH_DEVICES`, default 10000;
//! concurrency from `OTA_BENCH_CLIENTS`, default 64; `OTA_BENCH_SNAPSHOT_EVERY`, default 1000).
//! `OTA_BENCH_SERVER=PATH` runs another build of the binary. The clients share the
//! machine's cores with the server.

#[path = "../tests/common/pg.rs"]
#[allow(dead_code)]
mod pg;

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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU time a process has used (user and system), in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) as f64 / 100.0)
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

/// Per-request latencies of one phase, and how long it took.
struct Phase {
    name: &'static str,
    lat: Vec<Duration>,
    secs: f64,
    /// The server's CPU seconds meanwhile.
    cpu: f64,
}

impl Phase {
    fn print(&self) {
        let mut lat = self.lat.clone();
        lat.sort();
        println!(
            "  {:<28} {:>7} requests in {:>6.2} s = {:>6.0} requests/s, p50 {:>6.2} ms, p99 {:>6.2} ms, server CPU {:>4.0} us/request",
            self.name,
            lat.len(),
            self.secs,
            lat.len() as f64 / self.secs,
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            self.cpu * 1e6 / lat.len() as f64
        );
    }
}

/// Runs `clients` tasks, client `c` taking devices `c, c + clients, ...`, each device doing
/// `work`, which times each of its requests.
async fn phase<F, Fut>(name: &'static str, pid: u32, n: usize, clients: usize, work: F) -> Phase
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Vec<Duration>> + Send,
{
    let start = Instant::now();
    let cpu0 = cpu_secs(pid);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (c..n).step_by(clients) {
                mine.extend(work(i).await);
            }
            mine
        }));
    }
    let mut lat = Vec::with_capacity(2 * n);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    Phase {
        name,
        lat,
        secs: start.elapsed().as_secs_f64(),
        cpu: cpu_secs(pid) - cpu0,
    }
}

/// One timed request; panics unless it answers `want`.
async fn timed(rb: reqwest::RequestBuilder, want: u16) -> Duration {
    let t = Instant::now();
    let r = rb.send().await.unwrap();
    let code = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    assert_eq!(code, want, "{}", String::from_utf8_lossy(&body));
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env("OTA_BENCH_DEVICES", 10_000);
    let clients = env("OTA_BENCH_CLIENTS", 64);
    let dir = std::env::temp_dir().join(format!("ota-server-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let (upload, verified) = package(&dir.join("in"));
    let want = std::env::var("OTA_BENCH_DATABASE").unwrap_or_default();
    let cluster = (want == "postgres")
        .then(|| pg::Cluster::start_with("bench", true).expect("PostgreSQL is installed"));
    let database = match &cluster {
        Some(c) => c.url.clone(),
        None if want.is_empty() => format!("sqlite://{}", dir.join("data/ota.db").display()),
        None => want.clone(),
    };
    let sqlite = database.starts_with("sqlite:");
    let secret = "bench";
    // `OTA_BENCH_SERVER`: another build of the binary (e.g. an older one, to compare).
    let binary = std::env::var("OTA_BENCH_SERVER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ota-server").to_string());
    let mut server = std::process::Command::new(binary)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--lease-ms",
            "0",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--database", &database])
        .arg("--artifact-root")
        .arg(dir.join("in"))
        .args([
            "--trusted-key",
            &SigningKey::from_secret([1; 32]).public_key().to_hex(),
        ])
        .args([
            "--snapshot-every",
            &env("OTA_BENCH_SNAPSHOT_EVERY", 1000).to_string(),
        ])
        .env("OTA_JWT_SECRET", secret)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("ota-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let admin = ota_server::auth::JwtKeys::from_secret(secret.as_bytes())
        .unwrap()
        .token("bench", "acme", "admin", 3600);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let send = |method: reqwest::Method, path: &str, token: &str, body: String| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
    };
    let r = send(
        reqwest::Method::POST,
        "/api/v1/ota/packages",
        &admin,
        upload.to_string(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = send(
        reqwest::Method::PUT,
        "/api/v1/ota/profiles/p",
        &admin,
        "{}".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let rss0 = rss_kib(pid);

    // Register the fleet.
    let t = Instant::now();
    let creds = Arc::new(Mutex::new(vec![String::new(); n]));
    let mut tasks = Vec::new();
    let register = clients.min(16);
    for c in 0..register {
        let (http, base, admin, creds) = (http.clone(), base.clone(), admin.clone(), creds.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(register) {
                let r = http
                    .put(format!("{base}/api/v1/devices/d{i:06}"))
                    .bearer_auth(&admin)
                    .header("content-type", "application/json")
                    .body(device_json(i).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                creds.lock().await[i] = v["credential"].as_str().unwrap().to_string();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{} on {}: registered {n} devices in {:.1} s",
        if sqlite { "SQLite" } else { "PostgreSQL" },
        if sqlite { "a file" } else { "loopback" },
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = send(
        reqwest::Method::POST,
        "/api/v1/ota/rollouts",
        &admin,
        json!({"package_id": verified.id(), "target_profile_id": "p", "canary_percent": 100,
               "failure_threshold_percent": 100})
        .to_string(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    println!(
        "created the rollout over {n} devices in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // The devices: poll and one chunk each, then two reports each.
    let creds = Arc::new(creds.lock().await.clone());
    let ctx = Arc::new((
        http.clone(),
        base.clone(),
        rid,
        verified.id().to_string(),
        creds,
    ));
    let c1 = ctx.clone();
    let polls = phase("poll + chunk", pid, n, clients, move |i| {
        let c = c1.clone();
        async move {
            let (http, base, _, pkg, creds) = &*c;
            let d = format!("d{i:06}");
            let cred = &creds[i];
            vec![
                timed(
                    http.get(format!("{base}/api/v1/devices/{d}/ota"))
                        .bearer_auth(cred),
                    200,
                )
                .await,
                timed(
                    http.get(format!(
                        "{base}/api/v1/devices/{d}/ota/chunk?package_id={pkg}&offset=0"
                    ))
                    .bearer_auth(cred),
                    200,
                )
                .await,
            ]
        }
    })
    .await;
    let c2 = ctx.clone();
    let reports = phase("report in_progress + success", pid, n, clients, move |i| {
        let c = c2.clone();
        async move {
            let (http, base, rid, _, creds) = &*c;
            let d = format!("d{i:06}");
            let mut out = Vec::new();
            for status in ["in_progress", "success"] {
                let body = json!({"device_id": d, "rollout_id": rid, "status": status,
                                  "firmware_version": "2.0.0"});
                out.push(
                    timed(
                        http.post(format!("{base}/api/v1/devices/{d}/ota/report"))
                            .bearer_auth(&creds[i])
                            .header("content-type", "application/json")
                            .body(body.to_string()),
                        200,
                    )
                    .await,
                );
            }
            out
        }
    })
    .await;
    let all = Phase {
        name: "all device requests",
        lat: [polls.lat.clone(), reports.lat.clone()].concat(),
        secs: polls.secs + reports.secs,
        cpu: polls.cpu + reports.cpu,
    };
    println!("{n} devices, {clients} clients (server pid {pid}):");
    polls.print();
    reports.print();
    all.print();
    let reports_per_s = (2 * n) as f64 / reports.secs;
    println!(
        "device reports per server CPU second: {:.0} (the load average was {})",
        (2 * n) as f64 / reports.cpu,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let rss1 = rss_kib(pid);
    println!(
        "device reports/s sustained: {reports_per_s:.0} ({:.0} over both phases); server memory per device: {:.0} bytes (server RSS growth)",
        (2 * n) as f64 / all.secs,
        (rss1.saturating_sub(rss0) * 1024) as f64 / n as f64
    );
    if sqlite {
        let db: u64 = ["ota.db", "ota.db-wal", "ota.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "database size per device: {:.0} bytes (SQLite file, WAL and shared memory)",
            db as f64 / n as f64
        );
    } else {
        let size = async {
            let pool = sqlx::AnyPool::connect(&database).await.ok()?;
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
                .fetch_one(&pool)
                .await
                .ok()
        };
        sqlx::any::install_default_drivers();
        if let Some(b) = size.await {
            println!(
                "database size per device: {:.0} bytes (pg_database_size)",
                b as f64 / n as f64
            );
        }
    }
    let alone = engine_alone(n, &verified);
    println!(
        "the library's engine alone: {alone:.0} reports/s; the server reaches {:.1} % of it",
        100.0 * reports_per_s / alone
    );
    let _ = server.kill();
    let _ = server.wait();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
