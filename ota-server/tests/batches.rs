//! Reports that arrive together are one engine step (issue 17): the commit that takes them
//! hands the rollout the reports of distinct devices as one batch, so they cost one audit
//! record, and each device is still answered with what became of its own report.

mod common;

use std::time::Duration;

use common::{Srv, config, rollout_to_all, tmp_with_input};
use ota_core::report::DeviceReport;
use ota_core::rollout::{DeviceState, Input};
use ota_server::Code;
use ota_server::engine;
use serde_json::{Value, json};

const DEVICES: usize = 8;

/// Waits (bounded) until the device's assignment names the rollout: its command is out.
async fn sent(s: &Srv, id: &str, cred: &str, rid: &str) {
    for _ in 0..200 {
        let (code, v) = s.get(&format!("/api/v1/devices/{id}/ota"), cred).await;
        if code == 200 && v["rollout_id"] == rid {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} was never sent its update");
}

fn report(rid: &str, id: &str, status: &str, version: Option<&str>, attempt: u32) -> Input {
    let mut v = json!({"device_id": id, "rollout_id": rid, "status": status, "attempt": attempt});
    if let Some(version) = version {
        v["firmware_version"] = json!(version);
    }
    let r: DeviceReport = serde_json::from_value(v).unwrap();
    Input::device_report(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_that_arrive_together_are_one_record_and_each_is_answered_alone() {
    let (dir, input) = tmp_with_input("batches");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    let ids: Vec<String> = (0..DEVICES).map(|k| format!("dev-{k}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (pkg, creds) = s.fleet(&admin, &input, &ids).await;
    let r = s.create_rollout(&admin, &rollout_to_all(&pkg)).await;
    let rid = r["rollout_id"].as_str().unwrap().to_string();
    for (k, cred) in creds.iter().enumerate() {
        sent(&s, &format!("dev-{k}"), cred, &rid).await;
    }
    let before = s.audit(&admin, &rid).await;
    let records_before = before["records"].as_array().unwrap().len();

    // Hold the rollout while the reports queue: the next commit takes them all together.
    let st = s.running.state.clone();
    drop(engine::lookup(&st, "acme", &rid).await.unwrap());
    let slot = st.engines.get(&rid).unwrap();
    let guard = slot.hosted.lock().await;
    let mut tasks = Vec::new();
    for k in 0..DEVICES {
        let id = format!("dev-{k}");
        let input = match k {
            // The last device says it is on a second attempt that never went out: refused.
            7 => report(&rid, &id, "success", Some("2.0.0"), 2),
            6 => report(&rid, &id, "in_progress", None, 1),
            _ => report(&rid, &id, "success", Some("2.0.0"), 1),
        };
        let (st, rid) = (st.clone(), rid.clone());
        tasks.push(tokio::spawn(async move {
            engine::input(&st, Some("acme"), &rid, input).await
        }));
    }
    let mut queued = 0;
    for _ in 0..400 {
        queued = slot.queued();
        if queued == DEVICES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(queued, DEVICES, "every report waits for the commit");
    drop(guard);
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for (k, a) in answers.iter().enumerate().take(6) {
        let state = a.as_ref().unwrap().device_state;
        assert_eq!(state, Some(DeviceState::Succeeded), "dev-{k}");
    }
    assert_eq!(
        answers[6].as_ref().unwrap().device_state,
        Some(DeviceState::InProgress)
    );
    let e = answers[7].as_ref().unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition, "{e:?}");
    assert!(e.message.contains("attempt"), "{}", e.message);

    // One record for the eight reports, the refusal in it.
    let after = s.audit(&admin, &rid).await;
    let records = after["records"].as_array().unwrap();
    let new = &records[records_before..];
    let batch: Vec<&Value> = new
        .iter()
        .filter(|r| r["input"]["reports"].is_object())
        .collect();
    assert_eq!(batch.len(), 1, "{new:?}");
    assert_eq!(
        batch[0]["input"]["reports"]["reports"]
            .as_array()
            .unwrap()
            .len(),
        DEVICES,
        "{}",
        batch[0]
    );
    assert_eq!(batch[0]["cause"]["kind"], "devices");
    let text = batch[0].to_string();
    assert!(
        text.contains("report_refused") && text.contains("dev-7"),
        "{text}"
    );
    assert!(
        new.iter().all(|r| r.is_object()
            && r["input"]["report"].is_null()
            && r["input"]["attempt_report"].is_null()),
        "no report recorded alone: {new:?}"
    );

    // The taken reports acknowledged their commands; the refused one did not.
    let rpc_state = |k: usize| {
        let s = &s;
        let admin = admin.clone();
        let rid = rid.clone();
        async move {
            let (_, v) = s
                .get(
                    &format!("/api/v1/devices/dev-{k}/rpc?rollout_id={rid}"),
                    &admin,
                )
                .await;
            v["rpc"][0]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    assert_eq!(rpc_state(0).await, "acked");
    assert_eq!(rpc_state(6).await, "acked");
    assert_ne!(rpc_state(7).await, "acked");

    // A restart replays the batch to the same head and the same devices.
    let (_, status) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    s.stop();
    let s = Srv::start(config(&dir)).await;
    let (code, again) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["audit_head"], status["audit_head"]);
    assert_eq!(again["devices"]["succeeded"], 6, "{again}");
    assert_eq!(again["devices"]["in_progress"], 1, "{again}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
