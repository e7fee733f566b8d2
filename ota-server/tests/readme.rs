//! README.md's "Run the control plane" walkthrough runs as written: its shell block, with
//! the `ota-server` binary on PATH, in a temporary directory, on a free port.

use std::process::Command;

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
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("<!-- control-plane-walkthrough -->\n```sh\n")
        .expect("the walkthrough's start marker");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let script = &block[..block
        .find("```\n<!-- /control-plane-walkthrough -->")
        .expect("its end marker")];

    let dir = std::env::temp_dir().join(format!("ota-server-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ota-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(&dir)
        .env("PATH", path)
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
