//! What the daemon tests share: a real `ota-server` in-process on 127.0.0.1 (SQLite in a
//! temporary directory), packages sealed and signed with the core's publisher and uploaded
//! through the API, rollouts created through the API, and agent configurations.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_core::Package;
use ota_core::seal::SealKey;
use ota_core::sign::{self, SigningKey};
use serde_json::{Value, json};

/// The firmware's package name.
pub const FW: &str = "temp-sensor-fw";
/// The version devices ship with.
pub const FACTORY: &str = "1.2.0";

/// The publisher key of the tests.
pub fn publisher() -> SigningKey {
    SigningKey::from_secret([1; 32])
}

/// The AES key of the tests' artifacts.
pub fn seal_key() -> SealKey {
    SealKey::from_bytes([0x5e; 32])
}

/// A fresh temporary directory, unique to the test and the process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Incompressible plaintext of a version (so its artifact spans several chunks).
pub fn plaintext(version: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (version.len() as u64) ^ (len as u64);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) ^ version.as_bytes()[i % version.len()]
        })
        .collect()
}

/// A sealed, signed firmware package: (upload body, package id, sealed artifact, plaintext).
/// The artifact is written to `dir/fw-VERSION.enc`.
pub fn firmware(dir: &Path, version: &str, len: usize) -> (Value, String, Vec<u8>, Vec<u8>) {
    let p = Package::from_json(
        json!({
            "type": "fw", "name": FW, "version": version,
            "artifact_uri": format!("s3://ota-artifacts/temp-sensor/fw-{version}.enc"),
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 1,
            "compatibility": {"device_types": ["temp-sensor"], "min_version": "1.0.0"},
            "release_notes": "Fix sensor drift above 60C.",
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let mut p = p;
    let plain = plaintext(version, len);
    let (bytes, sealed) = ota_core::seal::seal_bytes(&seal_key(), [0x1f; 16], &plain).unwrap();
    p.set_sealed(&sealed);
    let env = sign::sign(&p, &[&publisher()]).unwrap();
    let path = dir.join(format!("fw-{version}.enc"));
    std::fs::write(&path, &bytes).unwrap();
    let id = ota_core::PackageId::of(&env.payload).to_string();
    let body = json!({
        "envelope": serde_json::from_str::<Value>(&env.to_json()).unwrap(),
        "encryption_key": seal_key().to_hex(),
        "artifact_uri": format!("file://{}", path.display()),
    });
    (body, id, bytes, plain)
}

/// A control plane on loopback with its admin token.
pub struct World {
    /// The server.
    pub running: ota_server::Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub http: reqwest::Client,
    /// An admin token of tenant `acme`.
    pub admin: String,
    /// The test's directory.
    pub dir: PathBuf,
}

impl World {
    /// Starts a server over `dir` (SQLite, artifacts from `dir/in`), suggesting
    /// `poll_interval_ms`.
    pub async fn start(dir: &Path, poll_interval_ms: u64) -> World {
        std::fs::create_dir_all(dir.join("in")).unwrap();
        let mut c = ota_server::Config::new(dir.join("data"));
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.artifact_roots = vec![dir.join("in")];
        c.trusted_keys = vec![publisher().public_key().to_hex()];
        c.jwt_secret = Some("test-secret-of-the-agent".into());
        c.poll_interval_ms = poll_interval_ms;
        let running = ota_server::serve(c).await.unwrap();
        let base = format!("http://{}", running.addr);
        let admin = running.state.jwt.token("alice", "acme", "admin", 3600);
        World {
            running,
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin,
            dir: dir.to_path_buf(),
        }
    }

    /// A request with the admin token: (status, JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Seals, signs and uploads a firmware version; answers (package id, plaintext).
    pub async fn upload(&self, version: &str, len: usize) -> (String, Vec<u8>) {
        let (body, id, _, plain) = firmware(&self.dir.join("in"), version, len);
        let (code, v) = self.call("POST", "/api/v1/ota/packages", Some(&body)).await;
        assert_eq!(code, 201, "{v}");
        (id, plain)
    }

    /// Creates a device profile.
    pub async fn profile(&self, id: &str) {
        let (code, v) = self
            .call(
                "PUT",
                &format!("/api/v1/ota/profiles/{id}"),
                Some(&json!({"description": "agents under test"})),
            )
            .await;
        assert_eq!(code, 200, "{v}");
    }

    /// A rollout of `package_id` to every device of `profile` at once.
    pub async fn rollout(&self, package_id: &str, profile: &str) -> String {
        let (code, v) = self
            .call(
                "POST",
                "/api/v1/ota/rollouts",
                Some(&json!({
                    "package_id": package_id, "target_profile_id": profile,
                    "canary_percent": 100, "failure_threshold_percent": 50,
                })),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        v["rollout_id"].as_str().unwrap().to_string()
    }

    /// A device's state in a rollout.
    pub async fn device_state(&self, rollout_id: &str, device: &str) -> String {
        let (code, v) = self
            .call(
                "GET",
                &format!("/api/v1/ota/rollouts/{rollout_id}/devices?page_size=1000"),
                None,
            )
            .await;
        assert_eq!(code, 200, "{v}");
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == device)
            .map(|d| d["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The version of the firmware the server's device row says the device runs.
    pub async fn installed(&self, device: &str) -> String {
        let (code, v) = self
            .call("GET", &format!("/api/v1/devices/{device}"), None)
            .await;
        assert_eq!(code, 200, "{v}");
        v["device"]["installed"][FW]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Writes the admin token to a file, for agents to enroll with.
    pub fn enrollment_token(&self) -> PathBuf {
        let p = self.dir.join("enroll.jwt");
        std::fs::write(&p, &self.admin).unwrap();
        p
    }
}

/// How an agent under test installs.
pub enum Slots<'a> {
    /// A/B directories under this root.
    Directory(&'a Path),
    /// Files standing in for partitions, the switch script, and the file it writes the boot
    /// slot to.
    Block {
        /// Slot a.
        a: &'a Path,
        /// Slot b.
        b: &'a Path,
        /// The switch script.
        switch: &'a Path,
        /// The boot environment file.
        bootenv: &'a Path,
        /// The confirm script.
        confirm: &'a Path,
    },
}

/// The TOML configuration of an agent under test: a quick probe policy, `probe` as its exec
/// probe (`/bin/true` or `/bin/false`), `extra` top-level lines.
// The tests read best with the whole configuration in one call.
#[allow(clippy::too_many_arguments)]
pub fn agent_toml(
    server: &str,
    device: &str,
    profile: &str,
    state_dir: &Path,
    enroll: &Path,
    slots: Slots<'_>,
    probe: &str,
    extra: &str,
) -> String {
    let slots = match slots {
        Slots::Directory(root) => format!("kind = \"directory\"\nroot = {:?}\n", root),
        Slots::Block {
            a,
            b,
            switch,
            bootenv,
            confirm,
        } => format!(
            "kind = \"block\"\na = {a:?}\nb = {b:?}\nswitch = [{switch:?}, \"{{slot}}\"]\n\
             booted = [\"/bin/cat\", {bootenv:?}]\nconfirm = [{confirm:?}]\n"
        ),
    };
    format!(
        r#"server = "{server}"
device_id = "{device}"
state_dir = {state_dir:?}
enrollment_token_file = {enroll:?}
trusted_keys = ["{key}"]
exec_allowlist = ["/bin/true", "/bin/false"]
poll_interval_ms = 200
max_backoff_ms = 1000
request_timeout_ms = 10000
{extra}

[device]
profile_id = "{profile}"
device_type = "temp-sensor"
hardware_profile = "acme-sensor-v2"
arch = "armv7"
installed = {{ {FW} = "{FACTORY}" }}

[slots]
{slots}
[probe]
kind = "exec"
path = "{probe}"
timeout_ms = 5000

[probe_policy]
initial_delay_ms = 0
interval_ms = 20
successes_needed = 2
failures_tolerated = 0
deadline_ms = 30000
"#,
        key = publisher().public_key().to_hex(),
    )
}

/// The configuration of an agent under test with A/B directory slots under `home/app`, made
/// with the factory version active in `a` ([`factory_dir_slots`]), and its state in
/// `home/state`: [`agent_toml`] for `device` of `profile`, talking to `server` and enrolling
/// with the token in `enroll`. Returns the TOML and the factory payload.
pub fn directory_agent(
    home: &Path,
    server: &str,
    device: &str,
    profile: &str,
    enroll: &Path,
    probe: &str,
    extra: &str,
) -> (String, Vec<u8>) {
    let root = home.join("app");
    let factory = factory_dir_slots(&root);
    let state = home.join("state");
    let slots = Slots::Directory(&root);
    let toml = agent_toml(server, device, profile, &state, enroll, slots, probe, extra);
    (toml, factory)
}

/// The daemon of the configuration `toml`, opened.
pub async fn open(toml: &str) -> ota_agent::Daemon {
    let config = ota_agent::Config::from_toml(toml).unwrap();
    ota_agent::Daemon::open(config).await.unwrap()
}

/// A directory slot root holding the factory version in `a`, active.
pub fn factory_dir_slots(root: &Path) -> Vec<u8> {
    let plain = plaintext(FACTORY, 10_000);
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/payload"), &plain).unwrap();
    std::os::unix::fs::symlink("a", root.join("current")).unwrap();
    plain
}

/// The slot `current` names and the payload in it.
pub fn active_payload(root: &Path) -> (String, Vec<u8>) {
    let slot = std::fs::read_link(root.join("current"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let payload = std::fs::read(root.join(&slot).join("payload")).unwrap_or_default();
    (slot, payload)
}
