//! A `kill -9` in the middle of a rollout under load loses no acknowledged input: the server
//! is a process, devices report concurrently, the process is killed, and after a restart
//! every acknowledged report is in the rollout's state and the trail verifies to its head.

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{firmware, registration, request, rollout_to_all, tmp_with_input};
use serde_json::json;

const DEVICES: usize = 120;
const SECRET: &str = "kill-test-secret";

fn start(dir: &std::path::Path) -> (Child, String) {
    common::spawn_server(dir, SECRET, &["--snapshot-every", "7"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_no_acknowledged_report() {
    // A hang (a request to a server that died, a restart that never answers) fails the test
    // instead of holding CI until its own limit.
    tokio::time::timeout(Duration::from_secs(240), kill_and_restart())
        .await
        .expect("the kill -9 scenario finishes within 4 minutes");
}

async fn kill_and_restart() {
    let (dir, input) = tmp_with_input("kill");
    let (fw, fw_id, _) = firmware(&input, "2.0.0", false, 70_000);
    let (mut child, base) = start(&dir);
    let keys = ota_server::auth::JwtKeys::from_secret(SECRET.as_bytes()).unwrap();
    let admin = keys.token("alice", "acme", "admin", 3600);
    let http = common::http_client();

    assert_eq!(
        request(
            &http,
            "POST",
            format!("{base}/api/v1/ota/packages"),
            &admin,
            Some(&fw)
        )
        .await
        .0,
        201
    );
    request(
        &http,
        "PUT",
        format!("{base}/api/v1/ota/profiles/p"),
        &admin,
        Some(&json!({})),
    )
    .await;
    let mut creds = HashMap::new();
    for i in 0..DEVICES {
        let (code, v) = request(
            &http,
            "PUT",
            format!("{base}/api/v1/devices/d{i:03}"),
            &admin,
            Some(&registration("p")),
        )
        .await;
        assert_eq!(code, 201, "{v}");
        creds.insert(
            format!("d{i:03}"),
            v["credential"].as_str().unwrap().to_string(),
        );
    }
    let (code, v) = request(
        &http,
        "POST",
        format!("{base}/api/v1/ota/rollouts"),
        &admin,
        Some(&rollout_to_all(&fw_id)),
    )
    .await;
    assert_eq!((code, &v["scheduled_count"]), (201, &json!(DEVICES)), "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // Devices report concurrently; each acknowledged report is written down.
    let acked: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    let mut tasks = Vec::new();
    for (d, cred) in creds.clone() {
        let (http, base, rid, acked) = (http.clone(), base.clone(), rid.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let n: usize = d[1..].parse().unwrap();
            let last = if n.is_multiple_of(5) { "failure" } else { "success" };
            for status in ["in_progress", last] {
                if status == last {
                    // The final reports spread over about half a second.
                    tokio::time::sleep(Duration::from_millis(4 * n as u64)).await;
                }
                let (code, _) = request(&http, "POST", format!("{base}/api/v1/devices/{d}/ota/report"), &cred, Some(&json!({
                    "device_id": d, "rollout_id": rid, "status": status, "firmware_version": "2.0.0"}))).await;
                if code != 200 {
                    return;
                }
                acked.lock().unwrap().insert(d.clone(), status);
            }
        }));
    }
    // Kill the server while the reports are in flight.
    for _ in 0..5000 {
        let finals = acked
            .lock()
            .unwrap()
            .values()
            .filter(|s| **s != "in_progress")
            .count();
        if finals >= DEVICES / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let finished = acked.values().filter(|s| **s != "in_progress").count();
    eprintln!(
        "acknowledged before the kill: {} devices, {finished} finished",
        acked.len()
    );
    assert!(
        finished > 0,
        "some final reports were acknowledged before the kill"
    );
    assert!(
        finished < DEVICES,
        "the kill came in the middle of the rollout"
    );

    let (mut child, base) = start(&dir);
    let (_, status) = request(
        &http,
        "GET",
        format!("{base}/api/v1/ota/rollouts/{rid}"),
        &admin,
        None,
    )
    .await;
    let (_, devices) = request(
        &http,
        "GET",
        format!("{base}/api/v1/ota/rollouts/{rid}/devices?page_size=1000"),
        &admin,
        None,
    )
    .await;
    let state: HashMap<String, String> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (d, last) in &acked {
        let s = state[d].as_str();
        let ok = match *last {
            // Its final report may have been committed without its answer arriving.
            "in_progress" => matches!(s, "in_progress" | "succeeded" | "failed"),
            "success" => s == "succeeded",
            _ => s == "failed",
        };
        assert!(ok, "{d}: acknowledged {last}, restored as {s}");
    }
    let (_, trail) = request(
        &http,
        "GET",
        format!("{base}/api/v1/ota/rollouts/{rid}/audit?limit=10000"),
        &admin,
        None,
    )
    .await;
    let records: Vec<ota_core::audit::AuditRecord> =
        ota_core::audit::parse_values(trail["records"].as_array().unwrap()).unwrap();
    let head: ota_core::audit::AuditHead = status["audit_head"].as_str().unwrap().parse().unwrap();
    ota_core::audit::verify_with_head(&records, &head).unwrap();
    // The restarted server takes reports again.
    let fresh = creds
        .keys()
        .find(|d| !acked.contains_key(*d) || acked[*d] == "in_progress")
        .cloned();
    if let Some(d) = fresh {
        let (code, v) = request(
            &http,
            "POST",
            format!("{base}/api/v1/devices/{d}/ota/report"),
            &creds[&d],
            Some(&json!({
            "device_id": d, "rollout_id": rid, "status": "success", "firmware_version": "2.0.0"})),
        )
        .await;
        assert!(
            code == 200 || (code == 409 && v["code"] == "FAILED_PRECONDITION"),
            "{code} {v}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
