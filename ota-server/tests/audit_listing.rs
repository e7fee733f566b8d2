//! `GET /api/v1/ota/rollouts/{id}/audit` serves the trail's lines exactly as stored, so a
//! verifier that hashes the stored bytes (docs/audit-trail.md) reads the API's answer as it
//! reads the trail's file; and a stored record it cannot serve is an error naming it, never
//! a hole in the trail.

mod common;

use common::{Srv, config, rollout_to_all, tmp_with_input};
use serde_json::{Value, json};

/// The raw answer of the audit listing: its status and its records, each the exact bytes the
/// server sent.
async fn listing(s: &Srv, admin: &str, rid: &str) -> (u16, String, Vec<String>) {
    let r = s
        .http
        .get(format!("{}/api/v1/ota/rollouts/{rid}/audit", s.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    #[derive(serde::Deserialize)]
    struct Page {
        records: Vec<Box<serde_json::value::RawValue>>,
    }
    let records = serde_json::from_str::<Page>(&text)
        .map(|p| p.records.iter().map(|r| r.get().to_string()).collect())
        .unwrap_or_default();
    (status, text, records)
}

fn report(rid: &str, device: &str, status: &str, version: &str) -> Value {
    json!({"device_id": device, "rollout_id": rid, "firmware_version": version,
           "status": status, "attempt": 1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_listing_serves_the_stored_lines_byte_for_byte_and_names_one_it_cannot_serve() {
    let (dir, input) = tmp_with_input("audit-listing");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let (pkg, creds) = s.fleet(&admin, &input, &["dev-0", "dev-1"]).await;
    let r = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = r["rollout_id"].as_str().unwrap().to_string();
    for (n, d) in ["dev-0", "dev-1"].into_iter().enumerate() {
        for (status, version) in [("in_progress", "1.2.0"), ("success", "2.0.0")] {
            let (code, v) = s
                .report(d, &creds[n], &report(&rid, d, status, version))
                .await;
            assert_eq!(code, 200, "{v}");
        }
    }
    let (_, st) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    let head: ota_core::audit::AuditHead = st["audit_head"].as_str().unwrap().parse().unwrap();

    // The lines as served are the stored lines: read as the trail's file is read (whole
    // records only as written, members in order), they verify to the head.
    let (code, text, lines) = listing(&s, &admin, &rid).await;
    assert_eq!(code, 200, "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with('[')),
        "a report line: {text}"
    );
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT record FROM audit_records WHERE rollout_id = $1 ORDER BY seq")
            .bind(&rid)
            .fetch_all(&s.running.state.0.db)
            .await
            .unwrap();
    let stored: Vec<String> = stored.into_iter().map(|(r,)| r).collect();
    assert_eq!(lines, stored);
    let file: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let records = ota_core::audit::parse_lines(&file).unwrap();
    ota_core::audit::verify_with_head(&records, &head).unwrap();

    // A stored record that is not JSON is an error naming it, not a record left out.
    sqlx::query("UPDATE audit_records SET record = '{\"seq\":' WHERE rollout_id = $1 AND seq = 1")
        .bind(&rid)
        .execute(&s.running.state.0.db)
        .await
        .unwrap();
    let (code, text, _) = listing(&s, &admin, &rid).await;
    assert_eq!(code, 500, "{text}");
    assert!(text.contains("audit record 1"), "{text}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
