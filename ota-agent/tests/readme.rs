//! README.md's "Run a device" walkthrough runs as written: its shell block, with `ota-agent`
//! and `ota-server` (built beside it: `cargo test --workspace` builds every binary before any
//! test runs) on PATH, in a temporary directory, on a free port.

use std::path::PathBuf;
use std::process::Command;

/// Where the walkthrough runs: removed when the test ends, failed or not.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn missing(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| !o.status.success())
}

#[test]
fn the_readme_device_walkthrough_runs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ota-agent"))
        .parent()
        .unwrap()
        .to_path_buf();
    let required = std::env::var_os("OTA_REQUIRE_TOOLS").is_some();
    for tool in ["bash", "curl", "jq", "openssl", "cmp"] {
        if missing(tool) {
            assert!(
                !required,
                "OTA_REQUIRE_TOOLS is set but {tool} is not installed"
            );
            eprintln!("{tool} is not installed: skipping the README device walkthrough");
            return;
        }
    }
    if !bin.join("ota-server").is_file() {
        assert!(
            !required,
            "OTA_REQUIRE_TOOLS is set but {} has no ota-server: run `cargo test --workspace` \
             (or `cargo build -p ota-server` first)",
            bin.display()
        );
        eprintln!("ota-server is not built beside ota-agent: skipping the README walkthrough");
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("<!-- device-walkthrough -->\n```sh\n")
        .expect("the walkthrough's start marker");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let script = &block[..block
        .find("```\n<!-- /device-walkthrough -->")
        .expect("its end marker")];

    let dir = Dir(std::env::temp_dir().join(format!("ota-agent-readme-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The server is started in the background by the script and killed at its end; a failed
    // step leaves it running, so the whole process group is bounded and killed here.
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "180", "bash", "-euo", "pipefail", "-c"])
        .arg(format!(
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
        ))
        .current_dir(&dir.0)
        .env("PATH", path)
        .env("PORT", port.to_string())
        .env_remove("OTA_DATA_DIR")
        .env_remove("OTA_DATABASE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = child.wait().unwrap();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "the walkthrough failed ({status}):\n{stdout}\n{stderr}"
    );
    for expected in [
        "idle: nothing assigned",
        "updated: temp-sensor-fw 2.0.0 runs, healthy and committed",
        "dev-0001 runs 2.0.0",
        r#"{"status":"completed","devices":{"succeeded":1}}"#,
        r#"{"temp-sensor-fw":"2.0.0"}"#,
    ] {
        assert!(
            stdout.contains(expected),
            "the walkthrough's output lacks {expected}:\n{stdout}\n{stderr}"
        );
    }
}
