//! The control plane of the live demo: an `ota-server` in this process on a free loopback
//! port, its SQLite database and local object store in the working directory, and the
//! operator's client of its HTTP API with a tenant admin token minted in process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_core::sign::PublicKey;
use serde_json::Value;

use crate::out::CliError;

/// The tenant of the demo.
pub(super) const TENANT: &str = "acme";
/// The operator (named in the audit trail).
pub(super) const OPERATOR: &str = "alice";

/// A running server and the operator's client of it.
pub(super) struct Server {
    /// The server.
    running: ota_server::Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory (database, object store, secrets).
    pub data_dir: PathBuf,
    /// The operator's client.
    pub api: Api,
}

impl Server {
    /// The directory of the server's local object store under `data_dir`, where `ota publish`
    /// puts artifacts for `store://` uploads.
    pub fn store_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("artifacts")
    }

    /// Starts a server over `data_dir` on 127.0.0.1 (a free port), trusting `publisher`,
    /// suggesting its devices poll every `poll_ms`.
    pub async fn start(
        data_dir: &Path,
        publisher: &PublicKey,
        poll_ms: u64,
    ) -> Result<Server, CliError> {
        let mut c = ota_server::Config::new(data_dir);
        c.listen = ([127, 0, 0, 1], 0).into();
        c.trusted_keys = vec![publisher.to_hex()];
        c.poll_interval_ms = poll_ms;
        let running = ota_server::serve(c)
            .await
            .map_err(|e| CliError::usage(format!("starting the in-process ota-server: {e}")))?;
        let base = format!("http://{}", running.addr);
        let token = running.state.jwt.token(OPERATOR, TENANT, "admin", 3600);
        let api = Api::new(&base, &token)?;
        Ok(Server {
            running,
            base,
            data_dir: data_dir.to_path_buf(),
            api,
        })
    }

    /// Stops the server.
    pub fn stop(self) {
        self.running.stop();
    }
}

/// An HTTP client of the API with a bearer token; every request gives up after 30 s.
#[derive(Clone)]
pub(super) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of `base` with `token`.
    pub fn new(base: &str, token: &str) -> Result<Api, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CliError::usage(format!("an HTTP client: {e}")))?;
        Ok(Api {
            base: base.to_string(),
            token: token.to_string(),
            http,
        })
    }

    /// `method path` with an optional JSON body; the answer's JSON on a 2xx status, else an
    /// error naming the request and the server's message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let what = format!("{method} {path}");
        let m: reqwest::Method = method
            .parse()
            .map_err(|_| CliError::usage(format!("{what}: not an HTTP method")))?;
        let mut rb = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb
            .send()
            .await
            .map_err(|e| CliError::usage(format!("{what}: {e}")))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| CliError::usage(format!("{what}: {e}")))?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let msg = v["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_string);
            return Err(CliError::usage(format!(
                "{what}: HTTP {}: {msg}",
                status.as_u16()
            )));
        }
        Ok(v)
    }

    /// The open response of a streaming `GET path` (no overall timeout: the caller bounds it).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, CliError> {
        let what = format!("GET {path}");
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::usage(format!("an HTTP client: {e}")))?;
        let r = http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| CliError::usage(format!("{what}: {e}")))?;
        if !r.status().is_success() {
            return Err(CliError::usage(format!(
                "{what}: HTTP {}",
                r.status().as_u16()
            )));
        }
        Ok(r)
    }
}
