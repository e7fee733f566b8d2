//! What the server tests share: a server in-process (or as a process) on 127.0.0.1 with an
//! ephemeral port in a temporary directory, signed packages, and a small HTTP client.

#![allow(dead_code)]

pub mod nats;
pub mod pg;

use std::path::{Path, PathBuf};

use ota_core::Package;
use ota_core::seal::SealKey;
use ota_core::sign::{self, SigningKey};
use ota_server::{Config, Running};
use serde_json::{Value, json};

/// The publisher key of the tests.
/// Starts the `ota-server` binary on an ephemeral loopback port, with `dir/data` as its data
/// directory, `dir/in` as its artifact root, the test publisher trusted, `secret` as its JWT
/// secret and `extra` flags; returns the process and its base URL (from its first line).
pub fn spawn_server(dir: &Path, secret: &str, extra: &[&str]) -> (std::process::Child, String) {
    spawn_server_under(&[], dir, secret, extra)
}

/// [`spawn_server`] run under `wrapper` (a command and its arguments, the server's command line
/// after them: `strace -o LOG`), when not empty.
pub fn spawn_server_under(
    wrapper: &[&str],
    dir: &Path,
    secret: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let server = env!("CARGO_BIN_EXE_ota-server");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(server);
            c
        }
        None => Command::new(server),
    };
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--artifact-root")
        .arg(dir.join("in"))
        .args(["--trusted-key", &publisher().public_key().to_hex()])
        .env("OTA_JWT_SECRET", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("ota-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

/// An HTTP client whose every request gives up after 30 s, so a test that loses its server
/// fails instead of waiting forever.
pub fn http_client() -> reqwest::Client {
    // No idle connections kept: a server that answers before reading a request's body (a
    // refused oversized body) closes that connection afterwards, and a pooled connection
    // picked up in that instant fails the next request with `IncompleteMessage` (seen once
    // in CI on the PostgreSQL seed 004 run).
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One request to a server started with [`spawn_server`]: its status and JSON body, or
/// `(0, null)` when the server cannot be reached (it may have been killed on purpose).
pub async fn request(
    http: &reqwest::Client,
    method: &str,
    url: String,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut rb = http
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match rb.send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            let v = r.json().await.unwrap_or(Value::Null);
            (code, v)
        }
        Err(_) => (0, Value::Null),
    }
}

pub fn publisher() -> SigningKey {
    SigningKey::from_secret([1; 32])
}

/// The AES key of the tests' artifacts.
pub fn seal_key() -> SealKey {
    SealKey::from_bytes([0x5e; 32])
}

/// A fresh temporary directory.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh temporary directory for a test server ([`config`], [`spawn_server`]) and its
/// artifact root `in/` inside it, made: `(dir, dir/in)`.
pub fn tmp_with_input(name: &str) -> (PathBuf, PathBuf) {
    let dir = tmp(name);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    (dir, input)
}

/// The body that registers a device of the tests (`PUT /api/v1/devices/{id}`): a
/// temp-sensor (acme-sensor-v2, armv7) of profile `profile` running firmware 1.2.0.
pub fn registration(profile: &str) -> Value {
    json!({
        "profile_id": profile, "device_type": "temp-sensor",
        "hardware_profile": "acme-sensor-v2", "arch": "armv7",
        "installed": {"temp-sensor-fw": "1.2.0"},
    })
}

/// [`registration`] of profile `p` naming the device `id` in the body too, as a device that
/// registers itself would.
pub fn registration_naming(id: &str) -> Value {
    let mut body = registration("p");
    body["device_id"] = json!(id);
    body
}

/// The body that creates a rollout of `package_id` to every device of profile `p` at once
/// (`canary_percent` 100) that no share of failures halts (`failure_threshold_percent` 100).
pub fn rollout_to_all(package_id: &str) -> Value {
    json!({"package_id": package_id, "target_profile_id": "p", "canary_percent": 100,
           "failure_threshold_percent": 100})
}

/// The `state` of device `id` in a rollout's device listing
/// (`GET /api/v1/ota/rollouts/{id}/devices`), or null when it is not listed.
pub fn state_in(listing: &Value, id: &str) -> Value {
    listing["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == id)
        .map(|d| d["state"].clone())
        .unwrap_or(Value::Null)
}

/// The unsealed temp-sensor firmware package `version`, with `release_notes`.
pub fn firmware_package(version: &str, release_notes: &str) -> Package {
    Package::from_json(
        json!({
            "type": "fw", "name": "temp-sensor-fw", "version": version,
            "artifact_uri": format!("s3://ota-artifacts/temp-sensor/fw-{version}.enc"),
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 1,
            "compatibility": {"device_types": ["temp-sensor"], "min_version": "1.0.0"},
            "release_notes": release_notes,
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// Seals `plaintext` for package `p` of version `version` (with the IV `iv`), signs `p` by
/// the test publisher and writes the artifact to `dir/fw-VERSION.enc`: (upload body, package
/// id, artifact bytes).
pub fn seal_and_sign(
    dir: &Path,
    version: &str,
    mut p: Package,
    plaintext: &[u8],
    iv: [u8; 16],
) -> (Value, String, Vec<u8>) {
    let (bytes, sealed) = ota_core::seal::seal_bytes(&seal_key(), iv, plaintext).unwrap();
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
    (body, id, bytes)
}

/// A sealed, signed firmware package: (upload body, package id, artifact bytes). The artifact
/// is written to `dir/fw-VERSION.enc`; `plaintext_len` bytes of plaintext. With `rollback`,
/// it is signed as a rollback of 2.0.0, valid until 2100.
pub fn firmware(
    dir: &Path,
    version: &str,
    rollback: bool,
    plaintext_len: usize,
) -> (Value, String, Vec<u8>) {
    let mut p = firmware_package(version, "Fix sensor drift above 60C; reduce idle current.");
    p.rollback = rollback.then(|| ota_core::package::Rollback {
        from: "2.0.0".parse().unwrap(),
        expires: "2100-01-01T00:00:00Z".parse().unwrap(),
    });
    // Incompressible plaintext, so the artifact spans several 64 KiB chunks.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ version.len() as u64;
    let plaintext: Vec<u8> = (0..plaintext_len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) ^ version.as_bytes()[i % version.len()]
        })
        .collect();
    seal_and_sign(dir, version, p, &plaintext, [0x1f; 16])
}

/// The configuration of a test server over `dir`.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir.join("data"));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.artifact_roots = vec![dir.join("in")];
    c.trusted_keys = vec![publisher().public_key().to_hex()];
    c.jwt_secret = Some("test-secret-of-the-e2e".into());
    c.body_limit = 1 << 20;
    c.snapshot_every = 5;
    c
}

/// A running server and a client of it.
pub struct Srv {
    /// The server.
    pub running: Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The client.
    pub http: reqwest::Client,
}

impl Srv {
    /// Starts a server.
    pub async fn start(config: Config) -> Srv {
        let running = ota_server::serve(config).await.unwrap();
        let base = format!("http://{}", running.addr);
        Srv {
            running,
            base,
            http: http_client(),
        }
    }

    /// An admin token of `tenant`.
    pub fn token(&self, tenant: &str, role: &str) -> String {
        self.running.state.jwt.token("alice", tenant, role, 3600)
    }

    /// A request with a bearer token, JSON in, (status, JSON) out.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// A `GET` with a bearer token: (status, JSON).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, token, None).await
    }

    /// Uploads a package (`POST /api/v1/ota/packages`) and asserts it was created; returns
    /// the answer.
    pub async fn upload(&self, admin: &str, body: &Value) -> Value {
        let (code, v) = self
            .call("POST", "/api/v1/ota/packages", admin, Some(body))
            .await;
        assert_eq!(code, 201, "{v}");
        v
    }

    /// Stores profile `id` with no fields set and asserts it was stored.
    pub async fn empty_profile(&self, admin: &str, id: &str) {
        let path = format!("/api/v1/ota/profiles/{id}");
        let (code, v) = self.call("PUT", &path, admin, Some(&json!({}))).await;
        assert_eq!(code, 200, "{v}");
    }

    /// Registers device `id` with `body` and asserts it was created; returns its credential.
    pub async fn register(&self, admin: &str, id: &str, body: &Value) -> String {
        let path = format!("/api/v1/devices/{id}");
        let (code, v) = self.call("PUT", &path, admin, Some(body)).await;
        assert_eq!(code, 201, "{v}");
        v["credential"].as_str().unwrap().to_string()
    }

    /// The fleet most tests start from: firmware 2.0.0 (70,000 bytes, sealed from `input`)
    /// uploaded, the empty profile `p`, and `devices` registered in it, each naming itself.
    /// The package id and each device's credential.
    pub async fn fleet(
        &self,
        admin: &str,
        input: &Path,
        devices: &[&str],
    ) -> (String, Vec<String>) {
        let (fw, pkg, _) = firmware(input, "2.0.0", false, 70_000);
        self.upload(admin, &fw).await;
        self.empty_profile(admin, "p").await;
        let mut creds = Vec::new();
        for d in devices {
            creds.push(self.register(admin, d, &registration_naming(d)).await);
        }
        (pkg, creds)
    }

    /// Creates a rollout (`POST /api/v1/ota/rollouts`) and asserts it was created; returns
    /// the answer (its `rollout_id`, `scheduled_count`, ...).
    pub async fn create_rollout(&self, admin: &str, body: &Value) -> Value {
        let (code, v) = self
            .call("POST", "/api/v1/ota/rollouts", admin, Some(body))
            .await;
        assert_eq!(code, 201, "{v}");
        v
    }

    /// A rollout's audit trail (`GET /api/v1/ota/rollouts/{rid}/audit`), asserted served.
    pub async fn audit(&self, admin: &str, rid: &str) -> Value {
        let (code, v) = self
            .get(&format!("/api/v1/ota/rollouts/{rid}/audit"), admin)
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    /// The ids of the devices of rollout `rid` in state `state` (`GET
    /// /api/v1/ota/rollouts/{rid}/devices?state=...`, one page).
    pub async fn devices_in(&self, admin: &str, rid: &str, state: &str) -> Vec<String> {
        let path = format!("/api/v1/ota/rollouts/{rid}/devices?state={state}");
        let (code, v) = self.get(&path, admin).await;
        assert_eq!(code, 200, "{v}");
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// An operator's `action` on rollout `rid` (`pause`, `resume`, `rollback`, `abort`:
    /// `POST /api/v1/ota/rollouts/{rid}/{action}`) with `token`: (status, JSON).
    pub async fn act(&self, token: &str, rid: &str, action: &str) -> (u16, Value) {
        let path = format!("/api/v1/ota/rollouts/{rid}/{action}");
        self.call("POST", &path, token, None).await
    }

    /// The server's Prometheus text (`GET /metrics`, no token).
    pub async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.base)).send();
        r.await.unwrap().text().await.unwrap()
    }

    /// Device `device`'s report (`POST /api/v1/devices/{device}/ota/report`) with its
    /// credential: (status, JSON).
    pub async fn report(&self, device: &str, cred: &str, body: &Value) -> (u16, Value) {
        let path = format!("/api/v1/devices/{device}/ota/report");
        self.call("POST", &path, cred, Some(body)).await
    }

    /// A request with a raw body.
    pub async fn raw(&self, method: &str, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Stops the server.
    pub fn stop(self) {
        self.running.stop();
    }
}

/// Asserts an error answer: status and code, and that the message names `field`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str, field: &str) {
    assert_eq!(got.0, status, "{got:?}");
    assert_eq!(got.1["code"], code, "{got:?}");
    let msg = got.1["message"].as_str().unwrap_or_default();
    assert!(msg.contains(field), "message {msg:?} should name {field:?}");
}

/// A port on 127.0.0.1 free when asked (for a server started as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
