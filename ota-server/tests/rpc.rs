//! Persistent device RPC records past their `expires_at` become `expired` — at read, when
//! their device asks, or in the background for a device that never comes — and are never
//! delivered (never `sent`), nor acknowledged by a later report.

mod common;

use common::{Srv, config, firmware, tmp};
use serde_json::{Value, json};

fn device(i: usize) -> Value {
    json!({"profile_id": "p", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
           "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}, "device_id": format!("dev-{i}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_records_past_their_expiry_are_expired_and_never_delivered() {
    let dir = tmp("rpc-expiry");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut cfg = config(&dir);
    // Every command expires 1 ms after it is queued: none can be delivered.
    cfg.rpc_ttl_ms = 1;
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let (code, v) = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
        .await;
    assert_eq!(code, 201, "{v}");
    s.call("PUT", "/api/v1/ota/profiles/p", &admin, Some(&json!({})))
        .await;
    let mut creds = Vec::new();
    for i in 0..2 {
        let (code, d) = s
            .call(
                "PUT",
                &format!("/api/v1/devices/dev-{i}"),
                &admin,
                Some(&device(i)),
            )
            .await;
        assert_eq!(code, 201, "{d}");
        creds.push(d["credential"].as_str().unwrap().to_string());
    }
    let (code, r) = s
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
    let rid = r["rollout_id"].as_str().unwrap().to_string();

    // dev-0 polls: its record is past its expiry, so it is expired at this read, not sent.
    let (code, _) = s
        .call("GET", "/api/v1/devices/dev-0/ota", &creds[0], None)
        .await;
    assert_eq!(code, 200);
    let (code, v) = s
        .call("GET", "/api/v1/devices/dev-0/rpc", &creds[0], None)
        .await;
    assert_eq!(code, 200, "{v}");
    let rec = &v["rpc"][0];
    assert_eq!(
        (&rec["method"], &rec["state"], &rec["sent_at"]),
        (&json!("ota_start"), &json!("expired"), &Value::Null),
        "{v}"
    );
    assert!(
        rec["expires_at"].as_u64().unwrap() <= rec["created_at"].as_u64().unwrap() + 1,
        "{v}"
    );

    // A report afterwards does not revive or acknowledge it.
    let (code, v) = s
        .call(
            "POST",
            "/api/v1/devices/dev-0/ota/report",
            &creds[0],
            Some(
                &json!({"device_id": "dev-0", "rollout_id": rid, "status": "in_progress",
                         "firmware_version": "1.2.0"}),
            ),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = s
        .call("GET", "/api/v1/devices/dev-0/rpc", &admin, None)
        .await;
    assert_eq!(v["rpc"][0]["state"], "expired", "{v}");
    assert_eq!(v["rpc"][0]["acked_at"], Value::Null, "{v}");

    // dev-1 never comes: the background expiry marks its record (bounded wait).
    let mut state = Value::Null;
    for _ in 0..400 {
        let (_, v) = s
            .call("GET", "/api/v1/devices/dev-1/rpc", &admin, None)
            .await;
        state = v["rpc"][0]["state"].clone();
        if state == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(state, "expired");
    let (_, v) = s
        .call("GET", "/api/v1/devices/dev-1/rpc", &admin, None)
        .await;
    assert_eq!(v["rpc"][0]["sent_at"], Value::Null, "{v}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_records_within_their_ttl_are_delivered() {
    let dir = tmp("rpc-deliver");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    s.call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
        .await;
    s.call("PUT", "/api/v1/ota/profiles/p", &admin, Some(&json!({})))
        .await;
    let (_, d) = s
        .call("PUT", "/api/v1/devices/dev-0", &admin, Some(&device(0)))
        .await;
    let cred = d["credential"].as_str().unwrap().to_string();
    let (code, r) = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&json!({"package_id": pkg, "target_profile_id": "p", "canary_percent": 100})),
        )
        .await;
    assert_eq!(code, 201, "{r}");
    let (_, v) = s
        .call("GET", "/api/v1/devices/dev-0/rpc", &admin, None)
        .await;
    assert_eq!(v["rpc"][0]["state"], "queued", "{v}");
    let ttl =
        v["rpc"][0]["expires_at"].as_u64().unwrap() - v["rpc"][0]["created_at"].as_u64().unwrap();
    assert_eq!(ttl, 7 * 24 * 3600 * 1000, "the default TTL is a week");
    let (code, _) = s
        .call("GET", "/api/v1/devices/dev-0/ota", &cred, None)
        .await;
    assert_eq!(code, 200);
    let (_, v) = s
        .call("GET", "/api/v1/devices/dev-0/rpc", &admin, None)
        .await;
    assert_eq!(v["rpc"][0]["state"], "sent", "{v}");
    assert!(v["rpc"][0]["sent_at"].as_u64().is_some(), "{v}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
