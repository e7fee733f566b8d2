//! Persistent device RPC records past their `expires_at` become `expired` — at read, when
//! their device asks, or in the background for a device that never comes — and are never
//! delivered (never `sent`), nor acknowledged by a later report.

mod common;

use common::{Srv, config, firmware, registration_naming, rollout_to_all, tmp_with_input};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_records_past_their_expiry_are_expired_and_never_delivered() {
    let (dir, input) = tmp_with_input("rpc-expiry");
    let mut cfg = config(&dir);
    // Every command expires 1 ms after it is queued: none can be delivered.
    cfg.rpc_ttl_ms = 1;
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    let mut creds = Vec::new();
    for id in ["dev-0", "dev-1"] {
        creds.push(s.register(&admin, id, &registration_naming(id)).await);
    }
    let r = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = r["rollout_id"].as_str().unwrap().to_string();

    // dev-0 polls: its record is past its expiry, so it is expired at this read, not sent.
    let (code, _) = s.get("/api/v1/devices/dev-0/ota", &creds[0]).await;
    assert_eq!(code, 200);
    let (code, v) = s.get("/api/v1/devices/dev-0/rpc", &creds[0]).await;
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
    let report = json!({"device_id": "dev-0", "rollout_id": rid, "status": "in_progress",
                        "firmware_version": "1.2.0"});
    let (code, v) = s.report("dev-0", &creds[0], &report).await;
    assert_eq!(code, 200, "{v}");
    let (_, v) = s.get("/api/v1/devices/dev-0/rpc", &admin).await;
    assert_eq!(v["rpc"][0]["state"], "expired", "{v}");
    assert_eq!(v["rpc"][0]["acked_at"], Value::Null, "{v}");

    // dev-1 never comes: the background expiry marks its record (bounded wait).
    let mut state = Value::Null;
    for _ in 0..400 {
        let (_, v) = s.get("/api/v1/devices/dev-1/rpc", &admin).await;
        state = v["rpc"][0]["state"].clone();
        if state == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(state, "expired");
    // A device that is not registered: 404, not an empty list.
    let got = s.get("/api/v1/devices/dev-nope/rpc", &admin).await;
    common::assert_error(&got, 404, "NOT_FOUND", "device_id: no device dev-nope");
    let (_, v) = s.get("/api/v1/devices/dev-1/rpc", &admin).await;
    assert_eq!(v["rpc"][0]["sent_at"], Value::Null, "{v}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_records_within_their_ttl_are_delivered() {
    let (dir, input) = tmp_with_input("rpc-deliver");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    let cred = s
        .register(&admin, "dev-0", &registration_naming("dev-0"))
        .await;
    s.create_rollout(
        &admin,
        &json!({"package_id": pkg, "target_profile_id": "p", "canary_percent": 100}),
    )
    .await;
    let (_, v) = s.get("/api/v1/devices/dev-0/rpc", &admin).await;
    assert_eq!(v["rpc"][0]["state"], "queued", "{v}");
    let ttl =
        v["rpc"][0]["expires_at"].as_u64().unwrap() - v["rpc"][0]["created_at"].as_u64().unwrap();
    assert_eq!(ttl, 7 * 24 * 3600 * 1000, "the default TTL is a week");
    let (code, _) = s.get("/api/v1/devices/dev-0/ota", &cred).await;
    assert_eq!(code, 200);
    let (_, v) = s.get("/api/v1/devices/dev-0/rpc", &admin).await;
    assert_eq!(v["rpc"][0]["state"], "sent", "{v}");
    assert!(v["rpc"][0]["sent_at"].as_u64().is_some(), "{v}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
