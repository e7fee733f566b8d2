//! Events reach NATS: the 11 % failure pause arrives at a subscriber with its id in
//! `Nats-Msg-Id`; an event committed while NATS is down stays in the outbox and is published
//! when NATS is back (here, by the restarted server). With `--nats-jetstream`, an event counts
//! as published only once a stream has stored it.

mod common;

use std::time::Duration;

use common::nats::Nats;
use common::{Srv, config, firmware, registration, tmp_with_input};
use futures::StreamExt;
use serde_json::json;

async fn next_on(sub: &mut async_nats::Subscriber, subject: &str) -> async_nats::Message {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{subject} within 20 s"))
            .expect("the subscription stays open");
        if m.subject.as_str() == subject {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_nats_and_survive_its_outage() {
    let Some(bin) = common::nats::server() else {
        return;
    };
    let port = common::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let nats = Nats::start(&bin, port);
    let watcher = async_nats::connect(url.as_str()).await.unwrap();
    let mut sub = watcher.subscribe("profile.ota.rollout.>").await.unwrap();
    watcher.flush().await.unwrap();

    let (dir, input) = tmp_with_input("nats");
    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let mut cfg = config(&dir);
    cfg.nats = Some(url.clone());
    let s = Srv::start(cfg.clone()).await;
    let admin = s.token("acme", "admin");
    assert_eq!(
        s.call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
            .await
            .0,
        201
    );
    s.empty_profile(&admin, "p").await;
    let mut creds = Vec::new();
    for i in 0..40 {
        let (_, v) = s
            .call(
                "PUT",
                &format!("/api/v1/devices/d{i:02}"),
                &admin,
                Some(&registration("p")),
            )
            .await;
        creds.push((
            format!("d{i:02}"),
            v["credential"].as_str().unwrap().to_string(),
        ));
    }
    let v = s
        .create_rollout(
            &admin,
            &json!({
            "package_id": pkg, "target_profile_id": "p", "canary_percent": 25,
            "failure_threshold_percent": 10}),
        )
        .await;
    assert_eq!(v["scheduled_count"], json!(10), "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let m = next_on(&mut sub, &format!("profile.ota.rollout.started.acme.{rid}")).await;
    assert_eq!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str()),
        Some(format!("{rid}:0:0").as_str())
    );

    // Two failures of the 10 canary devices: the pause reaches the subscriber.
    let canary = s.devices_in(&admin, &rid, "sent").await;
    for d in &canary[..2] {
        let cred = &creds.iter().find(|(id, _)| id == d).unwrap().1;
        let (code, v) = s
            .call(
                "POST",
                &format!("/api/v1/devices/{d}/ota/report"),
                cred,
                Some(&json!({
                "device_id": d, "rollout_id": rid, "status": "failure"})),
            )
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let m = next_on(&mut sub, &format!("profile.ota.rollout.paused.acme.{rid}")).await;
    let payload: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(payload["rollout_id"], rid.as_str());
    assert_eq!(payload["kind"], "paused");

    // NATS goes down; the resume is committed anyway and waits in the outbox.
    drop(sub);
    drop(watcher);
    drop(nats);
    let (code, _) = s.act(&admin, &rid, "resume").await;
    assert_eq!(code, 200);
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("\nota_outbox_unpublished 0\n"),
        "{metrics}"
    );
    s.stop();

    // NATS is back; the restarted server publishes what was waiting.
    let nats = Nats::start(&bin, port);
    let watcher = async_nats::connect(url.as_str()).await.unwrap();
    let mut sub = watcher.subscribe("profile.ota.rollout.>").await.unwrap();
    watcher.flush().await.unwrap();
    let s = Srv::start(cfg).await;
    let m = next_on(&mut sub, &format!("profile.ota.rollout.resumed.acme.{rid}")).await;
    assert!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .is_some()
    );
    s.stop();
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The outbox's events as one JetStream stream stores them: their ids, in the stream's order.
async fn stream_ids(stream: &mut async_nats::jetstream::stream::Stream) -> Vec<String> {
    let n = stream.info().await.unwrap().state.messages;
    let mut ids = Vec::new();
    for seq in 1..=n {
        let m = stream.get_raw_message(seq).await.unwrap();
        ids.push(m.headers.get("Nats-Msg-Id").unwrap().as_str().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_jetstream_an_event_waits_until_a_stream_has_stored_it() {
    let Some(bin) = common::nats::server() else {
        return;
    };
    let port = common::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (dir, input) = tmp_with_input("jetstream");
    let _nats = Nats::start_jetstream(&bin, port, &dir.join("jetstream"));
    let watcher = async_nats::connect(url.as_str()).await.unwrap();
    let mut sub = watcher.subscribe("profile.ota.rollout.>").await.unwrap();
    watcher.flush().await.unwrap();

    let (fw, pkg, _) = firmware(&input, "2.0.0", false, 70_000);
    let mut cfg = config(&dir);
    cfg.nats_jetstream = true;
    // JetStream is asked for without a NATS server to publish to: refused, naming the flag.
    let refused = ota_server::serve(cfg.clone()).await.err().unwrap();
    assert!(refused.contains("--nats-jetstream"), "{refused}");
    cfg.nats = Some(url.clone());
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    assert_eq!(
        s.call("POST", "/api/v1/ota/packages", &admin, Some(&fw))
            .await
            .0,
        201
    );
    s.empty_profile(&admin, "p").await;
    for i in 0..4 {
        s.call(
            "PUT",
            &format!("/api/v1/devices/d{i}"),
            &admin,
            Some(&registration("p")),
        )
        .await;
    }
    let v = s
        .create_rollout(
            &admin,
            &json!({"package_id": pkg, "target_profile_id": "p"}),
        )
        .await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // No stream captures the subjects: the server sends the event, nothing stores it, and it
    // is sent again (a server that took the NATS server's receipt for publication would have
    // marked it published after the first).
    let started = format!("profile.ota.rollout.started.acme.{rid}");
    let id = |m: &async_nats::Message| {
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_string())
    };
    // (This subscriber is interest enough for the NATS server: the publish waits for a
    // stream's acknowledgement that never comes.)
    let first = id(&next_on(&mut sub, &started).await);
    assert_eq!(id(&next_on(&mut sub, &started).await), first, "sent again");
    // Without it, the NATS server answers "no responders" at once: still not published.
    drop(sub);
    watcher.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("\nota_outbox_unpublished 0\n"),
        "{metrics}"
    );

    // A stream appears: everything waiting is stored, once each, in commit order, and the
    // outbox empties.
    let js = async_nats::jetstream::new(watcher.clone());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "OTA".into(),
            subjects: vec!["profile.ota.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut emptied = false;
    for _ in 0..200 {
        if s.metrics().await.contains("\nota_outbox_unpublished 0\n") {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emptied, "{}", s.metrics().await);
    let ids = stream_ids(&mut stream).await;
    assert_eq!(ids.first(), Some(&format!("{rid}:0:0")), "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "stored once each: {ids:?}");
    let position = |id: &str| -> (u64, u64) {
        let mut p = id.rsplitn(3, ':').map(|n| n.parse::<u64>().unwrap());
        let idx = p.next().unwrap();
        (p.next().unwrap(), idx)
    };
    let order: Vec<_> = ids.iter().map(|i| position(i)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "in commit order: {ids:?}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
