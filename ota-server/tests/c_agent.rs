//! The C firmware agent of `examples/c-agent` against a real `ota-server` on 127.0.0.1
//! (SQLite in a temporary directory), under valgrind: a healthy device installs the new
//! version and the server counts it succeeded; a device whose probe fails restores its
//! previous slot and reports the failure; a device asking for another package's chunks is
//! refused with PERMISSION_DENIED.

#[path = "common/c_agent.rs"]
mod c_agent;
mod common;

use c_agent::{CDevice, FACTORY, firmware_of};
use common::{Srv, config, registration, rollout_to_all, state_in, tmp_with_input};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_agent_updates_rolls_back_and_is_refused_another_package_under_valgrind() {
    let Some(exe) = c_agent::build(false) else {
        return;
    };
    let (dir, input) = tmp_with_input("c-agent");
    // 300 000 bytes of noise: five 64 KiB chunks, fetched in shuffled order.
    let plaintext = ota_sim::noise(300_000, 13);
    let (fw, fw_id) = firmware_of(&input, "2.0.0", &plaintext);
    let (other, other_id) = firmware_of(&input, "2.0.1", b"another firmware");
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    for body in [&fw, &other] {
        s.upload(&admin, body).await;
    }
    s.empty_profile(&admin, "p").await;
    let mut devices = Vec::new();
    for (id, probe) in [
        ("healthy", "/bin/true"),
        ("sick", "/bin/false"),
        ("nosy", "/bin/true"),
    ] {
        let cred = s.register(&admin, id, &registration("p")).await;
        devices.push(CDevice::new(&dir, id, &cred, probe));
    }
    let v = s.create_rollout(&admin, &rollout_to_all(&fw_id)).await;
    assert_eq!(v["scheduled_count"], json!(3), "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // Each device runs one cycle of the agent under valgrind, as a process.
    let base = s.base.clone();
    let devices = std::sync::Arc::new(devices);
    let (exe2, base2, devs) = (exe.clone(), base.clone(), devices.clone());
    let runs = tokio::task::spawn_blocking(move || {
        let healthy = devs[0].run(&exe2, &base2, true, &["--once", "--seed", "7"]);
        let sick = devs[1].run(&exe2, &base2, true, &["--once"]);
        let nosy = devs[2].run(&exe2, &base2, true, &["--once", "--chunks-of", &other_id]);
        (healthy, sick, nosy)
    })
    .await
    .unwrap();
    let ((code, out), (sick_code, sick_out), (nosy_code, nosy_out)) = runs;

    // The healthy device: every chunk verified, installed into slot B, swapped, probed,
    // reported with each progress step.
    assert_eq!(code, 0, "{out}");
    assert_eq!(devices[0].active(), plaintext, "{out}");
    for step in ["downloading", "verified", "installed", "swapped", "probing"] {
        assert!(
            out.contains(&format!("\"step\":\"{step}\"")),
            "{step}: {out}"
        );
    }
    assert!(out.contains("probe: healthy"), "{out}");
    assert!(out.contains("\"status\":\"success\""), "{out}");

    // The sick device: its probe fails, slot A runs again, the failure is reported.
    assert_eq!(sick_code, 3, "{sick_out}");
    assert_eq!(devices[1].active(), FACTORY, "{sick_out}");
    assert!(
        sick_out.contains("restored: slot-a is active"),
        "{sick_out}"
    );
    assert!(sick_out.contains("\"status\":\"failure\""), "{sick_out}");

    // The nosy device asks for a package that is not its assignment: refused.
    assert_eq!(nosy_code, 77, "{nosy_out}");
    assert!(
        nosy_out.contains("refused: chunk PERMISSION_DENIED"),
        "{nosy_out}"
    );
    assert_eq!(devices[2].active(), FACTORY, "{nosy_out}");

    // The server agrees: one success, one failure; the healthy device runs 2.0.0.
    let (_, status) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    let (_, listing) = s
        .get(&format!("/api/v1/ota/rollouts/{rid}/devices"), &admin)
        .await;
    let state = |id: &str| state_in(&listing, id);
    assert_eq!(state("healthy"), "succeeded", "{listing}");
    assert_eq!(state("sick"), "failed", "{listing}");
    assert_eq!(
        status["devices"],
        json!({"succeeded": 1, "failed": 1, "in_progress": 1}),
        "{status}"
    );
    let (_, v) = s.get("/api/v1/devices/healthy", &admin).await;
    assert_eq!(v["device"]["installed"]["temp-sensor-fw"], "2.0.0", "{v}");

    // A second cycle: nothing more to do, and the slot stays.
    let (exe2, base2, devs) = (exe.clone(), base.clone(), devices.clone());
    let (code, out) =
        tokio::task::spawn_blocking(move || devs[0].run(&exe2, &base2, true, &["--once"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no update"), "{out}");
    assert_eq!(devices[0].active(), plaintext);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The C agent killed (`SIGKILL`) at random points of its update, 25 times per device, then
/// run to the end: each device runs a version the server agrees with — the new one and
/// counted succeeded, or the previous one restored and counted failed (a restart while
/// probing counts as a failed probe) — and a device whose probe always fails is always
/// restored. Every exchange goes through a proxy that stalls it, so the kills land inside
/// downloads, swaps and probes; built with AddressSanitizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_agent_killed_at_random_points_ends_on_a_version_the_server_agrees_with() {
    use ota_sim::proxy::{FaultProxy, Faults};
    use std::time::Duration;
    const KILLS: usize = 25;
    let Some(exe) = c_agent::build(true) else {
        return;
    };
    let (dir, input) = tmp_with_input("c-agent-kill");
    let plaintext = ota_sim::noise(500_000, 21);
    let (fw, fw_id) = firmware_of(&input, "2.0.0", &plaintext);
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    let mut devices = Vec::new();
    for (id, probe) in [("steady", "/bin/true"), ("sick", "/bin/false")] {
        let cred = s.register(&admin, id, &registration("p")).await;
        devices.push(CDevice::new(&dir, id, &cred, probe));
    }
    let v = s.create_rollout(&admin, &rollout_to_all(&fw_id)).await;
    let rid = v["rollout_id"].as_str().unwrap().to_string();
    let slow = Faults {
        stall: 1.0,
        stall_for: Duration::from_millis(40),
        ..Faults::NONE
    };
    let proxy = FaultProxy::start(s.running.addr, slow, 3).unwrap();
    let base = proxy.url();
    let devices = std::sync::Arc::new(devices);
    let devs = devices.clone();
    let finals = tokio::task::spawn_blocking(move || {
        let mut rng = ota_sim::Rng::new(17);
        let mut finals = Vec::new();
        for d in devs.iter() {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..KILLS {
                let mut child = d
                    .command(
                        &exe,
                        &base,
                        false,
                        &["--poll-ms", "20", "--max-cycles", "500"],
                    )
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_millis(rng.below(700)));
                child.kill().unwrap();
                child.wait().unwrap();
                if let Ok(r) = std::fs::read(d.state.join("record.json")) {
                    let r: Value = serde_json::from_slice(&r).expect("the record is whole");
                    seen.insert(r["state"].as_str().unwrap_or("?").to_string());
                }
            }
            eprintln!("{}: killed in states {seen:?}", d.id);
            // What a power cut in the middle of a record's write leaves: the next start
            // removes it (and any a kill above left).
            std::fs::write(d.state.join(".record.json.AbC123"), b"{\"half").unwrap();
            finals.push(d.run(&exe, &base, false, &["--once"]));
            let left: Vec<String> = std::fs::read_dir(&d.state)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".record.json."))
                .collect();
            assert!(left.is_empty(), "{}: left {left:?}", d.id);
        }
        finals
    })
    .await
    .unwrap();
    drop(proxy);

    let (_, listing) = s
        .get(&format!("/api/v1/ota/rollouts/{rid}/devices"), &admin)
        .await;
    let state = |id: &str| state_in(&listing, id);
    for (d, (code, out)) in devices.iter().zip(&finals) {
        assert!(*code == 0 || *code == 3, "{}: {out}", d.id);
        let server = state(&d.id);
        let active = d.active();
        let consistent = (server == "succeeded" && active == plaintext)
            || (server == "failed" && active == FACTORY);
        assert!(consistent, "{}: the server says {server}; {out}", d.id);
    }
    assert_eq!(state("sick"), "failed", "{listing}");
    assert_eq!(devices[1].active(), FACTORY);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
