//! Running `ota` in the tests of `ota pack`, `--json`, YAML input, `ota sign` and completions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The result of one run.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output as one JSON object.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that standard error holds every one of `parts`.
    pub fn stderr_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}: {}",
                self.stderr
            );
        }
        self
    }
}

/// Runs `ota` with `args`; the caller's S3 and admin API variables are removed.
pub fn ota<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    ota_env(args, &[])
}

/// [`ota`] with more environment variables.
pub fn ota_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Run {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("ota");
    for v in [
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "S3_BUCKET",
        "CDN_PUBLIC_BASE_URL",
        "ADMIN_API_URL",
        "ADMIN_API_TOKEN",
        "ADMIN_API_PUBLISH_PATH",
        "AWS_REGION",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("running ota");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path as a string.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A fixture's path.
pub fn fixture(rel: &str) -> PathBuf {
    ota_tests::fixture(rel)
}

/// Makes a key pair in `dir/NAME`; gives the private key's path.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    ota(&["keygen", "--out", &s(&dir.join(name))]).expect(0);
    dir.join(name).join("private.pem")
}

/// A `files[]` entry describing `bytes` at `path`.
pub fn entry(path: &str, role: &str, bytes: &[u8]) -> Value {
    serde_json::json!({"path": path, "role": role, "size_bytes": bytes.len(),
        "sha256": ota_core::Sha256Digest::of(bytes).to_hex()})
}

/// The TensorRT fixture manifest with its `files[]` replaced (and its SBOM dropped unless
/// `files` hold `sbom.spdx.json`).
pub fn manifest_with(files: Vec<Value>) -> Value {
    let mut m: Value = serde_json::from_slice(
        &std::fs::read(fixture("manifests/valid/tensorrt-orin-nx.json")).unwrap(),
    )
    .unwrap();
    if !files.iter().any(|f| f["path"] == "sbom.spdx.json") {
        // The fixture's SBOM names its file; without the file there is no SBOM.
        m.as_object_mut().unwrap().remove("sbom");
    }
    m["files"] = Value::Array(files);
    m
}

/// `ota pack`'s seed 002 arguments, with `--key` and `--out`.
pub fn pack_args(key: &Path, out: &Path) -> Vec<String> {
    [
        "pack",
        "--key",
        &s(key),
        "--resource-name",
        "yolo-v8n",
        "--dev-stage",
        "prod",
        "--architecture",
        "arm64",
        "--version",
        "2026-04-15",
        "--out",
        &s(out),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// `args` followed by `more`.
pub fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(ToString::to_string));
    args
}
