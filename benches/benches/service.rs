//! The service's report path: `ota-server` in this process (SQLite in a temporary directory,
//! `synchronous=FULL`), its devices reporting over HTTP on 127.0.0.1 — each device `in_progress`
//! then `success` — with CLIENTS devices reporting at once, against the reference of the same
//! reports sent one at a time (every report its own commit) measured in the same run.
//!
//! Prints reports per second for both, their ratio, and the audit trail's bytes per report
//! (the JSON lines the service stores): reports that queue up while a commit is under way go
//! to the engine as one batch and one record ([`ota_core::rollout::Rollout::handle_reports`]).
//!
//! `OTA_SERVICE_DEVICES` (default 2,000) devices per run, `OTA_SERVICE_CLIENTS` (default 64).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ota_core::Package;
use ota_core::seal::SealKey;
use ota_core::sign::{self, SigningKey};
use ota_server::{Config, Running};
use serde_json::{Value, json};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn publisher() -> SigningKey {
    SigningKey::from_secret([1; 32])
}

/// A sealed, signed firmware 2.0.0 for `temp-sensor` devices, its artifact in `dir`: the
/// upload body.
fn firmware(dir: &Path) -> Value {
    let mut p = Package::from_json(
        json!({
            "type": "fw", "name": "temp-sensor-fw", "version": "2.0.0",
            "artifact_uri": "s3://ota-artifacts/temp-sensor/fw-2.0.0.enc",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 1,
            "compatibility": {"device_types": ["temp-sensor"], "min_version": "1.0.0"},
        })
        .to_string()
        .as_bytes(),
    )
    .expect("package");
    let key = SealKey::from_bytes([0x5e; 32]);
    let (bytes, sealed) =
        ota_core::seal::seal_bytes(&key, [0x1f; 16], &[7u8; 100_000]).expect("seal");
    p.set_sealed(&sealed);
    let env = sign::sign(&p, &[&publisher()]).expect("sign");
    let path = dir.join("fw-2.0.0.enc");
    std::fs::write(&path, &bytes).expect("artifact");
    json!({
        "envelope": serde_json::from_str::<Value>(&env.to_json()).expect("envelope"),
        "encryption_key": key.to_hex(),
        "artifact_uri": format!("file://{}", path.display()),
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.expect("request");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
}

/// What one run measured.
struct Run {
    reports: usize,
    seconds: f64,
    records: usize,
    audit_bytes: usize,
}

/// A server with `devices` devices in a rollout whose command went out to all of them; then
/// every device reports in progress and success, `clients` at a time.
async fn run(name: &str, devices: usize, clients: usize) -> Run {
    let dir = std::env::temp_dir().join(format!("ota-bench-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).expect("dir");
    let mut c = Config::new(dir.join("data"));
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.artifact_roots = vec![dir.join("in")];
    c.trusted_keys = vec![publisher().public_key().to_hex()];
    c.jwt_secret = Some("the-service-bench-secret".into());
    let running: Running = ota_server::serve(c).await.expect("server");
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .expect("client"),
        base: format!("http://{}", running.addr),
    });
    let admin = running.state.jwt.token("alice", "acme", "admin", 3600);
    let (code, v) = client
        .call(
            "POST",
            "/api/v1/ota/packages",
            &admin,
            Some(&firmware(&dir.join("in"))),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let pkg = v["package_id"].as_str().expect("package_id").to_string();
    client
        .call("PUT", "/api/v1/ota/profiles/p", &admin, Some(&json!({})))
        .await;
    let mut creds = Vec::with_capacity(devices);
    for k in 0..devices {
        let id = format!("dev-{k:06}");
        let body = json!({"profile_id": "p", "device_type": "temp-sensor",
            "hardware_profile": "acme-sensor-v2", "arch": "armv7",
            "installed": {"temp-sensor-fw": "1.2.0"}, "device_id": id});
        let (code, d) = client
            .call("PUT", &format!("/api/v1/devices/{id}"), &admin, Some(&body))
            .await;
        assert_eq!(code, 201, "{d}");
        creds.push((
            id,
            d["credential"].as_str().expect("credential").to_string(),
        ));
    }
    let (code, r) = client
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(
                &json!({"package_id": pkg, "target_profile_id": "p", "canary_percent": 100,
                         "failure_threshold_percent": 100}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{r}");
    let rid = r["rollout_id"].as_str().expect("rollout_id").to_string();
    let (_, before) = client
        .call(
            "GET",
            &format!("/api/v1/ota/rollouts/{rid}/audit?limit=10000"),
            &admin,
            None,
        )
        .await;
    let skip = before["records"].as_array().map_or(0, Vec::len);

    let work = Arc::new(std::sync::Mutex::new(creds));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, work, rid) = (client.clone(), work.clone(), rid.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Some((id, cred)) = work.lock().expect("work").pop() else {
                    return n;
                };
                for (status, version) in [("in_progress", None), ("success", Some("2.0.0"))] {
                    let body = json!({"device_id": id, "rollout_id": rid, "status": status,
                                      "firmware_version": version, "attempt": 1});
                    let (code, v) = client
                        .call(
                            "POST",
                            &format!("/api/v1/devices/{id}/ota/report"),
                            &cred,
                            Some(&body),
                        )
                        .await;
                    assert_eq!(code, 200, "{v}");
                    n += 1;
                }
            }
        }));
    }
    let mut reports = 0;
    for task in tasks {
        reports += task.await.expect("client");
    }
    let seconds = t.elapsed().as_secs_f64();
    let (mut records, mut audit_bytes, mut after) = (0, 0, skip as i64 - 1);
    loop {
        let (_, page) = client
            .call(
                "GET",
                &format!("/api/v1/ota/rollouts/{rid}/audit?after={after}&limit=10000"),
                &admin,
                None,
            )
            .await;
        let rows = page["records"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            break;
        }
        for rec in &rows {
            records += 1;
            audit_bytes += rec.to_string().len() + 1;
            // Numbered with no gap (a report line carries no number).
            after += 1;
        }
    }
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        reports,
        seconds,
        records,
        audit_bytes,
    }
}

fn main() {
    let devices = env("OTA_SERVICE_DEVICES", 2000);
    let clients = env("OTA_SERVICE_CLIENTS", 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let one = rt.block_on(run("one", devices, 1));
    let many = rt.block_on(run("many", devices, clients));
    let rate = |r: &Run| r.reports as f64 / r.seconds;
    let per = |r: &Run| r.audit_bytes as f64 / r.reports as f64;
    println!(
        "service reports, one client: {} reports in {:.2} s, {:.0} reports/s; audit trail {} records, {:.1} bytes per report",
        one.reports,
        one.seconds,
        rate(&one),
        one.records,
        per(&one)
    );
    println!(
        "service reports, {clients} clients: {} reports in {:.2} s, {:.0} reports/s ({:.2}x one client); audit trail {} records, {:.1} bytes per report",
        many.reports,
        many.seconds,
        rate(&many),
        rate(&many) / rate(&one),
        many.records,
        per(&many)
    );
}
