//! docs/c-api.md gives the shape of every JSON document a C program passes in, each with a
//! complete example in a ```` ```json NAME ```` block. These tests extract every example and
//! feed it to the library through the C ABI, so the page cannot drift from the code; and they
//! check that `include/ota.h` names every field the examples use.
//!
//! The assignment example is a real signed one; `OTA_BLESS=1 cargo test -p ota-tests --test
//! c_api_docs` writes it again (and the package id the rollout example names) when the
//! package format changes.

use std::ffi::c_char;
use std::ptr;

use ota::*;
use ota_core::Status;

fn page_path() -> std::path::PathBuf {
    ota_tests::workspace_dir().join("docs/c-api.md")
}

fn page() -> String {
    std::fs::read_to_string(page_path()).expect("docs/c-api.md")
}

/// The text of the ```` ```json NAME ```` block.
fn example(page: &str, name: &str) -> String {
    let open = format!("```json {name}\n");
    let start = page
        .find(&open)
        .unwrap_or_else(|| panic!("docs/c-api.md has no ```json {name} block"))
        + open.len();
    let end = page[start..].find("```").expect("an unterminated block") + start;
    page[start..end].to_string()
}

fn json(page: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&example(page, name))
        .unwrap_or_else(|e| panic!("the ```json {name} block is not JSON: {e}"))
}

fn last_error() -> String {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    unsafe { ota_last_error_message(buf.as_mut_ptr().cast(), buf.len(), &mut n) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn text(s: &str) -> (*const c_char, usize) {
    (s.as_ptr().cast(), s.len())
}

/// Asserts a call's status, with the last error when it differs.
fn expect(status: Status, want: Status, what: &str) {
    assert_eq!(status, want, "{what}: {}", last_error());
}

/// The signed firmware the assignment example carries, for the device of the examples.
fn signed_firmware() -> ota_core::VerifiedPackage {
    let mut p = ota_tests::firmware_package();
    p.version = "2.0.0".parse().unwrap();
    ota_tests::seal_into(&mut p, b"temp-sensor-fw 2.0.0, as the docs ship it");
    let key = ota_tests::signing_key(1);
    let env = ota_core::sign::sign(&p, &[&key]).unwrap();
    let trusted = [key.public_key()].into_iter().collect();
    ota_core::sign::verify_envelope(env, &trusted, 1, &ota_core::Limits::DEFAULT).unwrap()
}

/// An agent from `config`, over a file device in a temporary directory; its status.
fn new_agent(
    config: &str,
    dir: &std::path::Path,
) -> (Status, *mut ota_agent, *mut ota_file_device) {
    let mut dev = ptr::null_mut();
    let d = dir.display().to_string();
    let (dp, dn) = text(&d);
    expect(
        unsafe { ota_file_device_open(dp, dn, ptr::null(), 0, &mut dev) },
        Status::Ok,
        "ota_file_device_open",
    );
    let mut io = std::mem::MaybeUninit::<ota_device_io>::uninit();
    expect(
        unsafe { ota_file_device_io(dev, io.as_mut_ptr()) },
        Status::Ok,
        "ota_file_device_io",
    );
    let io = unsafe { io.assume_init() };
    let mut agent = ptr::null_mut();
    let (cp, cn) = text(config);
    let s = unsafe { ota_agent_new(cp, cn, ptr::null(), 0, 1_700_000_000_000, &io, &mut agent) };
    (s, agent, dev)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ota-c-api-docs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_json_example_of_the_c_api_page_is_accepted_by_the_library() {
    let page = page();

    // Device profile: ota_profile_parse.
    let profile = example(&page, "device-profile");
    let mut prof = ptr::null_mut();
    let (p, n) = text(&profile);
    expect(
        unsafe { ota_profile_parse(p.cast(), n, &mut prof) },
        Status::Ok,
        "the device-profile example",
    );
    unsafe { ota_profile_free(prof) };

    // Agent configuration: ota_agent_new; then the assignment: ota_agent_handle_assignment.
    let dir = tmp("agent");
    let config = example(&page, "agent-config");
    let (s, agent, dev) = new_agent(&config, &dir);
    expect(s, Status::Ok, "the agent-config example");
    let assignment = example(&page, "assignment");
    let (a, an) = text(&assignment);
    expect(
        unsafe { ota_agent_handle_assignment(agent, a, an, 1_700_000_001_000) },
        Status::Ok,
        "the assignment example, given to an agent of the agent-config example",
    );
    unsafe {
        ota_agent_free(agent);
        ota_file_device_free(dev);
    }

    // Probes: each is accepted as the agent's default probe.
    for name in ["probe-exec", "probe-http", "probe-file"] {
        let mut c = json(&page, "agent-config");
        c["default_probe"] = json(&page, name);
        let d = tmp(name);
        let (s, agent, dev) = new_agent(&c.to_string(), &d);
        expect(
            s,
            Status::Ok,
            &format!("the {name} example as default_probe"),
        );
        unsafe {
            ota_agent_free(agent);
            ota_file_device_free(dev);
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    // Device report: ota_report_parse_status.
    let report = example(&page, "device-report");
    let mut status = ota_report_status::InProgress;
    let (r, rn) = text(&report);
    expect(
        unsafe { ota_report_parse_status(r, rn, &mut status) },
        Status::Ok,
        "the device-report example",
    );
    assert_eq!(status, ota_report_status::Failure);

    // Rollout configuration: ota_rollout_create, for the assignment's package and a fleet of
    // the device-profile example.
    let env = json(&page, "assignment")["envelope"].to_string();
    let key = json(&page, "agent-config")["trusted_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mut keys = ptr::null_mut();
    let mut package = ptr::null_mut();
    unsafe {
        expect(ota_trusted_keys_new(&mut keys), Status::Ok, "keys");
        let (k, kn) = text(&key);
        expect(
            ota_trusted_keys_add(keys, k, kn),
            Status::Ok,
            "the trusted key",
        );
        let (e, en) = text(&env);
        expect(
            ota_envelope_verify(e, en, keys, 1, &mut package),
            Status::Ok,
            "the assignment's envelope",
        );
    }
    let rollout_config = example(&page, "rollout-config");
    let fleet = format!("[{profile}]");
    let mut rollout = ptr::null_mut();
    let (c, cn) = text(&rollout_config);
    let (f, fln) = text(&fleet);
    expect(
        unsafe {
            ota_rollout_create(
                c,
                cn,
                package,
                ptr::null(),
                f,
                fln,
                1_700_000_000_000,
                &mut rollout,
            )
        },
        Status::Ok,
        "the rollout-config example",
    );
    unsafe {
        ota_rollout_free(rollout);
        ota_verified_package_free(package);
        ota_trusted_keys_free(keys);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every field an example uses is named, in quotes, in `include/ota.h`: the header documents
/// the same shapes as the page.
#[test]
fn the_header_names_every_field_of_every_example() {
    let page = page();
    let header = std::fs::read_to_string(ota_tests::workspace_dir().join("include/ota.h")).unwrap();
    let mut missing = Vec::new();
    let mut check = |doc: &str, v: &serde_json::Value| {
        for key in v.as_object().expect("an object").keys() {
            if !header.contains(&format!("\"{key}\"")) {
                missing.push(format!("{doc}: {key}"));
            }
        }
    };
    for name in [
        "device-profile",
        "agent-config",
        "assignment",
        "device-report",
        "rollout-config",
        "probe-exec",
        "probe-http",
        "probe-file",
    ] {
        check(name, &json(&page, name));
    }
    check(
        "rollout-config spec",
        &json(&page, "rollout-config")["spec"],
    );
    check(
        "agent-config probe_policy",
        &json(&page, "agent-config")["probe_policy"],
    );
    assert!(
        missing.is_empty(),
        "fields the header does not name: {missing:?}"
    );
}

/// With neither a default probe nor a probe in the assignment, the agent refuses the update,
/// and the error says exactly what to add to the configuration.
#[test]
fn an_agent_without_a_probe_says_what_to_add() {
    let page = page();
    let mut c = json(&page, "agent-config");
    c.as_object_mut().unwrap().remove("default_probe");
    let dir = tmp("no-probe");
    let (s, agent, dev) = new_agent(&c.to_string(), &dir);
    expect(s, Status::Ok, "a configuration without default_probe");
    let assignment = example(&page, "assignment");
    let (a, an) = text(&assignment);
    let s = unsafe { ota_agent_handle_assignment(agent, a, an, 1_700_000_001_000) };
    let msg = last_error();
    unsafe {
        ota_agent_free(agent);
        ota_file_device_free(dev);
    }
    assert_eq!(s, Status::ProbeRefused, "{msg}");
    for needed in ["\"default_probe\"", "\"exec_allowlist\"", "docs/c-api.md"] {
        assert!(
            msg.contains(needed),
            "the error does not say {needed}: {msg}"
        );
    }
    // What it says to add, added, is accepted.
    c["default_probe"] =
        serde_json::json!({"kind": "exec", "path": "/usr/bin/selftest", "timeout_ms": 10000});
    c["exec_allowlist"] = serde_json::json!(["/usr/bin/selftest"]);
    let (s, agent, dev) = new_agent(&c.to_string(), &tmp("no-probe-fixed"));
    expect(s, Status::Ok, "the configuration the error asks for");
    expect(
        unsafe { ota_agent_handle_assignment(agent, a, an, 1_700_000_001_000) },
        Status::Ok,
        "the assignment, once the probe is configured",
    );
    unsafe {
        ota_agent_free(agent);
        ota_file_device_free(dev);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The assignment example is the signed firmware of [`signed_firmware`], trusted by the
/// agent-config example's key; the rollout example names its id. `OTA_BLESS=1` writes them.
#[test]
fn the_signed_examples_are_current() {
    let mut page = page();
    let v = signed_firmware();
    let fresh = ota_core::assignment::Assignment::new(
        &v,
        ota_tests::seal_key(),
        Some("rol_4c7e".parse().unwrap()),
        None,
    )
    .unwrap()
    .to_json();
    let key = ota_tests::signing_key(1).public_key().to_hex();
    let old = example(&page, "assignment");
    let old_id = json(&page, "assignment")["package_id"]
        .as_str()
        .unwrap()
        .to_string();
    if std::env::var_os("OTA_BLESS").is_some() {
        page = page.replacen(&old, &format!("{fresh}\n"), 1);
        page = page.replace(&old_id, v.id().as_str());
        std::fs::write(page_path(), page).unwrap();
        return;
    }
    assert_eq!(
        json(&page, "agent-config")["trusted_keys"][0],
        serde_json::json!(key)
    );
    let current: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    assert!(
        json(&page, "assignment") == current,
        "the assignment example of docs/c-api.md is stale: run `OTA_BLESS=1 cargo test -p ota-tests --test c_api_docs`"
    );
    assert_eq!(
        json(&page, "rollout-config")["spec"]["package_id"],
        serde_json::json!(v.id().as_str())
    );
}
