//! README.md's "Run the control plane" walkthrough runs as written: its shell block, with
//! the `ota-server` binary on PATH, in a temporary directory, on a free port. And its
//! PostgreSQL + NATS command starts a server that answers from that database.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

/// README.md's block between `<!-- NAME -->` and `<!-- /NAME -->`.
fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {name} -->\n```sh\n"))
        .unwrap_or_else(|| panic!("README.md's {name} start marker"));
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let end = block
        .find(&format!("```\n<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("README.md's {name} end marker"));
    block[..end].to_string()
}

/// `PATH` with the directory of the `ota-server` binary under test first.
fn path_with_server() -> std::ffi::OsString {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ota-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_postgres_and_nats_command_starts_a_server_on_that_database() {
    let http = common::http_client();
    let Some(nats_bin) = common::nats::server() else {
        return;
    };
    let Some(pg) = common::pg::Cluster::start("readme") else {
        return;
    };
    let (nats_port, monitor) = (common::free_port(), common::free_port());
    let _nats = common::nats::Nats::start_monitored(&nats_bin, nats_port, monitor);
    let dir = common::tmp("readme-pg");
    let data = dir.join("data");
    let block = readme_block("server-postgres");
    let mut script = block.clone();
    for (from, to) in [
        ("postgres://ota:PASSWORD@127.0.0.1/ota", pg.url.clone()),
        (
            "nats://127.0.0.1:4222",
            format!("nats://127.0.0.1:{nats_port}"),
        ),
        ("/var/lib/ota-server", data.display().to_string()),
    ] {
        assert!(script.contains(from), "README.md's command names {from}");
        script = script.replace(from, &to);
    }
    let port = common::free_port();
    let server = env!("CARGO_BIN_EXE_ota-server");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &format!("exec {script}")])
        .current_dir(&dir)
        .env("PATH", path_with_server())
        .env("OTA_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("OTA_DATA_DIR")
        .env_remove("OTA_DATABASE")
        .env_remove("OTA_NATS")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // It listens once the schema is migrated: up to 60 s, for a cold cluster.
    let mut up = false;
    for _ in 0..600 {
        if common::request(
            &http,
            "GET",
            format!("http://127.0.0.1:{port}/healthz"),
            "",
            None,
        )
        .await
        .0 == 200
        {
            up = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(up, "the server did not come up:\n{}", log());
    // An admin's token from the secret in the data directory, and a listing answered from
    // PostgreSQL.
    let token = Command::new(server)
        .args(["token", "--tenant", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    let (status, body) = common::request(
        &http,
        "GET",
        format!("http://127.0.0.1:{port}/api/v1/ota/packages"),
        token.trim(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", log());
    assert_eq!(body["packages"], serde_json::json!([]), "{body}");
    // And it is NATS's client (its outbox publisher connects in the background).
    let mut clients = serde_json::Value::Null;
    for _ in 0..100 {
        clients = common::request(
            &http,
            "GET",
            format!("http://127.0.0.1:{monitor}/connz"),
            "",
            None,
        )
        .await
        .1;
        if clients["num_connections"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        clients["num_connections"] == 1,
        "the server is not connected to NATS:\n{clients}\n{}",
        log()
    );
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_walkthrough_runs() {
    for tool in ["bash", "curl", "jq", "openssl"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| !o.status.success())
        {
            assert!(
                std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
                "OTA_REQUIRE_TOOLS is set but {tool} is not installed"
            );
            eprintln!("{tool} is not installed: skipping the README walkthrough");
            return;
        }
    }
    let script = &readme_block("control-plane-walkthrough");

    let dir = std::env::temp_dir().join(format!("ota-server-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(&dir)
        .env("PATH", path_with_server())
        .env("PORT", port.to_string())
        .env_remove("OTA_DATA_DIR")
        .env_remove("OTA_DATABASE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    for expected in [
        r#""status":"available","checksum_verified":true"#,
        r#""code":"INVALID_ARGUMENT","message":"sha256: "#,
        r#""status":"active","canary_percent":5,"scheduled_count":12"#,
        "ota-complete: false",
        r#""code":"PERMISSION_DENIED""#,
        r#""state":"succeeded""#,
        r#"{"method":"ota_start","state":"acked"}"#,
        r#"{"status":"paused","halt_reason":""#,
        r#""status":"active","#,
        r#""status":"rolling_back","#,
        "event: profile.ota.rollout.started.acme.rol_",
        "event: profile.ota.rollout.paused.acme.rol_",
    ] {
        assert!(
            all.contains(expected),
            "{expected:?} is not in the output:\n{all}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
