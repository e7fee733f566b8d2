//! An acknowledged upload survives a power cut: the artifact is synced before it is renamed
//! into the store, and the store's directories after, before the package's row is committed.
//! Checked on the server's system calls, under strace.

mod common;

use common::{firmware, request, spawn_server_under, tmp_with_input};

const SECRET: &str = "durable-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_artifact_and_its_directories_are_synced_before_the_answer() {
    let traced = std::process::Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !traced {
        assert!(
            std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
            "OTA_REQUIRE_TOOLS is set but strace is not installed (or cannot trace)"
        );
        eprintln!("strace cannot run here: skipped");
        return;
    }
    let (dir, input) = tmp_with_input("durable");
    let (fw, _, _) = firmware(&input, "2.0.0", false, 70_000);
    let log = dir.join("strace.log");
    let log_arg = log.to_str().unwrap().to_string();
    let wrapper = [
        "strace",
        "-f",
        "-qq",
        "-y",
        "-e",
        "trace=fsync,fdatasync,rename,renameat,renameat2",
        "-o",
        &log_arg,
    ];
    let (mut child, base) = spawn_server_under(&wrapper, &dir, SECRET, &[]);
    let keys = ota_server::auth::JwtKeys::from_secret(SECRET.as_bytes()).unwrap();
    let admin = keys.token("alice", "acme", "admin", 3600);
    let http = common::http_client();
    let (code, v) = request(
        &http,
        "POST",
        format!("{base}/api/v1/ota/packages"),
        &admin,
        Some(&fw),
    )
    .await;
    // The server is strace's child: killing strace would leave it running, detached.
    let strace = child.id();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .unwrap_or_default();
    for pid in children.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    let _ = child.wait();
    assert!(
        !children.trim().is_empty(),
        "the server was not strace's child"
    );
    assert_eq!(code, 201, "{v}");
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let store = std::fs::canonicalize(dir.join("data/artifacts")).unwrap();
    let tenant = store.join("acme");
    let (store, tenant) = (store.to_str().unwrap(), tenant.to_str().unwrap());
    let renamed = lines
        .iter()
        .position(|l| {
            l.contains("rename")
                && l.ends_with("= 0")
                && l.contains(&format!("\"{tenant}/"))
                && l.contains(".enc\"")
        })
        .unwrap_or_else(|| panic!("no rename into {tenant}:\n{log}"));
    let synced = |path: &str, lines: &[&str]| {
        lines
            .iter()
            .any(|l| l.contains("fsync(") && l.contains(&format!("<{path}>")))
    };
    let from = lines[renamed]
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("{}", lines[renamed]));
    assert!(
        synced(from, &lines[..renamed]),
        "{from} not synced before its rename:\n{log}"
    );
    assert!(
        synced(tenant, &lines[renamed..]),
        "{tenant} not synced after the rename:\n{log}"
    );
    assert!(
        synced(store, &lines[renamed..]),
        "{store} not synced after the rename:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
