//! The C clients under `tests/c/`: compiled with `-Wall -Wextra -Wpedantic -Werror` against
//! `include/ota.h`, run under valgrind with zero errors and no definite leaks.

use ota_tests::{compile_c, fixture, run_c};

#[test]
fn foundation_client() {
    let exe = compile_c("foundation");
    let out = run_c(&exe, &[fixture("").as_os_str()]);
    assert!(out.contains("foundation: all checks passed"), "{out}");
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let dir = ota_tests::c_build_dir().join(format!("tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn publisher_client_under_valgrind() {
    let exe = compile_c("publisher");
    let tmp = tmp_dir("publisher");
    let out = run_c(
        &exe,
        &[fixture("").as_os_str(), tmp.as_os_str(), "3".as_ref()],
    );
    assert!(out.contains("publisher: all checks passed"), "{out}");
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn publisher_client_seals_and_opens_100_mb_under_asan() {
    let exe = ota_tests::compile_c_asan("publisher");
    let tmp = tmp_dir("publisher-asan");
    let out = ota_tests::run_c_asan(
        &exe,
        &[fixture("").as_os_str(), tmp.as_os_str(), "100".as_ref()],
    );
    assert!(out.contains("publisher: all checks passed"), "{out}");
    std::fs::remove_dir_all(tmp).unwrap();
}

/// Writes the directory the C agent updates from: its configuration, signed assignments,
/// sealed artifacts and their plaintexts.
fn agent_fixture(dir: &std::path::Path) {
    use ota_core::assignment::Assignment;
    use ota_core::probe::ProbeSpec;
    use ota_core::sign;
    let trusted: sign::TrustedKeys = [ota_tests::signing_key(1).public_key()]
        .into_iter()
        .collect();
    let config = serde_json::json!({
        "device": {"device_id": "dev_8f3a", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
                   "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}},
        "trusted_keys": [ota_tests::signing_key(1).public_key().to_hex()],
        "probe_policy": {"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1, "deadline_ms": 60000},
        "exec_allowlist": ["/bin/true", "/bin/false"],
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("slot-a.bin"), b"firmware 1.2.0").unwrap();
    std::fs::write(dir.join("plain-1.2.0.bin"), b"firmware 1.2.0").unwrap();
    std::fs::write(
        dir.join("trusted.hex"),
        ota_tests::signing_key(1).public_key().to_hex(),
    )
    .unwrap();
    std::fs::write(dir.join("key.bin"), ota_tests::seal_key().as_bytes()).unwrap();
    let rollback = |from: &str, expires: &str| ota_core::package::Rollback {
        from: from.parse().unwrap(),
        expires: expires.parse().unwrap(),
    };
    for (version, probe, signer, size) in [
        ("2.0.0", "/bin/true", 1, 400_000),
        ("2.1.0", "/bin/false", 1, 150_000),
        ("1.9.0", "/bin/true", 1, 1000),
        ("evil", "/bin/true", 9, 1000),
        // Its signed probe fails, whatever the assignment's says.
        ("2.2.0-signed-probe", "/bin/true", 1, 1000),
        // Rollbacks: of 2.1.0 (the device runs 2.0.0), expired, and of 2.0.0.
        ("1.5.0-from-2.1.0", "/bin/true", 1, 1000),
        ("1.5.0-expired", "/bin/true", 1, 1000),
        ("1.5.0", "/bin/true", 1, 1000),
    ] {
        let plain = ota_tests::noise(size, size as u64);
        let mut p = ota_tests::firmware_package();
        let semver = match version.split_once('-') {
            _ if version == "evil" => "3.0.0",
            Some((v, _)) => v,
            None => version,
        };
        p.version = semver.parse().unwrap();
        p.rollback = match version {
            "1.5.0-from-2.1.0" => Some(rollback("2.1.0", "2100-01-01T00:00:00Z")),
            "1.5.0-expired" => Some(rollback("2.0.0", "2020-01-01T00:00:00Z")),
            "1.5.0" => Some(rollback("2.0.0", "2100-01-01T00:00:00Z")),
            _ => None,
        };
        if version == "2.2.0-signed-probe" {
            p.probe = Some(ProbeSpec::Exec {
                path: "/bin/false".into(),
                args: vec!["--signed".into()],
                timeout_ms: 5_000,
            });
        }
        let artifact = ota_tests::seal_into(&mut p, &plain);
        let env = sign::sign(&p, &[&ota_tests::signing_key(signer)]).unwrap();
        let all: sign::TrustedKeys = [ota_tests::signing_key(signer).public_key()]
            .into_iter()
            .collect();
        let v = sign::verify_envelope(
            env,
            if signer == 1 { &trusted } else { &all },
            1,
            &ota_core::Limits::DEFAULT,
        )
        .unwrap();
        let probe = ProbeSpec::Exec {
            path: probe.into(),
            args: vec![],
            timeout_ms: 5_000,
        };
        let a = Assignment::new(
            &v,
            ota_tests::seal_key(),
            Some("rol_4c7e".parse().unwrap()),
            Some(probe),
        )
        .unwrap();
        std::fs::write(dir.join(format!("assign-{version}.json")), a.to_json()).unwrap();
        if version == "2.1.0" {
            // The same package named as a TUF target: only a TUF client's package may back it.
            let mut t = a.clone();
            t.proof = ota_core::assignment::Proof::Tuf {
                target: "temp-sensor-fw/2.1.0/fw.enc".into(),
            };
            std::fs::write(dir.join("assign-tuf.json"), t.to_json()).unwrap();
        }
        std::fs::write(
            dir.join(format!("envelope-{version}.json")),
            v.envelope_json().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(format!("artifact-{version}.enc")), artifact).unwrap();
        std::fs::write(dir.join(format!("plain-{version}.bin")), plain).unwrap();
    }
}

#[test]
fn firmware_agent_client_under_valgrind() {
    let exe = compile_c("agent");
    let dir = tmp_dir("agent");
    agent_fixture(&dir);
    let out = run_c(&exe, &[dir.as_os_str()]);
    assert!(out.contains("agent: all checks passed"), "{out}");
    assert!(out.contains("power cut after 3 chunks"), "{out}");
    // A cut right after the host swaps (2.0.0) and right after it restores (2.1.0): the
    // command carried out again on resume names its slot, and does not toggle back.
    assert_eq!(
        out.matches("power cut right after the host switched slots")
            .count(),
        2,
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Writes the directory the C control plane reads: seed 004's fleet of 260 sensors (240
/// eligible) and seed 000's 40, the signed firmware 2.0.0 / 2.1.0 and rollback 1.9.0, the
/// trusted key, and the rollout configurations.
fn rollout_fixture(dir: &std::path::Path) {
    use ota_tests::fleet::{firmware, sensors};
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write(
        "fleet-004.json",
        serde_json::to_string(&sensors(260, 13)).unwrap(),
    );
    write(
        "fleet-000.json",
        serde_json::to_string(&sensors(40, 0)).unwrap(),
    );
    write(
        "trusted.hex",
        ota_tests::signing_key(1).public_key().to_hex(),
    );
    let mut ids = std::collections::BTreeMap::new();
    for (version, rollback) in [("2.0.0", false), ("2.1.0", false), ("1.9.0", true)] {
        let v = firmware(version, rollback);
        ids.insert(version, v.id().to_string());
        write(
            &format!("envelope-{version}.json"),
            v.envelope_json().unwrap(),
        );
    }
    let config = |spec: serde_json::Value| {
        serde_json::json!({"rollout_id": "rol_4c7e", "tenant": "acme", "created_by": "alice", "spec": spec})
            .to_string()
    };
    // Seed 004's request, as the seed writes it.
    write(
        "config-004.json",
        config(serde_json::json!({
            "package_id": ids["2.0.0"], "target_profile_id": "prof_temp_v2", "canary_percent": 5,
            "failure_threshold_percent": 10, "rollback_package_id": ids["1.9.0"],
        })),
    );
    // Seed 000's canary: 4 of 40 sensors.
    write(
        "config-000.json",
        config(serde_json::json!({
            "package_id": ids["2.1.0"], "target_profile_id": "prof_temp_v2", "canary_percent": 10,
            "failure_threshold_percent": 10,
        })),
    );
    // Names a package other than the one given.
    write(
        "config-mismatch.json",
        config(serde_json::json!({
            "package_id": ids["2.1.0"], "target_profile_id": "prof_temp_v2",
        })),
    );
    // A canary of 150 %.
    write(
        "config-invalid.json",
        config(serde_json::json!({
            "package_id": ids["2.0.0"], "target_profile_id": "prof_temp_v2", "canary_percent": 150,
        })),
    );
}

#[test]
fn control_plane_client_under_valgrind() {
    let exe = compile_c("rollout");
    let dir = tmp_dir("rollout");
    rollout_fixture(&dir);
    let out = run_c(&exe, &[dir.as_os_str()]);
    assert!(out.contains("rollout: all checks passed"), "{out}");
    assert!(out.contains("seed 004: scheduled_count 12"), "{out}");
    assert!(out.contains("seed 000: paused, fleet impact 0"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tuf_client_under_valgrind() {
    let exe = compile_c("tuf");
    let dir = tmp_dir("tuf");
    let fixtures = fixture("tuf");
    let state = dir.join("rollback-state");
    std::fs::create_dir_all(&state).unwrap();
    for e in std::fs::read_dir(fixtures.join("rollback-timestamp/trusted")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), state.join(e.file_name())).unwrap();
    }
    let out = run_c(&exe, &[fixtures.as_os_str(), dir.as_os_str()]);
    assert!(out.contains("tuf: all checks passed"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn file_device_client_updates_resumes_and_rolls_back_under_valgrind() {
    let exe = compile_c("file_device");
    let fixtures = tmp_dir("file-device-fixtures");
    agent_fixture(&fixtures);
    let state = tmp_dir("file-device-state");
    let out = run_c(&exe, &[fixtures.as_os_str(), state.as_os_str()]);
    assert!(out.contains("file_device: all checks passed"), "{out}");
    assert!(out.contains("power cut after 3 chunks"), "{out}");
    // What the device left on disk: the record, the two slots, and `current` naming 2.0.0's.
    let current = std::fs::read_link(state.join("slots/current")).unwrap();
    let active = state.join("slots").join(&current).join("firmware.bin");
    assert_eq!(
        std::fs::read(active).unwrap(),
        std::fs::read(fixtures.join("plain-2.0.0.bin")).unwrap()
    );
    assert!(state.join("record.json").is_file());
    std::fs::remove_dir_all(fixtures).unwrap();
    std::fs::remove_dir_all(state).unwrap();
}
