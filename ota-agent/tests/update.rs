//! Updates end to end against a real `ota-server` on loopback: the daemon registers with an
//! enrollment token, polls, fetches the chunks, swaps A/B directories (or A/B "partitions"
//! with a switch script), probes, and reports; a failing probe rolls back, and the next poll
//! tells the server the version the device really runs.

mod common;

use common::{FACTORY, Slots, World, active_payload, agent_toml, directory_agent, open, tmp};
use ota_agent::{Config, Cycle, Daemon};

fn v(s: &str) -> ota_core::Version {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_slot_update_goes_from_poll_to_commit() {
    let dir = tmp("dir-update");
    let w = World::start(&dir, 1234).await;
    let (pkg, plain) = w.upload("2.0.0", 300_000).await;
    w.profile("prof-dir").await;
    let root = dir.join("app");
    let (toml, factory) = directory_agent(
        &dir,
        &w.base,
        "dev-dir-1",
        "prof-dir",
        &w.enrollment_token(),
        "/bin/true",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.running_version(), Some(&v(FACTORY)));
    // The first cycle registers (the credential is stored owner-only) and finds nothing.
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let cred = dir.join("state/credential");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cred).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(d.poll_interval(), std::time::Duration::from_millis(1234));

    let rid = w.rollout(&pkg, "prof-dir").await;
    let mut live = w.running.state.events.subscribe();
    let c = d.cycle().await.unwrap();
    assert_eq!(
        c,
        Cycle::Updated {
            name: common::FW.parse().unwrap(),
            version: v("2.0.0"),
            previous: Some(v(FACTORY)),
        }
    );
    assert_eq!(d.running_version(), Some(&v("2.0.0")));
    // The record, which held the assignment's AES key during the update, is owner-only too.
    let record = dir.join("state/record.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&record).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The new version is in b and runs; the factory version stays in a for a restore.
    assert_eq!(active_payload(&root), ("b".into(), plain));
    assert_eq!(std::fs::read(root.join("a/payload")).unwrap(), factory);
    assert_eq!(w.device_state(&rid, "dev-dir-1").await, "succeeded");
    assert_eq!(w.installed("dev-dir-1").await, "2.0.0");
    // The live view saw every progress step, in order, then the success.
    let mut seen = Vec::new();
    while let Ok(e) = live.try_recv() {
        if e.subject.starts_with("device.ota.progress") {
            seen.push(
                e.payload["step"]
                    .as_str()
                    .unwrap_or(e.payload["status"].as_str().unwrap())
                    .to_string(),
            );
        }
    }
    assert_eq!(
        seen,
        [
            "downloading",
            "verified",
            "installed",
            "swapped",
            "probing",
            "success"
        ],
        "{seen:?}"
    );
    // Nothing more to do; a reopened daemon (a restart) agrees on what runs.
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    drop(d);
    let mut d = open(&toml).await;
    assert_eq!(d.running_version(), Some(&v("2.0.0")));
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many daemons run as tasks of one runtime: the daemon and its futures are `Send`.
#[test]
fn daemons_can_be_spawned_as_tasks() {
    fn send<T: Send + 'static>(_: T) {}
    send(async {
        let c = Config::from_toml("").unwrap();
        let d = Daemon::open(c).await.unwrap();
        d.run(std::future::pending()).await
    });
}

/// A shell script standing in for `fw_setenv`: writes the boot slot to the environment file.
fn script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    let mut p = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
    std::fs::set_permissions(path, p).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_slot_update_switches_with_the_command_and_a_fallback_is_told_on_the_next_poll() {
    let dir = tmp("block-update");
    let w = World::start(&dir, 60_000).await;
    let (pkg, plain) = w.upload("2.0.0", 250_000).await;
    w.profile("prof-block").await;
    let (a, b) = (dir.join("a.img"), dir.join("b.img"));
    let factory = common::plaintext(FACTORY, 20_000);
    std::fs::write(&a, &factory).unwrap();
    std::fs::write(&b, b"").unwrap();
    let bootenv = dir.join("bootenv");
    std::fs::write(&bootenv, "a\n").unwrap();
    let (switch, confirm) = (dir.join("switch.sh"), dir.join("confirm.sh"));
    script(&switch, &format!("echo \"$1\" > {}", bootenv.display()));
    script(
        &confirm,
        &format!("echo good > {}", dir.join("confirmed").display()),
    );
    let toml = agent_toml(
        &w.base,
        "dev-block-1",
        "prof-block",
        &dir.join("state"),
        &w.enrollment_token(),
        Slots::Block {
            a: &a,
            b: &b,
            switch: &switch,
            bootenv: &bootenv,
            confirm: &confirm,
        },
        "/bin/true",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-block").await;
    assert!(
        matches!(d.cycle().await.unwrap(), Cycle::Updated { version, .. } if version == v("2.0.0"))
    );
    // Written raw into the inactive partition, switched by the script, confirmed after the
    // commit; the factory partition is untouched.
    assert_eq!(std::fs::read(&b).unwrap(), plain);
    assert_eq!(std::fs::read(&a).unwrap(), factory);
    assert_eq!(std::fs::read_to_string(&bootenv).unwrap().trim(), "b");
    assert_eq!(
        std::fs::read_to_string(dir.join("confirmed"))
            .unwrap()
            .trim(),
        "good"
    );
    assert_eq!(w.device_state(&rid, "dev-block-1").await, "succeeded");
    assert_eq!(w.installed("dev-block-1").await, "2.0.0");

    // The bootloader falls back to slot a on its own (its boot counter ran out): the next
    // poll tells the server the factory version runs again.
    std::fs::write(&bootenv, "a\n").unwrap();
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    assert_eq!(d.running_version(), Some(&v(FACTORY)));
    assert_eq!(w.installed("dev-block-1").await, FACTORY);
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_rolls_back_and_the_next_poll_tells_the_real_version() {
    let dir = tmp("probe-fails");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-bad").await;
    let root = dir.join("app");
    let (toml, factory) = directory_agent(
        &dir,
        &w.base,
        "dev-bad-1",
        "prof-bad",
        &w.enrollment_token(),
        "/bin/false",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-bad").await;
    match d.cycle().await.unwrap() {
        Cycle::RolledBack {
            version,
            running,
            reason,
            ..
        } => {
            assert_eq!(version, v("2.0.0"));
            assert_eq!(running, Some(v(FACTORY)));
            assert!(reason.contains("exit status"), "{reason}");
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    // The factory slot runs again, untouched.
    assert_eq!(active_payload(&root), ("a".into(), factory));
    assert_eq!(d.running_version(), Some(&v(FACTORY)));
    assert_eq!(w.device_state(&rid, "dev-bad-1").await, "failed");
    // The server is told 2.0.0 runs (as a stale report would); the next poll corrects it.
    let (code, body) = w
        .call(
            "PUT",
            "/api/v1/devices/dev-bad-1",
            Some(&serde_json::json!({
                "profile_id": "prof-bad", "device_type": "temp-sensor",
                "hardware_profile": "acme-sensor-v2", "arch": "armv7",
                "installed": {common::FW: "2.0.0"},
            })),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(w.installed("dev-bad-1").await, "2.0.0");
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    assert_eq!(w.installed("dev-bad-1").await, FACTORY);
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_is_replaced_through_the_enrollment_token() {
    let dir = tmp("revoked");
    let w = World::start(&dir, 60_000).await;
    w.profile("prof-rev").await;
    let (toml, _) = directory_agent(
        &dir,
        &w.base,
        "dev-rev-1",
        "prof-rev",
        &w.enrollment_token(),
        "/bin/true",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let first = std::fs::read_to_string(dir.join("state/credential")).unwrap();
    // An operator issues the device a new credential: the one the agent holds is revoked.
    let (code, v) = w
        .call(
            "PUT",
            "/api/v1/devices/dev-rev-1",
            Some(&serde_json::json!({
                "profile_id": "prof-rev", "device_type": "temp-sensor",
                "hardware_profile": "acme-sensor-v2", "arch": "armv7",
                "installed": {common::FW: FACTORY}, "issue_credential": true,
            })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(
        v["credential"]
            .as_str()
            .is_some_and(|c| c.starts_with("otad_")),
        "{v}"
    );
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(e, ota_agent::DaemonError::Status { status: 401, .. }),
        "{e}"
    );
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let second = std::fs::read_to_string(dir.join("state/credential")).unwrap();
    assert_ne!(first, second);
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
