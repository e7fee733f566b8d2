//! The `ota-server` binary: `ota-server [serve]` runs the control plane; `ota-server token`
//! prints an admin token for local use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ota_server::Config;

/// The ota control plane: the OTA API over HTTP, on SQLite (default) or PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "ota-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<Serve>),
    /// Print an admin bearer token for a tenant (signed with the server's secret).
    Token(Token),
}

#[derive(Debug, Clone, clap::Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, env = "OTA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the local object store, the JWT secret (`jwt-secret`) and the server's
    /// signing key (`signing-key.pem`).
    #[arg(long, env = "OTA_DATA_DIR", default_value = "ota-data")]
    data_dir: PathBuf,
    /// `sqlite://PATH` (created on first start) or `postgres://USER@HOST/DB`.
    /// Default: sqlite://DATA_DIR/ota.db.
    #[arg(long, env = "OTA_DATABASE")]
    database: Option<String>,
    /// A directory `file://` artifact URIs may point into (repeat).
    #[arg(
        long = "artifact-root",
        env = "OTA_ARTIFACT_ROOTS",
        value_delimiter = ','
    )]
    artifact_roots: Vec<PathBuf>,
    /// A trusted publisher key: Ed25519 as 64 hex characters or a PEM public key, or ECDSA
    /// P-256 as a PEM public key (SPKI; it verifies the OTA API's upload form only), or a file
    /// holding one (repeat).
    #[arg(long = "trusted-key", env = "OTA_TRUSTED_KEYS", value_delimiter = ',')]
    trusted_keys: Vec<String>,
    /// Distinct trusted signatures a package needs.
    #[arg(long, env = "OTA_THRESHOLD", default_value_t = 1)]
    threshold: usize,
    /// The HS256 secret of admin tokens. Default: the file DATA_DIR/jwt-secret, created on
    /// first start.
    #[arg(long, env = "OTA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The server's Ed25519 signing key (PKCS#8 PEM or DER), which signs the statements of
    /// seed-form uploads; devices trust it. Default: DATA_DIR/signing-key.pem, created on
    /// first start.
    #[arg(long, env = "OTA_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// The S3 endpoint `s3://` artifact URIs are fetched from (publish_artifact.py's variable; default
    /// AWS).
    #[arg(long, env = "S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The S3 access key.
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: Option<String>,
    /// The S3 secret key.
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: Option<String>,
    /// The S3 region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Publish every event of the outbox to this NATS server (`nats://HOST:PORT`), at least
    /// once, with its id in the `Nats-Msg-Id` header for de-duplication.
    #[arg(long, env = "OTA_NATS")]
    nats: Option<String>,
    /// With --nats: an event counts as published only once a JetStream stream has stored it
    /// (the publish acknowledged), not once it was written to the NATS connection. A stream
    /// must capture `profile.ota.>`; until one does, the events wait in the outbox.
    #[arg(long, env = "OTA_NATS_JETSTREAM")]
    nats_jetstream: bool,
    /// The largest request body, in bytes.
    #[arg(long, env = "OTA_BODY_LIMIT", default_value_t = 4 << 20)]
    body_limit: usize,
    /// How long a request's head may take to arrive, and its body may pause, in
    /// milliseconds: a client slower than this is cut off (408 for a body).
    #[arg(long, env = "OTA_READ_TIMEOUT_MS", default_value_t = 30_000)]
    read_timeout_ms: u64,
    /// Rewrite a rollout's snapshot after this many audit records, or after a quarter of
    /// its device count when that is more (a snapshot grows with the fleet).
    #[arg(long, env = "OTA_SNAPSHOT_EVERY", default_value_t = 1000)]
    snapshot_every: u64,
    /// On PostgreSQL, how long a replica's lease on a rollout lasts, in milliseconds: one
    /// replica drives each rollout and renews its lease; when it dies, another takes the
    /// rollout over once the lease has expired. 0 turns leases off (a single replica).
    /// SQLite is always a single replica and ignores it.
    #[arg(long, env = "OTA_LEASE_MS", default_value_t = 10_000)]
    lease_ms: u64,
    /// How long a device RPC record (a command to a device) waits for its device, in
    /// milliseconds; past it the record is `expired` and never delivered.
    #[arg(long, env = "OTA_RPC_TTL_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    rpc_ttl_ms: u64,
    /// The poll interval suggested to devices (the `ota-poll-interval-ms` answer header),
    /// in milliseconds.
    #[arg(long, env = "OTA_POLL_INTERVAL_MS", default_value_t = 60_000)]
    poll_interval_ms: u64,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "OTA_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Clone, clap::Args)]
struct Token {
    /// The tenant the token acts for (a name: letters, digits, `.`, `_`, `-`).
    #[arg(long, env = "OTA_TENANT")]
    tenant: ota_core::Name,
    /// `admin` (read and write) or `viewer` (read only).
    #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
    role: String,
    /// Who the token names, recorded in the audit trail (a name: letters, digits, `.`, `_`,
    /// `-`; `alice.example.com`, not `alice@example.com`).
    #[arg(long, default_value = "admin")]
    subject: ota_core::Name,
    /// Hours until it expires.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// The server's data directory (holds `jwt-secret`; `ota-server --data-dir DIR token`
    /// works too, and so does OTA_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The HS256 secret, when the server is given one (or OTA_JWT_SECRET).
    #[arg(long)]
    jwt_secret: Option<String>,
}

fn config(s: Serve) -> Config {
    let mut c = Config::new(s.data_dir);
    c.listen = s.listen;
    if let Some(db) = s.database {
        c.database = db;
    }
    c.artifact_roots = s.artifact_roots;
    c.trusted_keys = s.trusted_keys;
    c.threshold = s.threshold;
    c.jwt_secret = s.jwt_secret;
    c.signing_key = s.signing_key;
    c.body_limit = s.body_limit;
    c.read_timeout_ms = s.read_timeout_ms.max(1);
    c.nats = s.nats;
    c.nats_jetstream = s.nats_jetstream;
    c.s3_endpoint = s.s3_endpoint;
    c.s3_access_key = s.s3_access_key;
    c.s3_secret_key = s.s3_secret_key;
    c.s3_region = s.s3_region;
    c.snapshot_every = s.snapshot_every.max(1);
    c.lease_ms = s.lease_ms;
    c.rpc_ttl_ms = s.rpc_ttl_ms.max(1);
    c.poll_interval_ms = s.poll_interval_ms.max(1);
    c
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(t)) => {
            // The flags given before `token` count too: they name the server's own.
            let data_dir = t.data_dir.unwrap_or(cli.serve.data_dir);
            let given = t.jwt_secret.or(cli.serve.jwt_secret);
            // A secret made here would sign tokens no running server takes.
            if given.is_none() && !data_dir.join("jwt-secret").exists() {
                eprintln!(
                    "ota-server token: {} holds no jwt-secret: give the running server's \
                     --data-dir (or its --jwt-secret), or start the server first",
                    data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            let secret = match ota_server::auth::load_secret(given.as_deref(), &data_dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ota-server token: {}: {e}", data_dir.display());
                    return ExitCode::FAILURE;
                }
            };
            let keys = match ota_server::auth::JwtKeys::from_secret(&secret) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("ota-server token: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!(
                "{}",
                keys.token(
                    t.subject.as_str(),
                    t.tenant.as_str(),
                    &t.role,
                    t.hours * 3600
                )
            );
            ExitCode::SUCCESS
        }
        command => {
            let s = match command {
                Some(Command::Serve(s)) => *s,
                _ => cli.serve,
            };
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(&s.log))
                .with_writer(std::io::stderr)
                .init();
            // The handlers are in place before the readiness line: a supervisor that stops the
            // server as soon as it has started gets the graceful stop too.
            let signals = match StopSignals::new() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ota-server: handling SIGTERM and SIGINT: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let running = match ota_server::serve(config(s)).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("ota-server: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("ota-server listening on http://{}", running.addr);
            let mut running = running;
            tokio::select! {
                sig = signals.recv() => {
                    // What is under way is answered; then the database is let go.
                    tracing::info!(signal = sig, "stopping");
                    running.shutdown().await;
                    eprintln!("ota-server: stopped ({sig})");
                }
                r = &mut running.task => {
                    if let Err(e) = r {
                        eprintln!("ota-server: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// SIGTERM (a service manager's stop) and SIGINT, handled from their creation on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the first of them to come.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
