//! Seed 004 over HTTP, step by step, on SQLite: upload (and a mismatched upload refused),
//! 12 of 240 scheduled, the chunk protocol, reports, the 11 % failure pause with its event on
//! the live stream, resume and rollback; bad inputs answered clearly and changing nothing;
//! and a restart that restores every rollout from its snapshot plus the trail after it.

mod common;

use std::time::Duration;

use common::{Srv, assert_error, config, firmware, tmp};
use futures::StreamExt;
use ota_core::Limits;
use ota_core::assignment::Assignment;
use serde_json::{Value, json};

const DEVICES: usize = 240;

fn device_body(i: usize) -> Value {
    let hw = ["acme-sensor-v2", "acme-sensor-v3"][i % 2];
    json!({
        "profile_id": "prof_temp_v2",
        "device_type": "temp-sensor",
        "hardware_profile": hw,
        "arch": "armv7",
        "installed": {"temp-sensor-fw": "1.2.0"},
    })
}

/// Downloads a whole artifact through the chunk protocol, asking for more than a chunk each
/// time; checks the clamp and `ota-complete`.
async fn download(s: &Srv, device: &str, cred: &str, package_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let r = s
            .http
            .get(format!(
                "{}/api/v1/devices/{device}/ota/chunk?package_id={package_id}&offset={}&length={}",
                s.base,
                out.len(),
                1 << 20
            ))
            .bearer_auth(cred)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let complete = r.headers()["ota-complete"].to_str().unwrap() == "true";
        let bytes = r.bytes().await.unwrap();
        assert!(bytes.len() <= 65536 && !bytes.is_empty(), "{}", bytes.len());
        out.extend_from_slice(&bytes);
        if complete {
            return out;
        }
    }
    panic!("the download never completed");
}

async fn report(s: &Srv, device: &str, cred: &str, body: Value) -> (u16, Value) {
    s.report(device, cred, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_over_http_on_sqlite() {
    let dir = tmp("seed004-sqlite");
    seed_004(&dir, config(&dir)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_004_over_http_on_postgresql() {
    let Some(cluster) = common::pg::Cluster::start("seed004") else {
        return;
    };
    let dir = tmp("seed004-pg");
    let mut c = config(&dir);
    c.database = cluster.url.clone();
    seed_004(&dir, c).await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn seed_004(dir: &std::path::Path, cfg: ota_server::Config) {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let (fw, fw_id, fw_bytes) = firmware(&input, "2.0.0", false, 200_000);
    let (rb, rb_id, _) = firmware(&input, "1.2.0", true, 100_000);
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    let other = s.token("globex", "admin");
    let viewer = s.token("acme", "viewer");

    // --- Packages: uploaded, verified, available. ---------------------------------------
    let v = s.upload(&admin, &fw).await;
    assert_eq!(v["package_id"], fw_id.as_str());
    assert_eq!(v["status"], "available");
    assert_eq!(v["checksum_verified"], true);
    s.upload(&admin, &rb).await;
    // A statement whose artifact is not the file it points at: INVALID_ARGUMENT, and the
    // package is never assignable.
    // Its own artifact with one byte flipped: the size is right, the digest is not.
    let (mut bad, bad_id, mut bad_bytes) = firmware(dir, "2.0.1", false, 200_000);
    bad_bytes[1000] ^= 1;
    std::fs::write(input.join("fw-2.0.1-flipped.enc"), &bad_bytes).unwrap();
    bad["artifact_uri"] = json!(format!(
        "file://{}",
        input.join("fw-2.0.1-flipped.enc").display()
    ));
    let got = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&bad))
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "sha256");
    // Another package's artifact, of another size: the size is named first.
    let (mut other_size, _, _) = firmware(dir, "2.0.2", false, 150_000);
    other_size["artifact_uri"] = json!(format!("file://{}", input.join("fw-2.0.0.enc").display()));
    let got = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&other_size))
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "size_bytes");
    let (_, v) = s
        .get(&format!("/api/v1/ota/packages/{bad_id}"), &admin)
        .await;
    assert_eq!(v["status"], "rejected", "{v}");
    // Outside the allowed roots: refused before reading.
    let mut outside = fw.clone();
    outside["artifact_uri"] = json!(format!("file://{}", dir.join("fw-2.0.1.enc").display()));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&outside))
            .await,
        403,
        "PERMISSION_DENIED",
        "artifact_uri",
    );
    // A viewer may not upload; another tenant does not see the package.
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &viewer, Some(&fw))
            .await,
        403,
        "PERMISSION_DENIED",
        "authorization",
    );
    assert_error(
        &s.get(&format!("/api/v1/ota/packages/{fw_id}"), &other)
            .await,
        404,
        "NOT_FOUND",
        "package_id",
    );
    let (_, list) = s.get("/api/v1/ota/packages", &admin).await;
    assert_eq!(list["packages"].as_array().unwrap().len(), 4, "{list}");
    assert_eq!(
        list["packages"][0]["signed_by"][0],
        common::publisher().key_id().to_string()
    );

    // --- The fleet: a profile and 240 devices, each with its own credential. -------------
    let (code, _) = s
        .call(
            "PUT",
            "/api/v1/ota/profiles/prof_temp_v2",
            &admin,
            Some(&json!({"description": "temp sensors v2"})),
        )
        .await;
    assert_eq!(code, 200);
    let mut creds = Vec::new();
    for i in 0..DEVICES {
        let id = format!("dev-{i:04}");
        creds.push(s.register(&admin, &id, &device_body(i)).await);
    }
    let cred = |d: &str| creds[d[4..].parse::<usize>().unwrap()].clone();

    // A rollout of the rejected package is refused.
    let got = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&json!({
            "package_id": bad_id, "target_profile_id": "prof_temp_v2"})),
        )
        .await;
    assert_error(&got, 409, "FAILED_PRECONDITION", "package_id");

    // --- The rollout: 12 of 240 scheduled. ------------------------------------------------
    let body = json!({
        "package_id": fw_id, "target_profile_id": "prof_temp_v2", "canary_percent": 5,
        "failure_threshold_percent": 10, "rollback_package_id": rb_id,
    });
    let v = s.create_rollout(&admin, &body).await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["canary_percent"], 5);
    assert_eq!(v["scheduled_count"], 12);
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    let (_, v) = s
        .get(
            &format!("/api/v1/ota/rollouts/{rid}/devices?state=sent&page_size=5"),
            &admin,
        )
        .await;
    assert_eq!(v["devices"].as_array().unwrap().len(), 5, "{v}");
    let canary = s.devices_in(&admin, &rid, "sent").await;
    assert_eq!(canary.len(), 12);

    // --- The device side. -------------------------------------------------------------------
    let d0 = &canary[0];
    let (code, a) = s.get(&format!("/api/v1/devices/{d0}/ota"), &cred(d0)).await;
    assert_eq!(code, 200, "{a}");
    let assignment = Assignment::from_json(a.to_string().as_bytes(), &Limits::DEFAULT).unwrap();
    assert_eq!(assignment.package_id.as_str(), fw_id);
    assert_eq!(assignment.rollout_id.as_ref().unwrap().as_str(), rid);
    // Its persistent RPC record was delivered with the poll.
    let (_, v) = s.get(&format!("/api/v1/devices/{d0}/rpc"), &cred(d0)).await;
    assert_eq!(v["rpc"][0]["method"], "ota_start", "{v}");
    assert_eq!(v["rpc"][0]["state"], "sent", "{v}");
    // A device outside the canary has nothing to do.
    let idle = (0..DEVICES)
        .map(|i| format!("dev-{i:04}"))
        .find(|d| !canary.contains(d))
        .unwrap();
    let (code, _) = s
        .get(&format!("/api/v1/devices/{idle}/ota"), &cred(&idle))
        .await;
    assert_eq!(code, 204);
    // The chunk protocol: the whole artifact, chunk by chunk.
    assert_eq!(download(&s, d0, &cred(d0), &fw_id).await, fw_bytes);
    // A standard Range request.
    let r = s
        .http
        .get(format!(
            "{}/api/v1/devices/{d0}/ota/chunk?package_id={fw_id}",
            s.base
        ))
        .bearer_auth(cred(d0))
        .header("range", "bytes=65530-65539")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 65530-65535/{}", fw_bytes.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &fw_bytes[65530..65536]);
    // Any other package, another device's endpoints, an admin token: refused.
    assert_error(
        &s.get(
            &format!("/api/v1/devices/{d0}/ota/chunk?package_id={rb_id}&offset=0"),
            &cred(d0),
        )
        .await,
        403,
        "PERMISSION_DENIED",
        "package_id",
    );
    assert_error(
        &s.get(
            &format!("/api/v1/devices/{idle}/ota/chunk?package_id={fw_id}&offset=0"),
            &cred(&idle),
        )
        .await,
        403,
        "PERMISSION_DENIED",
        "package_id",
    );
    assert_error(
        &s.get(&format!("/api/v1/devices/{d0}/ota"), &cred(&idle))
            .await,
        403,
        "PERMISSION_DENIED",
        "device_id",
    );
    assert_error(
        &s.get(&format!("/api/v1/devices/{d0}/ota"), &admin).await,
        403,
        "PERMISSION_DENIED",
        "authorization",
    );
    assert_error(
        &s.get(&format!("/api/v1/devices/{d0}/ota"), "otad_0000")
            .await,
        401,
        "UNAUTHENTICATED",
        "authorization",
    );

    // --- Reports. -------------------------------------------------------------------------
    let mut events = s
        .http
        .get(format!("{}/api/v1/ota/rollouts/{rid}/events", s.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    for step in ["downloading", "verified", "installed", "swapped", "probing"] {
        let (code, v) = report(
            &s,
            d0,
            &cred(d0),
            json!({
            "device_id": d0, "rollout_id": rid, "status": "in_progress", "step": step}),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["state"], "in_progress");
    }
    let ok = json!({"device_id": d0, "rollout_id": rid, "firmware_version": "2.0.0", "status": "success"});
    let (code, v) = report(&s, d0, &cred(d0), ok.clone()).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "succeeded");
    // The device's firmware field follows; its assignment is done.
    let (_, v) = s.get(&format!("/api/v1/devices/{d0}"), &admin).await;
    assert_eq!(v["device"]["installed"]["temp-sensor-fw"], "2.0.0", "{v}");
    let (code, _) = s.get(&format!("/api/v1/devices/{d0}/ota"), &cred(d0)).await;
    assert_eq!(code, 204);
    let (_, v) = s.get(&format!("/api/v1/devices/{d0}/rpc"), &admin).await;
    assert_eq!(v["rpc"][0]["state"], "acked", "{v}");

    // --- Bad inputs: clear errors, nothing changed. ------------------------------------------
    let head = |v: &Value| v["audit_head"].as_str().unwrap().to_string();
    let (_, before) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    let d1 = &canary[1];
    assert_error(
        &report(&s, d0, &cred(d0), ok.clone()).await,
        409,
        "FAILED_PRECONDITION",
        "status",
    );
    assert_error(
        &s.raw(
            "POST",
            &format!("/api/v1/devices/{d1}/ota/report"),
            &cred(d1),
            b"{\"device_id\": ".to_vec(),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "body",
    );
    assert_error(
        &report(
            &s,
            d1,
            &cred(d1),
            json!({"device_id": d1, "rollout_id": rid, "status": "success", "colour": "red"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "colour",
    );
    assert_error(
        &report(
            &s,
            d1,
            &cred(d1),
            json!({"device_id": d0, "rollout_id": rid, "status": "failure"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "device_id",
    );
    assert_error(
        &report(
            &s,
            d1,
            &cred(d0),
            json!({"device_id": d1, "rollout_id": rid, "status": "failure"}),
        )
        .await,
        403,
        "PERMISSION_DENIED",
        "device_id",
    );
    assert_error(
        &report(
            &s,
            d1,
            &cred(d1),
            json!({"device_id": d1, "rollout_id": "rol_000000000000", "status": "failure"}),
        )
        .await,
        404,
        "NOT_FOUND",
        "rollout_id",
    );
    assert_error(
        &s.call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&json!({"package_id": fw_id, "target_profile_id": "prof_temp_v2", "canary": 5})),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "canary",
    );
    assert_error(
        &s.raw("POST", "/api/v1/ota/rollouts", &admin, vec![b' '; 2 << 20])
            .await,
        413,
        "RESOURCE_EXHAUSTED",
        "body",
    );
    for path in ["", "/pause", "/rollback", "/abort"] {
        let method = if path.is_empty() { "GET" } else { "POST" };
        assert_error(
            &s.call(
                method,
                &format!("/api/v1/ota/rollouts/{rid}{path}"),
                &other,
                None,
            )
            .await,
            404,
            "NOT_FOUND",
            "rollout_id",
        );
    }
    assert_error(
        &s.get(&format!("/api/v1/devices/{d0}"), &other).await,
        404,
        "NOT_FOUND",
        "device_id",
    );
    assert_error(
        &s.act(&viewer, &rid, "pause").await,
        403,
        "PERMISSION_DENIED",
        "authorization",
    );
    let (_, after) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(head(&after), head(&before));
    assert_eq!(after["devices"], before["devices"]);

    // --- The halt rule: one failure of 12 (8 %) does not trip, two (17 %) pause. -----------
    let fail = |d: &str| json!({"device_id": d, "rollout_id": rid, "firmware_version": "1.2.0", "status": "failure", "reason": "probe failed"});
    let (code, v) = report(&s, d1, &cred(d1), fail(d1)).await;
    assert_eq!((code, &v["state"]), (200, &json!("failed")), "{v}");
    let (_, v) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(v["status"], "active");
    let d2 = &canary[2];
    let (code, _) = report(&s, d2, &cred(d2), fail(d2)).await;
    assert_eq!(code, 200);
    let (_, v) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(v["status"], "paused", "{v}");
    assert!(
        v["halt_reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );

    // The live stream saw the devices' steps and the pause.
    let paused = format!("profile.ota.rollout.paused.acme.{rid}");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(&format!("event: {paused}")) {
        let chunk = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the paused event within 20 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains(&format!("event: profile.ota.rollout.started.acme.{rid}")),
        "{seen}"
    );
    assert!(seen.contains("\"step\":\"swapped\""), "{seen}");
    // Only stored events carry an id to resume from: a progress step carries none, so a
    // client's Last-Event-ID stays a position the stream accepts again.
    for block in seen
        .split("\n\n")
        .filter(|b| b.contains("event: device.ota.progress"))
    {
        assert!(
            !block.contains("\nid:") && !block.starts_with("id:"),
            "{block}"
        );
    }
    for id in seen.lines().filter_map(|l| l.strip_prefix("id: ")) {
        assert!(id.starts_with(&format!("{rid}:")), "{id}");
    }
    drop(events);

    // --- Resume, then roll back. -------------------------------------------------------------
    let (code, v) = s.act(&admin, &rid, "resume").await;
    assert_eq!((code, &v["status"]), (200, &json!("active")), "{v}");
    let (code, v) = s.act(&admin, &rid, "rollback").await;
    assert_eq!((code, &v["status"]), (200, &json!("rolling_back")), "{v}");
    // The device that took 2.0.0 gets the rollback package, through a new RPC record.
    let (code, a) = s.get(&format!("/api/v1/devices/{d0}/ota"), &cred(d0)).await;
    assert_eq!(code, 200);
    assert_eq!(a["package_id"], rb_id.as_str());
    let (_, v) = s.get(&format!("/api/v1/devices/{d0}/rpc"), &cred(d0)).await;
    let methods: Vec<&str> = v["rpc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert!(methods.contains(&"ota_rollback"), "{v}");
    let (code, v) = report(
        &s,
        d0,
        &cred(d0),
        json!({
        "device_id": d0, "rollout_id": rid, "firmware_version": "1.2.0", "status": "success"}),
    )
    .await;
    assert_eq!((code, &v["state"]), (200, &json!("rolled_back")), "{v}");
    let (_, v) = s.get(&format!("/api/v1/devices/{d0}"), &admin).await;
    assert_eq!(v["device"]["installed"]["temp-sensor-fw"], "1.2.0", "{v}");

    // The trail is hash-chained and ends at the head the status gives.
    let (_, status) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    let trail = s.audit(&admin, &rid).await;
    let records: Vec<ota_core::audit::AuditRecord> =
        ota_core::audit::parse_values(trail["records"].as_array().unwrap()).unwrap();
    let h: ota_core::audit::AuditHead = head(&status).parse().unwrap();
    ota_core::audit::verify_with_head(&records, &h).unwrap();
    assert!(
        records.len() > 5,
        "snapshots every 5 records leave a trail to replay"
    );

    // Prometheus text.
    let metrics = s.metrics().await;
    assert!(metrics.contains("\nota_rollouts_loaded 1\n"), "{metrics}");
    let reports: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ota_device_reports_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reports >= 4, "{metrics}");

    // --- A restart restores the rollout from its snapshot plus the trail after it. ---------
    let state = s.running.state.clone();
    let cfg = state.config.clone();
    s.stop();
    drop(state);
    let s = Srv::start(cfg).await;
    let (_, again) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(again, status);
    let (code, v) = report(
        &s,
        d1,
        &cred(d1),
        json!({
        "device_id": d1, "rollout_id": rid, "firmware_version": "1.2.0", "status": "success"}),
    )
    .await;
    assert_error(&(code, v), 409, "FAILED_PRECONDITION", "status");
    s.stop();
}
