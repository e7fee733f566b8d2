//! The server's shared state and its configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use ota_core::UnixMs;
use ota_core::sign::TrustedKeys;
use serde::de::DeserializeOwned;
use sqlx::AnyPool;
use tokio::sync::{Notify, RwLock, broadcast};

use crate::auth::JwtKeys;
use crate::engine::Engines;
use crate::error::{ApiError, Code};
use crate::packages::StoredPackage;

/// What the server is started with (the `serve` flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// The local object store and the JWT secret file live here.
    pub data_dir: PathBuf,
    /// Directories `file://` artifact URIs may point into.
    pub artifact_roots: Vec<PathBuf>,
    /// Publisher keys (hex or PEM) whose signatures make a package available.
    pub trusted_keys: Vec<String>,
    /// Distinct trusted signatures a package needs.
    pub threshold: usize,
    /// The admin tokens' HS256 secret (default: `DATA_DIR/jwt-secret`).
    pub jwt_secret: Option<String>,
    /// The server's Ed25519 signing key, PKCS#8 (default: `DATA_DIR/signing-key.pem`,
    /// created on first start).
    pub signing_key: Option<PathBuf>,
    /// The S3 endpoint of `s3://` artifact URIs (default AWS).
    pub s3_endpoint: Option<String>,
    /// Its access key.
    pub s3_access_key: Option<String>,
    /// Its secret key.
    pub s3_secret_key: Option<String>,
    /// Its region.
    pub s3_region: String,
    /// The NATS server the outbox is published to, if any.
    pub nats: Option<String>,
    /// Whether an event counts as published only once a JetStream stream has stored it (its
    /// publish acknowledged), rather than once it was written to the NATS connection.
    pub nats_jetstream: bool,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// How long a request's head may take to arrive, and its body may pause, in
    /// milliseconds ([`crate::listen`]).
    pub read_timeout_ms: u64,
    /// A rollout's snapshot is rewritten after this many audit records (or a quarter of its
    /// devices, when that is more: see [`crate::engine::snapshot_span`]).
    pub snapshot_every: u64,
    /// How long a replica's lease on a rollout lasts, in milliseconds; 0 turns leases off
    /// (one replica). Only PostgreSQL takes leases: SQLite is always a single replica.
    pub lease_ms: u64,
    /// This replica's id, the holder of its leases (random at start).
    pub replica_id: String,
    /// How long a device RPC record waits for its device before it expires, in
    /// milliseconds.
    pub rpc_ttl_ms: u64,
    /// The poll interval suggested to devices (`ota-poll-interval-ms`), in milliseconds.
    pub poll_interval_ms: u64,
}

impl Config {
    /// A configuration for a data directory, with the defaults of the `serve` flags.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            listen: ([127, 0, 0, 1], 8080).into(),
            database: format!("sqlite://{}", data_dir.join("ota.db").display()),
            data_dir,
            artifact_roots: Vec::new(),
            trusted_keys: Vec::new(),
            threshold: 1,
            jwt_secret: None,
            signing_key: None,
            s3_endpoint: None,
            s3_access_key: None,
            s3_secret_key: None,
            s3_region: "us-east-1".into(),
            nats: None,
            nats_jetstream: false,
            body_limit: 4 << 20,
            read_timeout_ms: 30_000,
            snapshot_every: 1000,
            lease_ms: 0,
            replica_id: format!("replica_{}", crate::auth::random_hex(8)),
            rpc_ttl_ms: 7 * 24 * 3600 * 1000,
            poll_interval_ms: 60_000,
        }
    }
}

/// A live event for the SSE streams.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// The tenant.
    pub tenant: String,
    /// The rollout.
    pub rollout_id: String,
    /// Its id (`rollout:seq:index`, or a progress step's own).
    pub id: String,
    /// The subject (the OTA API's, or `device.ota.progress...`).
    pub subject: String,
    /// The payload.
    pub payload: serde_json::Value,
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The database.
    pub db: AnyPool,
    /// The configuration.
    pub config: Config,
    /// Admin token keys.
    pub jwt: JwtKeys,
    /// The keys whose envelopes are accepted: the publishers' and the server's own.
    pub trusted: TrustedKeys,
    /// The Ed25519 publisher keys (`--trusted-key`).
    pub publisher_keys: Vec<ota_core::sign::PublicKey>,
    /// The ECDSA P-256 publisher keys (`--trusted-key` PEM), for the seed form only.
    pub ecdsa_keys: Vec<crate::publishers::EcdsaKey>,
    /// The server's own key: it signs the statements of seed-form uploads.
    pub signing_key: ota_core::sign::SigningKey,
    /// Verified packages, by (tenant, package id).
    pub packages: RwLock<HashMap<(String, String), Arc<StoredPackage>>>,
    /// The rollouts being driven.
    pub engines: Engines,
    /// Device-level assignments (in memory on a single replica).
    pub assignments: crate::assignments::Assignments,
    /// Device RPC deliveries waiting for their commit.
    pub deliveries: crate::rpc::Deliveries,
    /// Device credentials already checked: the credential's hash, its tenant and device.
    pub credentials: crate::auth::Credentials,
    /// Live events.
    pub events: broadcast::Sender<LiveEvent>,
    /// Wakes the timer driver when a rollout's timeout changes.
    pub timer: Notify,
    /// Wakes the outbox publisher when events were committed.
    pub outbox: Notify,
    /// The local object store.
    pub store_dir: PathBuf,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// On SQLite, the turn of this process's write transactions (see [`Inner::write_turn`]).
    pub writer: Option<tokio::sync::Mutex<()>>,
    /// This server's claim on its database ([`crate::claim`]), taken before anything is read
    /// or migrated; let go by [`crate::Running::stop`], or when the state is dropped.
    pub claim: std::sync::Mutex<Option<crate::claim::Claim>>,
}

impl Inner {
    /// On SQLite, waits for this process's turn to write: SQLite takes one writer at a time
    /// and makes the others retry in its busy handler, which sleeps; queueing here instead
    /// lets the next group commit start the moment the previous one ends. `None` on
    /// PostgreSQL, where transactions run side by side.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

/// Counters for `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Engine inputs committed.
    pub inputs: std::sync::atomic::AtomicU64,
    /// Device reports committed.
    pub reports: std::sync::atomic::AtomicU64,
    /// Transactions that failed (the rollout was reloaded from the database).
    pub commit_failures: std::sync::atomic::AtomicU64,
    /// Chunk bytes served.
    pub chunk_bytes: std::sync::atomic::AtomicU64,
    /// Events published to the live streams.
    pub events: std::sync::atomic::AtomicU64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The wall clock, as the engine takes it.
pub fn now() -> UnixMs {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UnixMs(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A request body read whole (within the body limit), for the handlers that parse it with
/// the library's own parsers.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) => {
                let too_large = e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE;
                // The read timeout's error, somewhere in the rejection's sources.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                let mut timed_out = false;
                while let Some(s) = source {
                    timed_out |= s.is::<tower_http::timeout::TimeoutError>();
                    source = s.source();
                }
                Err(if too_large {
                    ApiError::new(
                        Code::ResourceExhausted,
                        "body: larger than the server's body limit",
                    )
                } else if timed_out {
                    ApiError::new(
                        Code::DeadlineExceeded,
                        "body: it paused for longer than the server's read timeout",
                    )
                } else {
                    ApiError::invalid(format!("body: {e}"))
                })
            }
        }
    }
}

/// A JSON body parsed into `T` (whose unknown fields are refused); errors name the field.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The URL's path parameters parsed into `T`. A malformed one (text that is not UTF-8, a
/// number that does not parse) is refused with the API's error shape, naming the parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(Path(p.0)),
            Err(e) => {
                // The parameters' names, for an error that gives only a position (a tuple).
                let names =
                    match axum::extract::RawPathParams::from_request_parts(parts, state).await {
                        Ok(raw) => raw.iter().map(|(k, _)| k.to_string()).collect(),
                        Err(_) => Vec::new(),
                    };
                Err(path_error(&e, &names))
            }
        }
    }
}

fn path_error(e: &PathRejection, names: &[String]) -> ApiError {
    use axum::extract::path::ErrorKind;
    if e.status().is_server_error() {
        // A route and its handler disagree (axum's own `500`): a bug, not the caller's.
        return ApiError::internal(format!("path: {}", e.body_text()));
    }
    if let PathRejection::FailedToDeserializePathParams(f) = e {
        match f.kind() {
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => {
                return ApiError::invalid(format!(
                    "{key}: cannot read {value:?} as {expected_type}"
                ));
            }
            ErrorKind::ParseErrorAtIndex {
                index,
                value,
                expected_type,
            } => {
                let key = names.get(*index).map_or("path", String::as_str);
                return ApiError::invalid(format!(
                    "{key}: cannot read {value:?} as {expected_type}"
                ));
            }
            ErrorKind::InvalidUtf8InPathParam { key } => {
                return ApiError::invalid(format!("{key}: not UTF-8 once percent-decoded"));
            }
            _ => {}
        }
    }
    ApiError::invalid(format!("path: {}", e.body_text()))
}

/// The URL's query parsed into `T` (whose unknown parameters are refused). A malformed one
/// is refused with the API's error shape, naming the parameter (`query: page_size: ...`).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(Query(q.0)),
            Err(e) => Err(query_error(&e)),
        }
    }
}

fn query_error(e: &QueryRejection) -> ApiError {
    let text = e.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::invalid(format!("query: {detail}"))
}

/// Parses a JSON object into `T`; the error names the field path. An object that names a member twice
/// is refused at any depth (`body: duplicate field `status``): read into a map, the last
/// would win silently, and another reader of the same bytes could take the first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_body(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(named)?;
    // One document: `{...} junk` or `{...}{...}` is refused, not read up to its first value.
    de.end()
        .map_err(|e| ApiError::invalid(format!("body: malformed JSON: {e}")))?;
    Ok(value)
}

/// Checks a JSON body before any parser reads it: one object whose objects name each member
/// once, at any depth (read into a map, the last would win silently), and whose values the
/// JSON reader can take; errors name the member. [`parse_json`] runs it, and so does every
/// handler that parses its body with the library's own parsers.
pub fn check_body(bytes: &[u8]) -> Result<(), ApiError> {
    // Every body of the API is an object: serde would read a struct from an array of its
    // fields' values in order (`["a", null]`), which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("body: expected a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize::<_, Unique>(&mut *de).map_err(named)?;
    Ok(())
}

/// A JSON error, naming the member it was found in.
fn named(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // A body cut short is the body's fault, whatever member it was in.
    let at = if path == "." || path.is_empty() || inner.is_eof() {
        "body".to_string()
    } else {
        path
    };
    if inner.is_syntax() || inner.is_eof() {
        ApiError::invalid(format!("{at}: malformed JSON: {inner}"))
    } else {
        ApiError::invalid(format!("{at}: {inner}"))
    }
}

/// Any JSON value whose objects name each member once; reading it keeps nothing.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate field `{key}`"
                )));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}
