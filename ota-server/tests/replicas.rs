//! Two replicas on one PostgreSQL: each rollout is driven by one replica at a time (a lease
//! per rollout), any replica takes requests, and when the driving replica is killed with
//! SIGKILL the other takes the rollout over once the lease has expired. At the end the trail
//! verifies to its head, no sequence number appears twice, and every acknowledged input is
//! in the trail.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{firmware, registration, request, rollout_to_all, tmp_with_input};
use ota_core::audit::{AuditHead, AuditRecord};
use ota_core::report::ReportStatus;
use ota_core::rollout::Input;
use serde_json::{Value, json};

const DEVICES: usize = 24;
const SECRET: &str = "replicas-test-secret";

fn start(dir: &std::path::Path, database: &str) -> (Child, String) {
    common::spawn_server(
        dir,
        SECRET,
        &[
            "--snapshot-every",
            "4",
            "--lease-ms",
            "1000",
            "--database",
            database,
        ],
    )
}

/// What the replicas answered to one request.
#[derive(Default)]
struct Tally {
    /// Acknowledged answers per replica (index 0 or 1).
    acked: [usize; 2],
    /// `UNAVAILABLE` answers: the other replica held the lease.
    unavailable: usize,
}

/// Sends a request to replica `first`, then alternately to the other, while a replica
/// answers `UNAVAILABLE` (it does not hold the rollout's lease) or is unreachable (killed);
/// returns the first other answer.
#[allow(clippy::too_many_arguments)]
async fn send(
    http: &reqwest::Client,
    bases: &[String; 2],
    first: usize,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    tally: &mut Tally,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut k = first;
    loop {
        let (code, v) = request(http, method, format!("{}{path}", bases[k]), token, body).await;
        match code {
            0 => {}
            503 => {
                assert_eq!(v["code"], "UNAVAILABLE", "{v}");
                assert!(v["message"].as_str().unwrap_or("").contains("lease"), "{v}");
                tally.unavailable += 1;
            }
            _ => {
                if code == 200 {
                    tally.acked[k] += 1;
                }
                return (code, v);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no replica took {method} {path} within 30 s"
        );
        k = 1 - k;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_rollout_and_the_survivor_takes_over_after_a_kill_9() {
    let Some(cluster) = common::pg::Cluster::start("replicas") else {
        return;
    };
    let (dir, input) = tmp_with_input("replicas");
    let (fw, fw_id, _) = firmware(&input, "2.0.0", false, 70_000);
    let (mut a, base_a) = start(&dir, &cluster.url);
    let (mut b, base_b) = start(&dir, &cluster.url);
    let bases = [base_a.clone(), base_b.clone()];
    let keys = ota_server::auth::JwtKeys::from_secret(SECRET.as_bytes()).unwrap();
    let admin = keys.token("alice", "acme", "admin", 3600);
    let http = common::http_client();

    let (code, v) = request(
        &http,
        "POST",
        format!("{base_a}/api/v1/ota/packages"),
        &admin,
        Some(&fw),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, v) = request(
        &http,
        "PUT",
        format!("{base_a}/api/v1/ota/profiles/p"),
        &admin,
        Some(&json!({})),
    )
    .await;
    assert!(code == 200 || code == 201, "{code} {v}");
    let mut creds = Vec::new();
    for i in 0..DEVICES {
        let d = format!("d{i:02}");
        let (code, v) = request(
            &http,
            "PUT",
            format!("{}/api/v1/devices/{d}", bases[i % 2]),
            &admin,
            Some(&registration("p")),
        )
        .await;
        assert_eq!(code, 201, "{v}");
        creds.push((d, v["credential"].as_str().unwrap().to_string()));
    }
    // Replica B creates the rollout (with the package A took), and so drives it.
    let (code, v) = request(
        &http,
        "POST",
        format!("{base_b}/api/v1/ota/rollouts"),
        &admin,
        Some(&rollout_to_all(&fw_id)),
    )
    .await;
    assert_eq!((code, &v["scheduled_count"]), (201, &json!(DEVICES)), "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // Reports and operator commands, alternately to both replicas; B is killed half-way.
    let mut tally = Tally::default();
    let mut acked_reports: Vec<(String, ReportStatus)> = Vec::new();
    let mut acked_pauses = 0;
    let mut acked_resumes = 0;
    let mut killed_at = None;
    for (n, (d, cred)) in creds.iter().enumerate() {
        if n == DEVICES / 2 {
            b.kill().unwrap();
            b.wait().unwrap();
            killed_at = Some((Instant::now(), tally.acked));
        }
        let last = if n % 6 == 5 {
            ReportStatus::Failure
        } else {
            ReportStatus::Success
        };
        for (k, status) in [ReportStatus::InProgress, last].into_iter().enumerate() {
            let body = json!({"device_id": d, "rollout_id": rid, "status": status,
                "firmware_version": "2.0.0"});
            let (code, v) = send(
                &http,
                &bases,
                (n + k) % 2,
                "POST",
                &format!("/api/v1/devices/{d}/ota/report"),
                cred,
                Some(&body),
                &mut tally,
            )
            .await;
            assert_eq!(code, 200, "{d} {status:?}: {v}");
            acked_reports.push((d.clone(), status));
        }
        // (The last report completes the rollout: no command after it.)
        if n % 4 == 3 && n + 1 < DEVICES {
            for (op, count) in [("pause", &mut acked_pauses), ("resume", &mut acked_resumes)] {
                let (code, v) = send(
                    &http,
                    &bases,
                    (n / 4) % 2,
                    "POST",
                    &format!("/api/v1/ota/rollouts/{rid}/{op}"),
                    &admin,
                    Some(&json!({})),
                    &mut tally,
                )
                .await;
                assert_eq!(code, 200, "{op}: {v}");
                *count += 1;
            }
        }
    }
    let (killed_at, before) = killed_at.unwrap();
    let took = killed_at.elapsed();
    eprintln!(
        "acknowledged by A {}, by B {}; {} UNAVAILABLE answers; {took:?} after the kill",
        tally.acked[0], tally.acked[1], tally.unavailable
    );
    assert!(
        before[1] > 0 && before[0] == 0,
        "replica B drove the rollout before the kill, alone"
    );
    assert!(
        tally.acked[0] > 0,
        "replica A took the rollout over after the kill"
    );
    assert!(
        tally.unavailable > 0,
        "the replica without the lease refused to apply inputs"
    );

    // The survivor's view: the trail verifies to its head, each seq once, every
    // acknowledged input in it.
    let (code, status) = request(
        &http,
        "GET",
        format!("{base_a}/api/v1/ota/rollouts/{rid}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(code, 200, "{status}");
    let (code, trail) = request(
        &http,
        "GET",
        format!("{base_a}/api/v1/ota/rollouts/{rid}/audit?limit=10000"),
        &admin,
        None,
    )
    .await;
    assert_eq!(code, 200, "{trail}");
    let records: Vec<AuditRecord> =
        ota_core::audit::parse_values(trail["records"].as_array().unwrap()).unwrap();
    let head: AuditHead = status["audit_head"].as_str().unwrap().parse().unwrap();
    ota_core::audit::verify_with_head(&records, &head).unwrap();
    let mut seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "a sequence number appears twice");
    for (d, s) in &acked_reports {
        let found = records.iter().any(|r| {
            matches!(&r.input, Input::Report(rep) if rep.device_id.as_str() == d && rep.status == *s)
        });
        assert!(
            found,
            "the acknowledged report {d} {s:?} is not in the trail"
        );
    }
    let pauses = records
        .iter()
        .filter(|r| matches!(r.input, Input::Pause { .. }))
        .count();
    let resumes = records
        .iter()
        .filter(|r| matches!(r.input, Input::Resume { .. }))
        .count();
    assert!(
        pauses >= acked_pauses && resumes >= acked_resumes,
        "{pauses} {resumes}"
    );
    assert!(acked_pauses > 0);
    assert_eq!(
        status["devices"]["succeeded"],
        json!(DEVICES - DEVICES / 6),
        "{status}"
    );

    a.kill().unwrap();
    a.wait().unwrap();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two replicas in this process over `dir` and the database at `url`: A, then B
/// (`replica_b`), each holding a lease for 60 s, long enough that none expires during a test.
async fn two_replicas(dir: &std::path::Path, url: &str) -> (common::Srv, common::Srv) {
    let mut c = common::config(dir);
    c.database = url.to_string();
    c.lease_ms = 60_000;
    let a = common::Srv::start(c.clone()).await;
    c.replica_id = "replica_b".into();
    let b = common::Srv::start(c).await;
    (a, b)
}

/// The commit itself is guarded: a replica whose lease was taken over while its memory still
/// says it holds it cannot append (its answer is a retryable `UNAVAILABLE`, the trail is
/// unchanged), drops its copy, and the new holder applies the input from the database. A new
/// device is registered only through a replica that can drive the running rollouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_lease_cannot_commit() {
    let Some(cluster) = common::pg::Cluster::start("lease-guard") else {
        return;
    };
    let (dir, input) = tmp_with_input("lease-guard");
    let (fw, fw_id, _) = firmware(&input, "2.0.0", false, 70_000);
    // Nothing expires during the test: only a takeover moves the lease.
    let (a, b) = two_replicas(&dir, &cluster.url).await;
    assert_ne!(a.running.state.config.replica_id, "replica_b");
    let admin = a.token("acme", "admin");

    a.upload(&admin, &fw).await;
    a.empty_profile(&admin, "p").await;
    let mut creds = Vec::new();
    for d in ["d0", "d1"] {
        creds.push(a.register(&admin, d, &registration("p")).await);
    }
    let v = a.create_rollout(&admin, &rollout_to_all(&fw_id)).await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let report = |d: &str| {
        json!({"device_id": d, "rollout_id": rid, "status": "in_progress",
            "firmware_version": "2.0.0"})
    };
    let path = "/api/v1/devices/d0/ota/report";
    let (code, v) = a.call("POST", path, &creds[0], Some(&report("d0"))).await;
    assert_eq!(code, 200, "{v}");
    // B does not hold the lease: it refuses, and applies nothing.
    let path1 = "/api/v1/devices/d1/ota/report";
    let (code, v) = b.call("POST", path1, &creds[1], Some(&report("d1"))).await;
    assert_eq!((code, &v["code"]), (503, &json!("UNAVAILABLE")), "{v}");

    // B takes the lease over behind A's back (as if A had stalled past its expiry).
    let trail_len = |db: sqlx::AnyPool, rid: String| async move {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_records WHERE rollout_id = $1")
                .bind(rid)
                .fetch_one(&db)
                .await
                .unwrap();
        n
    };
    let db = a.running.state.db.clone();
    sqlx::query("UPDATE rollout_leases SET holder = 'replica_b' WHERE rollout_id = $1")
        .bind(rid.clone())
        .execute(&db)
        .await
        .unwrap();
    let before = trail_len(db.clone(), rid.clone()).await;
    // A's memory still says it holds the lease; its commit is refused all the same.
    let (code, v) = a.call("POST", path1, &creds[1], Some(&report("d1"))).await;
    assert_eq!((code, &v["code"]), (503, &json!("UNAVAILABLE")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("lease"), "{v}");
    assert_eq!(trail_len(db.clone(), rid.clone()).await, before);
    // And it stays refused: A dropped its claim.
    let (code, v) = a.call("POST", path1, &creds[1], Some(&report("d1"))).await;
    assert_eq!((code, &v["code"]), (503, &json!("UNAVAILABLE")), "{v}");
    // B reloads the rollout from the database (with A's report in it) and applies.
    let (code, v) = b.call("POST", path1, &creds[1], Some(&report("d1"))).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(trail_len(db.clone(), rid.clone()).await, before + 1);
    let (code, st) = b.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["devices"]["in_progress"], json!(2), "{st}");
    let trail = b.audit(&admin, &rid).await;
    let records: Vec<AuditRecord> =
        ota_core::audit::parse_values(trail["records"].as_array().unwrap()).unwrap();
    let head: AuditHead = st["audit_head"].as_str().unwrap().parse().unwrap();
    ota_core::audit::verify_with_head(&records, &head).unwrap();

    // A new device joins the running rollout: not through A, which cannot drive it (nothing
    // is created), but through B.
    let d2 = registration("p");
    let (code, v) = a.call("PUT", "/api/v1/devices/d2", &admin, Some(&d2)).await;
    assert_eq!((code, &v["code"]), (503, &json!("UNAVAILABLE")), "{v}");
    let (code, v) = b.call("PUT", "/api/v1/devices/d2", &admin, Some(&d2)).await;
    assert_eq!(code, 201, "{v}");
    let (_, st) = b.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(st["scheduled_count"], json!(3), "{st}");

    a.stop();
    b.stop();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The live stream of a rollout is served by any replica: on the replica that does not drive
/// the rollout it tails the outbox, so an operator watching there sees each transition the
/// driving replica commits, in order, without taking the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_on_a_replica_that_does_not_drive_the_rollout_gets_its_events() {
    use futures::StreamExt;
    let Some(cluster) = common::pg::Cluster::start("sse-replica") else {
        return;
    };
    let (dir, input) = tmp_with_input("sse-replica");
    let (fw, fw_id, _) = firmware(&input, "2.0.0", false, 70_000);
    // Nothing expires during the test: A drives the rollout throughout.
    let (a, b) = two_replicas(&dir, &cluster.url).await;
    let admin = a.token("acme", "admin");
    a.upload(&admin, &fw).await;
    a.empty_profile(&admin, "p").await;
    for i in 0..4 {
        a.register(&admin, &format!("d{i}"), &registration("p"))
            .await;
    }
    let v = a
        .create_rollout(
            &admin,
            &json!({"package_id": fw_id, "target_profile_id": "p", "canary_percent": 100}),
        )
        .await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // The stream on B, which does not drive the rollout.
    let r = b
        .http
        .get(format!("{}/api/v1/ota/rollouts/{rid}/events", b.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut events = r.bytes_stream();
    // A drives it: the pause is committed there (B never took the lease).
    let (code, v) = a.act(&admin, &rid, "pause").await;
    assert_eq!(code, 200, "{v}");
    let started = format!("event: profile.ota.rollout.started.acme.{rid}");
    let paused = format!("event: profile.ota.rollout.paused.acme.{rid}");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains(&paused) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("no pause on replica B's stream within 30 s: {seen}"))
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (s_at, p_at) = (seen.find(&started).unwrap(), seen.find(&paused).unwrap());
    assert!(s_at < p_at, "in commit order: {seen}");
    assert_eq!(seen.matches(&paused).count(), 1, "once: {seen}");
    // A still drives the rollout: resuming through A is accepted.
    let (code, v) = a.act(&admin, &rid, "resume").await;
    assert_eq!(code, 200, "{v}");
    a.stop();
    b.stop();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
