//! An `ota-server` as a process of its own, for tests that `kill -9` it: the test binary runs
//! itself again with [`SERVE_DIR`] set, and its entry test calls [`serve_if_asked`], which
//! serves the real server library over `DIR` (SQLite in `DIR/data`, artifacts from `DIR/in`,
//! the tests' publisher trusted, [`SECRET`] as the JWT secret) on the address of [`LISTEN`],
//! prints `listening on http://ADDR`, and serves until its standard input closes (the parent
//! holds it, so a parent that dies takes the server with it).
//!
//! The `ota-server` binary is not built for this crate's tests (only a package's own binaries
//! are), hence the test binary standing in for it; what runs is the same `ota_server::serve`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The variable naming the server's directory in the child.
pub const SERVE_DIR: &str = "OTA_AGENT_TEST_SERVE_DIR";
/// The variable naming the address the child listens on (`127.0.0.1:0` picks a port).
pub const LISTEN: &str = "OTA_AGENT_TEST_SERVE_LISTEN";
/// The JWT secret of the server process.
pub const SECRET: &str = "test-secret-of-the-server-process";
/// The poll interval the server process suggests.
pub const POLL_INTERVAL_MS: u64 = 100;

const READY: &str = "listening on ";

/// In the child (when [`SERVE_DIR`] is set): serves until standard input closes, then exits
/// the process. Otherwise answers `false` at once.
pub fn serve_if_asked() -> bool {
    let Some(dir) = std::env::var_os(SERVE_DIR) else {
        return false;
    };
    let dir = std::path::PathBuf::from(dir);
    let listen: SocketAddr = std::env::var(LISTEN)
        .expect("the listen address is given with the directory")
        .parse()
        .expect("a socket address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        std::fs::create_dir_all(dir.join("in")).unwrap();
        let mut c = ota_server::Config::new(dir.join("data"));
        c.listen = listen;
        c.artifact_roots = vec![dir.join("in")];
        c.trusted_keys = vec![crate::common::publisher().public_key().to_hex()];
        c.jwt_secret = Some(SECRET.into());
        c.poll_interval_ms = POLL_INTERVAL_MS;
        let running = ota_server::serve(c).await.unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "{READY}http://{}", running.addr).unwrap();
        out.flush().unwrap();
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        std::process::exit(0);
    })
}

/// A server process; killed (SIGKILL) and reaped when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://ADDR`.
    pub base: String,
}

impl ServerProcess {
    /// Runs `entry` (the name of the test that calls [`serve_if_asked`]) of this test binary
    /// as a server over `dir` on `listen`, and waits for it to listen (at most 60 s).
    pub fn spawn(entry: &str, dir: &Path, listen: SocketAddr) -> ServerProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                entry,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVE_DIR, dir)
            .env(LISTEN, listen.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                // libtest may have written the test's name on the same line.
                if let Some(at) = line.find(READY) {
                    let _ = tx.send(line[at + READY.len()..].trim().to_string());
                    break;
                }
            }
            // Keep reading so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let mut p = ServerProcess {
            child: Some(child),
            addr: listen,
            base: String::new(),
        };
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server process on {listen} did not start"));
        p.addr = base.strip_prefix("http://").unwrap().parse().unwrap();
        p.base = base;
        p
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An admin client of a server process.
pub struct Admin {
    /// `http://ADDR`.
    pub base: String,
    /// The client (30 s per request).
    pub http: reqwest::Client,
    /// An admin token of tenant `acme`.
    pub token: String,
}

impl Admin {
    /// A client of the server at `base`.
    pub fn new(base: &str) -> Admin {
        let keys = ota_server::auth::JwtKeys::from_secret(SECRET.as_bytes()).unwrap();
        Admin {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            token: keys.token("alice", "acme", "admin", 3600),
        }
    }

    /// A request: (status, JSON), or `(0, null)` when the server cannot be reached.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        match rb.send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (code, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}
