//! `ota-server`: the control plane as a service. A thin host of the `ota-core` library —
//! the catalog of verified packages, the compatibility engine, the rollout engine and the
//! chunk protocol — behind the OTA HTTP API, on SQLite (the default) or PostgreSQL.
//!
//! The library stays sans-IO; everything that reaches a socket, a clock or a database is
//! here. See [`engine`] for the drive loop and how each input is committed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assignments;
pub mod auth;
pub mod claim;
pub mod db;
pub mod device;
pub mod engine;
pub mod error;
pub mod events;
pub mod fleet;
pub mod listen;
pub mod openapi;
pub mod packages;
pub mod publishers;
pub mod rollouts;
pub mod rpc;
pub mod s3;
pub mod seed_form;
pub mod state;
pub mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post, put};
use ota_core::sign::{PublicKey, TrustedKeys};
use tokio::sync::{Notify, RwLock, broadcast};

pub use error::{ApiError, Code};
pub use state::{AppState, Config};

/// The routes of the API: each path and its handlers.
fn table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/healthz", get(|| async { "ok\n" })),
        ("/metrics", get(metrics)),
        (
            "/api/v1/ota/packages",
            post(packages::upload).get(packages::list),
        ),
        ("/api/v1/ota/packages/{id}", get(packages::get)),
        ("/api/v1/ota/keys", get(packages::keys)),
        (
            "/api/v1/ota/profiles/{id}",
            put(fleet::put_profile).get(fleet::get_profile),
        ),
        (
            "/api/v1/ota/rollouts",
            post(rollouts::create).get(rollouts::list),
        ),
        ("/api/v1/ota/rollouts/{id}", get(rollouts::status)),
        ("/api/v1/ota/rollouts/{id}/pause", post(rollouts::pause)),
        ("/api/v1/ota/rollouts/{id}/resume", post(rollouts::resume)),
        (
            "/api/v1/ota/rollouts/{id}/rollback",
            post(rollouts::rollback),
        ),
        ("/api/v1/ota/rollouts/{id}/abort", post(rollouts::abort)),
        (
            "/api/v1/ota/rollouts/{id}/waves/{n}/approve",
            post(rollouts::approve),
        ),
        ("/api/v1/ota/rollouts/{id}/devices", get(rollouts::devices)),
        ("/api/v1/ota/rollouts/{id}/audit", get(rollouts::audit)),
        ("/api/v1/ota/rollouts/{id}/events", get(events::stream)),
        (
            "/api/v1/devices/{device_id}",
            put(fleet::put_device).get(fleet::get_device),
        ),
        ("/api/v1/devices/{device_id}/ota", get(device::ota)),
        ("/api/v1/devices/{device_id}/ota/chunk", get(device::chunk)),
        (
            "/api/v1/devices/{device_id}/ota/report",
            post(device::report),
        ),
        ("/api/v1/devices/{device_id}/rpc", get(device::rpc)),
    ]
}

/// `GET /metrics`: Prometheus text.
async fn metrics(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &st.metrics;
    let packages = st.packages.read().await.len();
    let rollouts = st.engines.ids().len();
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&st.db)
        .await
        .unwrap_or(-1);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "ota_engine_inputs_total",
        "counter",
        "Engine inputs committed.",
        m.inputs.load(Relaxed).to_string(),
    );
    metric(
        "ota_device_reports_total",
        "counter",
        "Device reports committed.",
        m.reports.load(Relaxed).to_string(),
    );
    metric(
        "ota_commit_failures_total",
        "counter",
        "Transactions that failed and reloaded their rollout.",
        m.commit_failures.load(Relaxed).to_string(),
    );
    metric(
        "ota_chunk_bytes_total",
        "counter",
        "Artifact bytes served in chunks.",
        m.chunk_bytes.load(Relaxed).to_string(),
    );
    metric(
        "ota_events_total",
        "counter",
        "Events published to the live streams.",
        m.events.load(Relaxed).to_string(),
    );
    metric(
        "ota_packages_available",
        "gauge",
        "Verified packages loaded.",
        packages.to_string(),
    );
    metric(
        "ota_rollouts_loaded",
        "gauge",
        "Rollouts driven by this server.",
        rollouts.to_string(),
    );
    metric(
        "ota_outbox_unpublished",
        "gauge",
        "Outbox events not yet published to the bus.",
        outbox.to_string(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}

/// A path served, with a method it does not serve: 405 in the API's error shape (axum adds
/// the `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> axum::response::Response {
    use axum::response::IntoResponse;
    let e = ApiError::invalid(format!(
        "method: {method} is not served on this path (the Allow header says what is)"
    ));
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(e)).into_response()
}

/// The paths the router serves (the OpenAPI test checks each is documented).
pub fn routes() -> Vec<&'static str> {
    table().into_iter().map(|(p, _)| p).collect()
}

/// The HTTP routes of the API.
pub fn router(st: AppState) -> Router {
    let limit = st.config.body_limit;
    let mut r = Router::new();
    for (path, handlers) in table() {
        r = r.route(path, handlers);
    }
    r.fallback(|| async { ApiError::not_found("path: no such endpoint") })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_millis(st.config.read_timeout_ms),
        ))
        .with_state(st)
}

/// Opens the database, restores every rollout, and builds the state (the timer driver is
/// started by [`serve`]).
pub async fn open(mut config: Config) -> Result<AppState, String> {
    let sqlite = db::Backend::of(&config.database) == Some(db::Backend::Sqlite);
    if sqlite {
        // SQLite is one replica: nobody else drives its rollouts.
        config.lease_ms = 0;
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", config.data_dir.display()))?;
    let db = db::pool(&config.database)
        .await
        .map_err(|e| format!("--database: {e}"))?;
    // Claimed before anything is migrated or read: a server that may not run here changes
    // nothing, and loads nothing the other one is still writing.
    let claim = claim::take(&config.database, &db, config.lease_ms > 0).await?;
    db::migrate(&db)
        .await
        .map_err(|e| format!("--database: {e}"))?;
    let secret = auth::load_secret(config.jwt_secret.as_deref(), &config.data_dir)
        .map_err(|e| format!("jwt secret: {e}"))?;
    let mut trusted = TrustedKeys::new();
    let mut publisher_keys = Vec::new();
    let mut ecdsa_keys = Vec::new();
    for k in &config.trusted_keys {
        let text = match std::fs::read_to_string(k) {
            Ok(t) => t,
            Err(_) => k.clone(),
        };
        match PublicKey::parse(&text) {
            Ok(key) => {
                trusted.add(key);
                publisher_keys.push(key);
            }
            Err(e) => match publishers::EcdsaKey::parse(&text) {
                Some(key) => ecdsa_keys.push(key),
                None => {
                    return Err(format!(
                        "--trusted-key {k}: {e}, nor an ECDSA P-256 PEM public key"
                    ));
                }
            },
        }
    }
    let signing_key = auth::load_signing_key(config.signing_key.as_deref(), &config.data_dir)?;
    trusted.add(signing_key.public_key());
    let store_dir = config.data_dir.join("artifacts");
    std::fs::create_dir_all(&store_dir).map_err(|e| format!("{}: {e}", store_dir.display()))?;
    let (events, _) = broadcast::channel(4096);
    let assignments = assignments::Assignments::load(&db, config.lease_ms == 0)
        .await
        .map_err(|e| format!("loading assignments: {e}"))?;
    let st = AppState(Arc::new(state::Inner {
        db,
        jwt: auth::JwtKeys::from_secret(&secret)?,
        trusted,
        publisher_keys,
        ecdsa_keys,
        signing_key,
        packages: RwLock::new(Default::default()),
        engines: Default::default(),
        assignments,
        deliveries: Default::default(),
        credentials: Default::default(),
        events,
        timer: Notify::new(),
        outbox: Notify::new(),
        store_dir,
        config,
        metrics: Default::default(),
        writer: sqlite.then(|| tokio::sync::Mutex::new(())),
        claim: std::sync::Mutex::new(claim),
    }));
    packages::load(&st)
        .await
        .map_err(|e| format!("loading packages: {e}"))?;
    let n = engine::load_all(&st)
        .await
        .map_err(|e| format!("restoring rollouts: {e}"))?;
    tracing::info!(rollouts = n, "restored");
    Ok(st)
}

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state.
    pub state: AppState,
    /// The server task.
    pub task: tokio::task::JoinHandle<()>,
    /// Turns true to stop accepting ([`Running::shutdown`]).
    stopping: tokio::sync::watch::Sender<bool>,
    timer: tokio::task::JoinHandle<()>,
    publisher: Option<tokio::task::JoinHandle<()>>,
    leases: Option<tokio::task::JoinHandle<()>>,
    expiry: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and its timer driver, and then lets go of its claim on the database.
    /// Work already under way (a request's commit runs as a task of its own) may still end
    /// after this returns: a server started again at once in the same process may load before
    /// it commits. A process that exits leaves none.
    pub fn stop(self) {
        let _ = self.stopping.send(true);
        self.task.abort();
        self.timer.abort();
        self.expiry.abort();
        if let Some(p) = self.publisher {
            p.abort();
        }
        if let Some(l) = self.leases {
            l.abort();
        }
        let claim = self.state.claim.lock().map(|mut c| c.take());
        drop(claim);
    }

    /// Stops gracefully (SIGTERM, SIGINT): no new connection or timer tick is taken, the
    /// requests under way are answered ([`listen::GRACE`] at most: event streams are cut),
    /// and then the claim on the database is let go. What was acknowledged is committed.
    pub async fn shutdown(self) {
        self.timer.abort();
        self.expiry.abort();
        if let Some(l) = &self.leases {
            l.abort();
        }
        let _ = self.stopping.send(true);
        let mut task = self.task;
        if tokio::time::timeout(listen::GRACE + std::time::Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        if let Some(p) = self.publisher {
            p.abort();
        }
        let claim = self.state.claim.lock().map(|mut c| c.take());
        drop(claim);
    }
}

/// Opens the state, binds `config.listen` (port 0 picks one) and serves in the background.
pub async fn serve(config: Config) -> Result<Running, String> {
    if config.nats_jetstream && config.nats.is_none() {
        return Err("--nats-jetstream: give --nats, the server to publish to".into());
    }
    let listen = config.listen;
    let st = open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let timer = tokio::spawn(engine::drive_timers(st.clone()));
    let expiry = tokio::spawn(rpc::expire_forever(st.clone()));
    let leases = (st.config.lease_ms > 0).then(|| tokio::spawn(engine::renew_leases(st.clone())));
    let publisher = st
        .config
        .nats
        .clone()
        .map(|url| tokio::spawn(events::publish_outbox(st.clone(), url)));
    let app = router(st.clone());
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let read_timeout = std::time::Duration::from_millis(st.config.read_timeout_ms);
    let task = tokio::spawn(listen::serve(listener, app, read_timeout, stop));
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        state: st,
        task,
        stopping,
        timer,
        publisher,
        leases,
        expiry,
    })
}
