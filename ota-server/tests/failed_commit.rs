//! A commit that fails, and a reload after it that fails too (the database went away for a
//! while): the rollout's memory, ahead of the database, is neither answered from nor built on.
//! Once the database is back, the rollout is taken back from what is stored: no report it
//! never stored counts, its trail has no gap, and a restart restores it.

mod common;

use common::{Srv, config, rollout_to_all, tmp_with_input};
use serde_json::{Value, json};

async fn sql(s: &Srv, statement: &'static str) {
    sqlx::query(statement)
        .execute(&s.running.state.0.db)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn failure(rid: &str, device: &str) -> Value {
    json!({"device_id": device, "rollout_id": rid, "firmware_version": "1.2.0",
           "status": "failure", "reason": "probe failed", "attempt": 1})
}

/// Every record's `seq`, in the trail's order, the trail verified.
async fn seqs(s: &Srv, admin: &str, rid: &str) -> Vec<u64> {
    let trail = s.audit(admin, rid).await;
    let records = trail["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{trail}"));
    let records = ota_core::audit::parse_values(records).unwrap_or_else(|e| panic!("{e}: {trail}"));
    ota_core::audit::verify(&records).unwrap_or_else(|e| panic!("{e}: {trail}"));
    records.iter().map(|r| r.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_commit_and_a_failed_reload_nothing_unstored_is_built_on() {
    let (dir, input) = tmp_with_input("failed-commit");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (pkg, creds) = s.fleet(&admin, &input, &["dev-0", "dev-1"]).await;
    let r = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = r["rollout_id"].as_str().unwrap().to_string();

    // The database refuses the next commit, and the reload after it.
    sql(
        &s,
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_records \
         BEGIN SELECT RAISE(FAIL, 'injected'); END",
    )
    .await;
    sql(&s, "ALTER TABLE rollout_snapshots RENAME TO snapshots_away").await;
    let (code, v) = s.report("dev-0", &creds[0], &failure(&rid, "dev-0")).await;
    assert_eq!(code, 503, "{v}");
    // While it cannot be reloaded, the rollout answers nothing from memory.
    let (code, v) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 503, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("rollout_id: "),
        "{v}"
    );

    // The database is back: the next report is taken on what is stored.
    sql(&s, "ALTER TABLE snapshots_away RENAME TO rollout_snapshots").await;
    sql(&s, "DROP TRIGGER refuse").await;
    let (code, v) = s.report("dev-1", &creds[1], &failure(&rid, "dev-1")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(s.devices_in(&admin, &rid, "failed").await, ["dev-1"]);
    assert_eq!(s.devices_in(&admin, &rid, "sent").await, ["dev-0"]);
    let stored = seqs(&s, &admin, &rid).await;
    assert_eq!(stored, (0..stored.len() as u64).collect::<Vec<_>>());
    // dev-0's assignment, which the failed commit would have ended, still stands.
    let (code, v) = s.get("/api/v1/devices/dev-0/ota", &creds[0]).await;
    assert_eq!((code, &v["rollout_id"]), (200, &json!(rid)), "{v}");
    // dev-0's report, answered 503, is sent again and counts.
    let (code, v) = s.report("dev-0", &creds[0], &failure(&rid, "dev-0")).await;
    assert_eq!(code, 200, "{v}");

    let (_, before) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    s.stop();
    let s = Srv::start(config(&dir)).await;
    let (code, after) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["audit_head"], before["audit_head"]);
    assert_eq!(after["devices"]["failed"], 2, "{after}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
