//! The attempt travels (issue 15, item 7): the server tells each device the attempt of its
//! command (in the assignment and in the `ota_start` record), takes the device's report about
//! it, refuses — and records — a report about an attempt a retry replaced, a report naming no
//! attempt once a retry went out, and a success naming no version; and a restart replays the
//! recorded refusals.

mod common;

use std::time::Duration;

use common::{
    Srv, assert_error, config, firmware, registration_naming, rollout_to_all, tmp_with_input,
};
use serde_json::{Value, json};

/// The device's assignment, once it names `attempt` (bounded wait: the retry's backoff).
async fn assignment_on(s: &Srv, cred: &str, attempt: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (code, v) = s.get("/api/v1/devices/dev-0/ota", cred).await;
        if code == 200 && v["attempt"] == attempt {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the assignment never named attempt {attempt}: {last}");
}

async fn report(s: &Srv, cred: &str, body: Value) -> (u16, Value) {
    s.report("dev-0", cred, &body).await
}

async fn refusals(s: &Srv, admin: &str, rid: &str) -> usize {
    let trail = s.audit(admin, rid).await;
    trail.to_string().matches("\"report_refused\"").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_travels_to_the_device_and_back() {
    let (dir, input) = tmp_with_input("attempts");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (pkg, creds) = s.fleet(&admin, &input, &["dev-0"]).await;
    let cred = creds[0].clone();
    let mut create = rollout_to_all(&pkg);
    create["retries"] = json!({"failed": {"max": 1, "backoff_ms": 50}});
    let r = s.create_rollout(&admin, &create).await;
    let rid = r["rollout_id"].as_str().unwrap().to_string();

    // The first command: attempt 1, in the assignment and in its RPC record.
    let a = assignment_on(&s, &cred, 1).await;
    assert_eq!(a["rollout_id"], rid.as_str(), "{a}");
    let (_, rpc) = s
        .get(
            &format!("/api/v1/devices/dev-0/rpc?rollout_id={rid}"),
            &cred,
        )
        .await;
    assert_eq!(rpc["rpc"][0]["method"], "ota_start", "{rpc}");
    assert_eq!(rpc["rpc"][0]["params"]["attempt"], 1, "{rpc}");
    let (code, _) = s
        .get("/api/v1/devices/dev-0/rpc?rollout_id=bad id", &cred)
        .await;
    assert_eq!(code, 400);

    // Attempt 1 fails; the retry goes out as attempt 2.
    let first = json!({"device_id": "dev-0", "rollout_id": rid, "firmware_version": "1.2.0",
                       "status": "failure", "reason": "probe failed", "attempt": 1});
    let (code, v) = report(&s, &cred, first.clone()).await;
    assert_eq!(code, 200, "{v}");
    assignment_on(&s, &cred, 2).await;
    let (_, rpc) = s
        .get(
            &format!("/api/v1/devices/dev-0/rpc?rollout_id={rid}"),
            &cred,
        )
        .await;
    let last = rpc["rpc"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["method"], &last["params"]["attempt"]),
        (&json!("ota_start"), &json!(2)),
        "{rpc}"
    );
    assert_eq!(refusals(&s, &admin, &rid).await, 0);

    // The first failure, replayed: refused, and recorded. A report naming no attempt is about
    // the first, so it is refused too (it cannot be told from a replay).
    let got = report(&s, &cred, first.clone()).await;
    assert_error(&got, 409, "FAILED_PRECONDITION", "attempt");
    let mut plain = first.clone();
    plain.as_object_mut().unwrap().remove("attempt");
    assert_error(
        &report(&s, &cred, plain).await,
        409,
        "FAILED_PRECONDITION",
        "attempt",
    );
    // A success naming no version counts for nothing either.
    let got = report(
        &s,
        &cred,
        json!({"device_id": "dev-0", "rollout_id": rid, "status": "success", "attempt": 2}),
    )
    .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "firmware_version");
    assert_eq!(refusals(&s, &admin, &rid).await, 3);

    // The retry's own success counts.
    let (code, v) = report(
        &s,
        &cred,
        json!({"device_id": "dev-0", "rollout_id": rid, "firmware_version": "2.0.0",
               "status": "success", "attempt": 2}),
    )
    .await;
    assert_eq!((code, &v["state"]), (200, &json!("succeeded")), "{v}");

    // A restart replays the trail, refusals included, to the same head.
    let (_, before) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    s.stop();
    let s = Srv::start(config(&dir)).await;
    let (code, after) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["audit_head"], before["audit_head"]);
    assert_eq!(after["devices"]["succeeded"], 1, "{after}");
    assert_eq!(refusals(&s, &admin, &rid).await, 3);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_package_no_device_would_take_is_refused_when_the_rollout_is_created() {
    let (dir, input) = tmp_with_input("rollback-binding");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let mut ids = Vec::new();
    // 2.0.0 to send; 1.9.0 signed as a rollback of 2.0.0; 1.8.0 not signed as a rollback.
    for (version, rollback) in [("2.0.0", false), ("1.9.0", true), ("1.8.0", false)] {
        let (fw, pkg, _) = firmware(&input, version, rollback, 70_000);
        s.upload(&admin, &fw).await;
        ids.push(pkg);
    }
    s.empty_profile(&admin, "p").await;
    s.register(&admin, "dev-0", &registration_naming("dev-0"))
        .await;
    let create = |rollback: &str| json!({"package_id": ids[0], "target_profile_id": "p", "rollback_package_id": rollback});
    let got = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&create(&ids[2])),
        )
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "rollback_package_id");
    assert!(
        got.1.to_string().contains("not signed as a rollback"),
        "{}",
        got.1
    );
    s.create_rollout(&admin, &create(&ids[1])).await;
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
