//! The C firmware agent of `examples/c-agent` in the server's tests: built with every warning
//! an error against `include/ota.h`, `libota.so` (built for this test run: ota-ffi is a
//! dev-dependency) and libcurl; and a device for it: its registration on a server, its agent
//! configuration, credential and state directory with file slots.
//!
//! Included by the tests that use it with `#[path = "common/c_agent.rs"] mod c_agent;`,
//! beside `mod common;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::{firmware_package, publisher, registration, seal_and_sign};

/// The installed firmware of a device out of the factory.
pub const FACTORY: &[u8] = b"firmware 1.2.0";

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The directory holding this run's `libota.so` (`target/<profile>/deps`, beside the test).
fn libota_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("test directory").to_path_buf();
    assert!(
        dir.join("libota.so").exists(),
        "libota.so is not in {}: ota-ffi is a dev-dependency of ota-server, so cargo builds it",
        dir.display()
    );
    // A program linked with -lota asks the loader for libota's SONAME: cargo builds the file
    // as libota.so only, so the link from the SONAME is made beside it (another test may be
    // making it too: a link of our own, renamed over).
    let link = dir.join(ota::SONAME);
    if !std::fs::read_link(&link).is_ok_and(|t| t == Path::new("libota.so")) {
        let tmp = dir.join(format!("{}.{}.tmp", ota::SONAME, std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink("libota.so", &tmp).expect("linking libota's SONAME");
        std::fs::rename(&tmp, &link).expect("linking libota's SONAME");
    }
    dir
}

/// Whether a tool answers `ARG`.
fn runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// libcurl's compiler and linker flags (pkg-config, else the usual place of its header).
fn curl_flags() -> Option<(Vec<String>, Vec<String>)> {
    let words = |args: &[&str]| -> Option<Vec<String>> {
        let out = Command::new("pkg-config").args(args).output().ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
    };
    if let (Some(c), Some(l)) = (
        words(&["--cflags", "libcurl"]),
        words(&["--libs", "libcurl"]),
    ) {
        return Some((c, l));
    }
    let header = [
        "/usr/include/curl/curl.h",
        "/usr/include/x86_64-linux-gnu/curl/curl.h",
    ];
    header
        .iter()
        .any(|h| Path::new(h).exists())
        .then(|| (vec![], vec!["-lcurl".to_string()]))
}

/// Builds `examples/c-agent/agent.c` (with AddressSanitizer when `asan`); `None`, after
/// printing why, when the C compiler, libcurl's headers or (without ASan) valgrind are
/// missing and `OTA_REQUIRE_TOOLS` is unset. CI sets it, so there the test always runs.
pub fn build(asan: bool) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut missing = Vec::new();
    if !runs(&cc, "--version") {
        missing.push(cc.clone());
    }
    let curl = curl_flags();
    if curl.is_none() {
        missing.push("libcurl's headers (libcurl4-openssl-dev)".into());
    }
    if !asan && !have_valgrind() {
        missing.push("valgrind".into());
    }
    if !missing.is_empty() {
        assert!(
            std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
            "OTA_REQUIRE_TOOLS is set but {} is not installed",
            missing.join(", ")
        );
        eprintln!(
            "skipped: the C agent test needs {}, which is not installed",
            missing.join(", ")
        );
        return None;
    }
    let (cflags, libs) = curl.unwrap_or_default();
    let lib = libota_dir();
    let out_dir = lib.parent().expect("target dir").join("c-agent");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(if asan {
        "ota-c-agent-asan"
    } else {
        "ota-c-agent"
    });
    let mut cmd = Command::new(cc);
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-g",
        "-O1",
    ]);
    if asan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    let status = cmd
        .arg("-I")
        .arg(workspace().join("include"))
        .args(&cflags)
        .arg(workspace().join("examples/c-agent/agent.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        // DT_RPATH, not DT_RUNPATH: searched before LD_LIBRARY_PATH (see tests/lib.rs).
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lota")
        .args(&libs)
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .expect("running the C compiler");
    assert!(
        status.success(),
        "compiling examples/c-agent/agent.c failed"
    );
    Some(exe)
}

/// Whether valgrind is installed (`OTA_NO_VALGRIND=1` pretends it is not).
pub fn have_valgrind() -> bool {
    std::env::var_os("OTA_NO_VALGRIND").is_none() && runs("valgrind", "--version")
}

/// A sealed, signed firmware package of `plaintext`, written to `dir/fw-VERSION.enc`: its
/// upload body and package id.
pub fn firmware_of(dir: &Path, version: &str, plaintext: &[u8]) -> (Value, String) {
    let p = firmware_package(version, "Fix sensor drift above 60C.");
    let (body, id, _) = seal_and_sign(dir, version, p, plaintext, [0x2e; 16]);
    (body, id)
}

/// A device run by the C agent: its files.
pub struct CDevice {
    /// Its id.
    pub id: String,
    /// `state/`: record, staging, slots.
    pub state: PathBuf,
    /// The agent configuration.
    pub config: PathBuf,
    /// The credential file.
    pub credential: PathBuf,
}

impl CDevice {
    /// Writes the files of device `id` under `dir/id`: its credential, its agent configuration
    /// (this device's profile, the tests' publisher trusted, `probe` as the default probe,
    /// `/bin/true` and `/bin/false` allowed), and slot A holding [`FACTORY`].
    pub fn new(dir: &Path, id: &str, credential: &str, probe: &str) -> CDevice {
        let root = dir.join(id);
        let state = root.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let mut device = registration("");
        device.as_object_mut().unwrap().remove("profile_id");
        device["device_id"] = json!(id);
        let config = json!({
            "device": device,
            "trusted_keys": [publisher().public_key().to_hex()],
            "probe_policy": {"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1,
                             "deadline_ms": 60000},
            "default_probe": {"kind": "exec", "path": probe, "timeout_ms": 10000},
            "exec_allowlist": ["/bin/true", "/bin/false"],
        });
        let d = CDevice {
            id: id.to_string(),
            config: root.join("agent.json"),
            credential: root.join("credential"),
            state,
        };
        std::fs::write(&d.config, config.to_string()).unwrap();
        std::fs::write(&d.credential, format!("{credential}\n")).unwrap();
        std::fs::write(d.state.join("slot-a"), FACTORY).unwrap();
        d
    }

    /// The command that runs the agent for this device against `base` (`http://...`), under
    /// valgrind when `valgrind` (any memory error or definite leak exits 99).
    pub fn command(&self, exe: &Path, base: &str, valgrind: bool, extra: &[&str]) -> Command {
        let mut cmd = if valgrind {
            let mut c = Command::new("valgrind");
            c.args([
                "--quiet",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--show-leak-kinds=definite,indirect",
            ])
            .arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(["--server", base, "--device", &self.id])
            .arg("--credential")
            .arg(&self.credential)
            .arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .args(extra)
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:exitcode=98",
            );
        cmd
    }

    /// Runs the agent to its end: its exit code and its output (stdout then stderr).
    pub fn run(&self, exe: &Path, base: &str, valgrind: bool, extra: &[&str]) -> (i32, String) {
        let out: Output = self
            .command(exe, base, valgrind, extra)
            .output()
            .expect("running the C agent");
        let text = format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// What the active slot holds.
    pub fn active(&self) -> Vec<u8> {
        std::fs::read(self.state.join("current")).unwrap()
    }
}
