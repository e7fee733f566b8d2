//! Steps that fail are carried out again, against a real `ota-server` on loopback: a switch or
//! a confirm command that fails once, a report the server answers 401 while the device's
//! credential is replaced, a registration that cannot happen yet. Nothing the agent asked for
//! is lost, nothing after it runs first, and the success is reported only once the bootloader
//! was told the new slot is good.

mod common;

use std::path::{Path, PathBuf};

use common::{FACTORY, FW, Slots, World, agent_toml, directory_agent, open, tmp};
use ota_agent::Cycle;
use serde_json::{Value, json};

fn v(s: &str) -> ota_core::Version {
    s.parse().unwrap()
}

/// A shell script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    let mut p = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
    std::fs::set_permissions(path, p).unwrap();
}

/// A device on A/B "partitions" (files) whose switch script fails while `dir/fail-switch`
/// exists (and removes it: it fails once), and whose confirm script fails while
/// `dir/fail-confirm` exists (and leaves it). Answers the configuration, the boot environment
/// file and the file the confirm writes.
fn block_device(w: &World, dir: &Path, id: &str, profile: &str) -> (String, PathBuf, PathBuf) {
    let (a, b) = (dir.join("a.img"), dir.join("b.img"));
    std::fs::write(&a, common::plaintext(FACTORY, 20_000)).unwrap();
    std::fs::write(&b, b"").unwrap();
    let bootenv = dir.join("bootenv");
    std::fs::write(&bootenv, "a\n").unwrap();
    let (switch, confirm) = (dir.join("switch.sh"), dir.join("confirm.sh"));
    let fail_switch = dir.join("fail-switch");
    script(
        &switch,
        &format!(
            "if [ -e {f} ]; then rm {f}; echo 'no boot environment' >&2; exit 1; fi\n\
             echo \"$1\" > {env}",
            f = fail_switch.display(),
            env = bootenv.display()
        ),
    );
    let confirmed = dir.join("confirmed");
    script(
        &confirm,
        &format!(
            "if [ -e {f} ]; then echo 'bootcount not writable' >&2; exit 1; fi\n\
             echo good > {c}",
            f = dir.join("fail-confirm").display(),
            c = confirmed.display()
        ),
    );
    let toml = agent_toml(
        &w.base,
        id,
        profile,
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
    (toml, bootenv, confirmed)
}

/// The state the record on disk says.
fn record_state(dir: &Path) -> String {
    let text = std::fs::read(dir.join("state/record.json")).unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    v["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_that_fails_is_carried_out_again_in_the_next_cycle() {
    let dir = tmp("retry-switch");
    let w = World::start(&dir, 60_000).await;
    let (pkg, plain) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-rs").await;
    let (toml, bootenv, _) = block_device(&w, &dir, "dev-rs-1", "prof-rs");
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-rs").await;
    std::fs::write(dir.join("fail-switch"), "").unwrap();
    let e = d.cycle().await.unwrap_err();
    assert!(e.to_string().contains("no boot environment"), "{e}");
    assert_eq!(std::fs::read_to_string(&bootenv).unwrap().trim(), "a");
    // The swap the agent asked for is not lost: the next cycle switches and goes on.
    let c = d.cycle().await.unwrap();
    assert!(
        matches!(&c, Cycle::Updated { version, .. } if *version == v("2.0.0")),
        "{c:?}"
    );
    assert_eq!(std::fs::read_to_string(&bootenv).unwrap().trim(), "b");
    assert_eq!(std::fs::read(dir.join("b.img")).unwrap(), plain);
    assert_eq!(w.device_state(&rid, "dev-rs-1").await, "succeeded");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_that_fails_is_run_again_before_the_success_is_reported() {
    let dir = tmp("retry-confirm");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-rc").await;
    let (toml, _, confirmed) = block_device(&w, &dir, "dev-rc-1", "prof-rc");
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-rc").await;
    std::fs::write(dir.join("fail-confirm"), "").unwrap();
    let e = d.cycle().await.unwrap_err();
    assert!(e.to_string().contains("bootcount not writable"), "{e}");
    // Not committed on disk before the bootloader was told, and no success went out.
    assert_ne!(record_state(&dir), "committed");
    assert!(!confirmed.exists());
    assert_ne!(w.device_state(&rid, "dev-rc-1").await, "succeeded");
    // Still failing: the cycle fails again, and reports nothing after the confirm.
    let e = d.cycle().await.unwrap_err();
    assert!(e.to_string().contains("bootcount not writable"), "{e}");
    assert_ne!(w.device_state(&rid, "dev-rc-1").await, "succeeded");
    std::fs::remove_file(dir.join("fail-confirm")).unwrap();
    let c = d.cycle().await.unwrap();
    assert!(
        matches!(&c, Cycle::Updated { version, .. } if *version == v("2.0.0")),
        "{c:?}"
    );
    assert_eq!(std::fs::read_to_string(&confirmed).unwrap().trim(), "good");
    assert_eq!(w.device_state(&rid, "dev-rc-1").await, "succeeded");
    assert_eq!(record_state(&dir), "idle");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_committed_before_the_confirm_is_confirmed_after_a_restart() {
    let dir = tmp("retry-committed");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-rk").await;
    let (toml, _, confirmed) = block_device(&w, &dir, "dev-rk-1", "prof-rk");
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-rk").await;
    std::fs::write(dir.join("fail-confirm"), "").unwrap();
    d.cycle().await.unwrap_err();
    drop(d);
    // The record as a kill right after writing it committed, before the confirm, leaves it
    // (what a daemon that saved before confirming left behind).
    let path = dir.join("state/record.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["state"] = json!("committed");
    record["installed"][FW] = json!("2.0.0");
    std::fs::write(&path, record.to_string()).unwrap();
    std::fs::remove_file(dir.join("fail-confirm")).unwrap();
    let mut d = open(&toml).await;
    let c = d.cycle().await.unwrap();
    assert!(
        matches!(&c, Cycle::Updated { version, .. } if *version == v("2.0.0")),
        "{c:?}"
    );
    assert_eq!(std::fs::read_to_string(&confirmed).unwrap().trim(), "good");
    assert_eq!(w.device_state(&rid, "dev-rk-1").await, "succeeded");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_that_fails_is_tried_again_rather_than_probing_the_old_slot() {
    let dir = tmp("retry-reboot");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-rb").await;
    let (toml, bootenv, _) = block_device(&w, &dir, "dev-rb-1", "prof-rb");
    // The switch sets the slot of the next boot; the slot that runs changes only on a
    // reboot, and no reboot command is configured: the reboot fails.
    let next = dir.join("next-boot");
    script(
        &dir.join("switch.sh"),
        &format!("echo \"$1\" > {}", next.display()),
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-rb").await;
    for _ in 0..2 {
        let e = d.cycle().await.unwrap_err();
        assert!(e.to_string().contains("slots.reboot"), "{e}");
        assert_eq!(std::fs::read_to_string(&next).unwrap().trim(), "b");
        assert_eq!(std::fs::read_to_string(&bootenv).unwrap().trim(), "a");
    }
    assert_ne!(w.device_state(&rid, "dev-rb-1").await, "failed");
    // Someone reboots the device: slot b runs, the restarted daemon probes it and commits.
    drop(d);
    std::fs::write(&bootenv, "b\n").unwrap();
    let mut d = open(&toml).await;
    let c = d.cycle().await.unwrap();
    assert!(
        matches!(&c, Cycle::Updated { version, .. } if *version == v("2.0.0")),
        "{c:?}"
    );
    assert_eq!(w.device_state(&rid, "dev-rb-1").await, "succeeded");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_never_rebooted_into_is_pointed_back_when_the_update_fails() {
    let dir = tmp("retry-pointed-back");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 200_000).await;
    w.profile("prof-pb").await;
    let (toml, bootenv, _) = block_device(&w, &dir, "dev-pb-1", "prof-pb");
    let next = dir.join("next-boot");
    script(
        &dir.join("switch.sh"),
        &format!("echo \"$1\" > {}", next.display()),
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-pb").await;
    // Switched to b, and the reboot into it fails: the bootloader's next boot is b.
    let e = d.cycle().await.unwrap_err();
    assert!(e.to_string().contains("slots.reboot"), "{e}");
    assert_eq!(std::fs::read_to_string(&next).unwrap().trim(), "b");
    // The daemon is restarted without a reboot (a stays running): from slot a it cannot tell
    // this from a bootloader that fell back, so the update fails, and the bootloader is
    // pointed back at a: no later reboot starts the version reported failed.
    drop(d);
    let mut d = open(&toml).await;
    let mut outcome = None;
    for _ in 0..4 {
        match d.cycle().await {
            Ok(Cycle::Idle) if outcome.is_some() => break,
            Ok(c) => outcome = Some(c),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        matches!(
            &outcome,
            Some(Cycle::RolledBack { .. } | Cycle::Failed { .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read_to_string(&next).unwrap().trim(), "a");
    assert_eq!(std::fs::read_to_string(&bootenv).unwrap().trim(), "a");
    assert_eq!(w.device_state(&rid, "dev-pb-1").await, "failed");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operator issues `device` a new credential: the one its agent holds is revoked.
async fn revoke(w: &World, device: &str, profile: &str) {
    let (code, v) = w
        .call(
            "PUT",
            &format!("/api/v1/devices/{device}"),
            Some(&json!({
                "profile_id": profile, "device_type": "temp-sensor",
                "hardware_profile": "acme-sensor-v2", "arch": "armv7",
                "installed": {FW: FACTORY}, "issue_credential": true,
            })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_answered_401_is_kept_and_sent_with_the_new_credential() {
    let dir = tmp("retry-report-401");
    let w = World::start(&dir, 60_000).await;
    let (pkg, _) = w.upload("2.0.0", 100_000).await;
    w.profile("prof-r401").await;
    let (toml, _) = directory_agent(
        &dir,
        &w.base,
        "dev-r401-1",
        "prof-r401",
        &w.enrollment_token(),
        "/bin/true",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let rid = w.rollout(&pkg, "prof-r401").await;
    drop(d);
    // A report waits in the outbox (the daemon stopped before the server took it), and the
    // credential is revoked meanwhile.
    let report = ota_core::report::DeviceReport {
        device_id: "dev-r401-1".parse().unwrap(),
        rollout_id: Some(rid.parse().unwrap()),
        firmware_version: Some(v(FACTORY)),
        status: ota_core::report::ReportStatus::Failure,
        reason: Some("the probe failed".into()),
        attempt: None,
    };
    let outbox = dir.join("state/reports.json");
    std::fs::write(&outbox, format!("[{}]", report.to_json())).unwrap();
    revoke(&w, "dev-r401-1", "prof-r401").await;
    let mut d = open(&toml).await;
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(e, ota_agent::DaemonError::Status { status: 401, .. }),
        "{e}"
    );
    // Answered 401, the report is kept...
    let kept: Vec<Value> = serde_json::from_slice(&std::fs::read(&outbox).unwrap()).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(w.device_state(&rid, "dev-r401-1").await, "failed");
    // ...and sent once the device has its new credential.
    d.cycle().await.unwrap();
    let kept: Vec<Value> = serde_json::from_slice(&std::fs::read(&outbox).unwrap()).unwrap();
    assert!(kept.is_empty(), "{kept:?}");
    assert_eq!(w.device_state(&rid, "dev-r401-1").await, "failed");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_kept_until_a_new_one_is_stored() {
    let dir = tmp("retry-credential");
    let w = World::start(&dir, 60_000).await;
    w.profile("prof-rcred").await;
    let enroll = w.enrollment_token();
    let (toml, _) = directory_agent(
        &dir,
        &w.base,
        "dev-rcred-1",
        "prof-rcred",
        &enroll,
        "/bin/true",
        "",
    );
    let mut d = open(&toml).await;
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let cred = dir.join("state/credential");
    let first = std::fs::read_to_string(&cred).unwrap();
    revoke(&w, "dev-rcred-1", "prof-rcred").await;
    // The enrollment token is out of reach for now: no new credential can be had.
    let away = dir.join("enroll.away");
    std::fs::rename(&enroll, &away).unwrap();
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(e, ota_agent::DaemonError::Status { status: 401, .. }),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&cred).unwrap(), first);
    let e = d.cycle().await.unwrap_err();
    assert!(e.to_string().contains("enrollment_token_file"), "{e}");
    assert_eq!(std::fs::read_to_string(&cred).unwrap(), first);
    // A restart meanwhile still finds the credential (and the server still refuses it).
    drop(d);
    let mut d = open(&toml).await;
    d.cycle().await.unwrap_err();
    assert_eq!(std::fs::read_to_string(&cred).unwrap(), first);
    // With the token back, the device registers again and the new credential replaces it.
    std::fs::rename(&away, &enroll).unwrap();
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let second = std::fs::read_to_string(&cred).unwrap();
    assert_ne!(first, second);
    assert!(second.trim().starts_with("otad_"), "{second}");
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
