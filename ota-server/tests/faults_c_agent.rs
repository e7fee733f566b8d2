//! The C firmware agent of `examples/c-agent`, several processes at once, updating through
//! `ota_sim::proxy::FaultProxy` with every kind of fault on: dropped connections, resets
//! mid-body, 500s, truncated bodies, wrong `Content-Length`, stalls longer than the agents'
//! timeout, duplicated and reordered responses. Every device still ends on a good version —
//! the new one, or the previous one restored when its probe fails — and the server counts
//! each exactly once. Built with AddressSanitizer, so the
//! agent's error paths run checked for memory errors and leaks.

#[path = "common/c_agent.rs"]
mod c_agent;
mod common;

use std::time::{Duration, Instant};

use c_agent::{CDevice, firmware_of};
use common::{Srv, config, registration, rollout_to_all, tmp_with_input};
use ota_sim::proxy::{FaultProxy, Faults};
use serde_json::json;

const DEVICES: usize = 7;
const SEED: u64 = 2026;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_agents_through_a_faulty_network_all_end_on_the_new_version() {
    let Some(exe) = c_agent::build(true) else {
        return;
    };
    let (dir, input) = tmp_with_input("faults-c-agent");
    // Eight 64 KiB chunks: enough exchanges per device for every kind of fault to land.
    let plaintext = ota_sim::noise(500_000, 5);
    let (fw, fw_id) = firmware_of(&input, "2.0.0", &plaintext);
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");
    s.upload(&admin, &fw).await;
    s.empty_profile(&admin, "p").await;
    // The last device's probe always fails: it must end restored, counted failed once.
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let id = format!("d{i}");
        let cred = s.register(&admin, &id, &registration("p")).await;
        devices.push(CDevice::new(
            &dir,
            &id,
            &cred,
            if i == DEVICES - 1 {
                "/bin/false"
            } else {
                "/bin/true"
            },
        ));
    }
    let v = s.create_rollout(&admin, &rollout_to_all(&fw_id)).await;
    assert_eq!(v["scheduled_count"], json!(DEVICES), "{v}");
    let rid = v["rollout_id"].as_str().unwrap().to_string();

    // Each kind on 4 % of the exchanges (a third of them get a fault); a stall outlasts the
    // agents' 2 s timeout.
    let faults = Faults {
        stall_for: Duration::from_millis(2500),
        ..Faults::each(0.04)
    };
    let proxy = FaultProxy::start(s.running.addr, faults, SEED).unwrap();
    eprintln!("fault proxy seed {SEED}: {}", proxy.url());
    let base = proxy.url();
    let devices = std::sync::Arc::new(devices);
    let devs = devices.clone();
    let results = tokio::task::spawn_blocking(move || {
        // The agents loop (bounded: 40 cycles, 100 ms apart), all at once, each as a process.
        let mut children: Vec<_> = devs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let seed = (i + 1).to_string();
                d.command(
                    &exe,
                    &base,
                    false,
                    &[
                        "--poll-ms",
                        "100",
                        "--max-cycles",
                        "40",
                        "--timeout-ms",
                        "2000",
                        "--attempts",
                        "4",
                        "--cycle-ms",
                        "60000",
                        "--seed",
                        &seed,
                    ],
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        // Every process ends within 4 minutes, or it is killed and the test fails.
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut results = Vec::new();
        for c in &mut children {
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if c.try_wait().unwrap().is_none() {
                let _ = c.kill();
            }
        }
        for c in children {
            let out = c.wait_with_output().unwrap();
            results.push((
                out.status.code(),
                format!(
                    "{}\n--- stderr ---\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        results
    })
    .await
    .unwrap();
    let counts = proxy.counts();
    eprintln!("injected: {counts:?}");
    drop(proxy);

    for (i, (d, (code, out))) in devices.iter().zip(&results).enumerate() {
        // The loop's status is its last cycle's: 0, or a fault that hit that cycle (75: no
        // answer after every attempt; 77: a stale error answer). Never a memory error (98)
        // or a signal.
        assert!(
            matches!(code, Some(0 | 75 | 77)),
            "{}: exit {code:?}: {out}",
            d.id
        );
        if i == DEVICES - 1 {
            assert!(out.contains("\"status\":\"failure\""), "{}: {out}", d.id);
            assert_eq!(
                d.active(),
                c_agent::FACTORY,
                "{} is not restored: {out}",
                d.id
            );
        } else {
            assert!(out.contains("\"status\":\"success\""), "{}: {out}", d.id);
            assert_eq!(d.active(), plaintext, "{} does not run 2.0.0: {out}", d.id);
        }
    }
    // Faults of every kind landed, and the agents got through them.
    for (kind, n) in [
        ("dropped", counts.dropped),
        ("reset", counts.reset),
        ("error_500", counts.error_500),
        ("truncated", counts.truncated),
        ("wrong_length", counts.wrong_length),
        ("stalled", counts.stalled),
        ("duplicated", counts.duplicated),
        ("reordered", counts.reordered),
    ] {
        assert!(n > 0, "no {kind} fault landed: {counts:?}");
    }

    // The server counts every device once: the healthy ones succeeded on 2.0.0, the sick
    // one failed and runs 1.2.0.
    let (_, status) = s.get(&format!("/api/v1/ota/rollouts/{rid}"), &admin).await;
    assert_eq!(
        status["devices"],
        json!({"succeeded": DEVICES - 1, "failed": 1}),
        "{status}"
    );
    assert_eq!(
        status["cumulative"],
        json!({"terminal": DEVICES, "succeeded": DEVICES - 1, "failures": 1}),
        "{status}"
    );
    for (i, d) in devices.iter().enumerate() {
        let (_, v) = s
            .call("GET", &format!("/api/v1/devices/{}", d.id), &admin, None)
            .await;
        let want = if i == DEVICES - 1 { "1.2.0" } else { "2.0.0" };
        assert_eq!(v["device"]["installed"]["temp-sensor-fw"], want, "{v}");
    }
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
