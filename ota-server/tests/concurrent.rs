//! Identical requests sent at once, on PostgreSQL (where two transactions inserting the same
//! key really race: the second waits for the first's commit, then fails on the key). Each
//! answers as if it had come alone, one after the other: first registrations of one device
//! all succeed, exactly one of them with the credential; PUTs of one new profile all succeed.
//! And a device registered while a rollout is being created joins it.

mod common;

use common::Srv;
use serde_json::{Value, json};

/// How many copies of a request go at once.
const AT_ONCE: usize = 8;

/// Sends `AT_ONCE` copies of `PUT path` with `body` at once; their (status, answer).
async fn at_once(srv: &Srv, admin: &str, path: &str, body: &Value) -> Vec<(u16, Value)> {
    let calls = (0..AT_ONCE).map(|_| srv.call("PUT", path, admin, Some(body)));
    futures::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_first_registrations_and_profiles_sent_at_once_all_succeed() {
    let Some(cluster) = common::pg::Cluster::start("concurrent") else {
        return;
    };
    let dir = common::tmp("concurrent");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let mut c = common::config(&dir);
    c.database = cluster.url.clone();
    let srv = Srv::start(c).await;
    let admin = srv.token("acme", "admin");

    for round in 0..3 {
        let path = format!("/api/v1/ota/profiles/prof-{round}");
        let body = json!({"description": format!("round {round}")});
        for (code, v) in at_once(&srv, &admin, &path, &body).await {
            assert_eq!(code, 200, "{v}");
        }
        let (code, v) = srv.get(&path, &admin).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["profile"]["description"], format!("round {round}"));

        let path = format!("/api/v1/devices/dev-{round}");
        let answers = at_once(
            &srv,
            &admin,
            &path,
            &common::registration(&format!("prof-{round}")),
        )
        .await;
        for (code, v) in &answers {
            assert!(*code == 201 || *code == 200, "{code} {v}");
        }
        let credentials: Vec<&str> = answers
            .iter()
            .filter_map(|(_, v)| v["credential"].as_str())
            .collect();
        assert_eq!(credentials.len(), 1, "{answers:?}");
        let created = answers.iter().filter(|(code, _)| *code == 201).count();
        assert_eq!(created, 1, "{answers:?}");
        // The one credential handed out is the device's.
        let (code, v) = srv.get(&path, credentials[0]).await;
        assert_eq!(code, 200, "{v}");
    }
    srv.stop();
}

/// A device registered while a rollout is being created, after the rollout read its fleet,
/// still joins it: its registration's join did not see the rollout yet, so the creation
/// catches it up. (PostgreSQL: the test holds the rollouts table locked, so the creation
/// waits, its fleet read, while the device registers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registered_while_a_rollout_is_created_joins_it() {
    let Some(cluster) = common::pg::Cluster::start("create-join") else {
        return;
    };
    let (dir, input) = common::tmp_with_input("create-join");
    let mut c = common::config(&dir);
    c.database = cluster.url.clone();
    let srv = Srv::start(c).await;
    let admin = srv.token("acme", "admin");
    let (fw, pkg, _) = common::firmware(&input, "2.0.0", false, 70_000);
    srv.upload(&admin, &fw).await;
    srv.empty_profile(&admin, "p").await;
    srv.register(&admin, "dev-1", &common::registration("p"))
        .await;
    let db = srv.running.state.0.db.clone();
    let mut lock = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE rollouts IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let body = common::rollout_to_all(&pkg);
    let create = srv.call("POST", "/api/v1/ota/rollouts", &admin, Some(&body));
    let meanwhile = async {
        let mut waiting = false;
        for _ in 0..400 {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_locks WHERE NOT granted")
                .fetch_one(&db)
                .await
                .unwrap();
            if n > 0 {
                waiting = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(waiting, "the creation never waited for the rollouts table");
        srv.register(&admin, "dev-2", &common::registration("p"))
            .await;
        lock.commit().await.unwrap();
    };
    let ((code, v), ()) = tokio::join!(create, meanwhile);
    assert_eq!(code, 201, "{v}");
    let rid = v["rollout_id"].as_str().unwrap();
    let (code, listing) = srv
        .get(&format!("/api/v1/ota/rollouts/{rid}/devices"), &admin)
        .await;
    assert_eq!(code, 200, "{listing}");
    assert_ne!(
        common::state_in(&listing, "dev-2"),
        serde_json::Value::Null,
        "{listing}"
    );
    srv.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
