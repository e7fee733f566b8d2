//! Packages: `POST /api/v1/ota/packages` verifies a DSSE envelope against the trusted
//! publisher keys, fetches the artifact (`file://` inside an allowed root, or the local object
//! store), checks its size, SHA-256 and chunk table while copying it into the store, and only
//! then makes the package `available`. A mismatch answers `INVALID_ARGUMENT` and the package
//! is kept as `rejected`: it can never be assigned. Where the artifact comes from and how it
//! enters the store is `packages/source.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json as AxumJson;
use axum::extract::State;
use axum::http::StatusCode;
use ota_core::seal::SealKey;
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{Limits, PackageId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::db::{i, u};
use crate::error::{ApiError, ApiResult};
use crate::seed_form;
use crate::state::{AppState, Body, Path as UrlPath, now, parse_json};

mod source;

use source::{Fetch, fetch_and_check, rename_durably};
pub use source::{Source, resolve};

/// A verified, available package and what serving it needs.
#[derive(Debug)]
pub struct StoredPackage {
    /// Its tenant.
    pub tenant: String,
    /// The verified statement.
    pub verified: VerifiedPackage,
    /// The key devices open the artifact with.
    pub encryption_key: SealKey,
    /// The artifact in the local store.
    pub path: PathBuf,
}

/// The upload body of the DSSE form: the envelope `ota pack` writes (`package.json`), the
/// AES key from its `registration.json`, and optionally where to fetch the artifact from
/// (default: the statement's `artifact_uri`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseUpload {
    /// The DSSE envelope `ota pack` writes (`package.json`).
    #[schema(value_type = Object)]
    pub envelope: Value,
    /// The 64-hex AES-256 key of the sealed artifact (from `registration.json`).
    #[schema(value_type = String)]
    pub encryption_key: SealKey,
    /// `file:///...` inside an allowed root, or `store://TENANT/KEY` in the caller's part of
    /// the local object store.
    #[serde(default)]
    pub artifact_uri: Option<String>,
}

/// The answer of an upload (the OTA API's shape, and more).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// The package id.
    pub package_id: String,
    /// `available`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// The artifact's size and SHA-256 (and chunk table) were checked.
    pub checksum_verified: bool,
    /// The package name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The key ids that signed it: the publisher's, and for the seed form the server's.
    pub signed_by: Vec<String>,
}

/// `POST /api/v1/ota/packages`.
pub async fn upload(
    State(st): State<AppState>,
    admin: Admin,
    Body(body): Body,
) -> ApiResult<(StatusCode, AxumJson<Uploaded>)> {
    admin.require_write()?;
    let raw: Value = parse_json(&body)?;
    if raw.get("signature").is_some() {
        return seed_upload(&st, &admin, &body).await;
    }
    let up: DsseUpload = parse_json(&body)?;
    let envelope = serde_json::to_vec(&up.envelope).unwrap_or_default();
    let verified = sign::verify(
        &envelope,
        &st.trusted,
        st.config.threshold,
        &Limits::DEFAULT,
    )
    .map_err(|e| ApiError::from_status(e.status(), "envelope", e))?;
    let tenant = admin.tenant.to_string();
    let id = verified.id().to_string();

    let source = up
        .artifact_uri
        .clone()
        .unwrap_or_else(|| verified.package().artifact_uri.as_str().to_string());
    let src = resolve(&st, &tenant, &source, verified.package().size_bytes).await?;
    if let Some((status, reason)) = existing(&st, &tenant, &id).await? {
        src.done().await;
        if status == "available" {
            return Ok((StatusCode::OK, AxumJson(answer(&verified))));
        }
        return Err(ApiError::precondition(format!(
            "package_id: {id} was rejected and is never assigned: {}",
            reason.unwrap_or_default()
        )));
    }

    let dir = st.store_dir.join(&tenant);
    let dest = dir.join(format!("{id}.enc"));
    let checked = match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => fetch_and_check(&src.path, &dest, &verified).await,
        Err(e) => Err(Fetch::Io(e)),
    };
    src.done().await;
    match checked {
        Ok(()) => {}
        Err(Fetch::Mismatch(message)) => {
            let mut row = Row::of(&tenant, &verified, &up.encryption_key, "rejected");
            row.reason = Some(&message);
            row.insert(&st).await?;
            return Err(ApiError::invalid(message));
        }
        Err(Fetch::Io(e)) => {
            return Err(ApiError::invalid(format!(
                "artifact_uri: cannot read {source}: {e}"
            )));
        }
    }
    let object_key = format!("{tenant}/{id}.enc");
    let mut row = Row::of(&tenant, &verified, &up.encryption_key, "available");
    row.object_key = Some(object_key);
    row.insert(&st).await?;
    let stored = Arc::new(StoredPackage {
        tenant: tenant.clone(),
        verified: verified.clone(),
        encryption_key: up.encryption_key,
        path: dest,
    });
    st.packages.write().await.insert((tenant, id), stored);
    tracing::info!(package_id = %verified.id(), "package available");
    Ok((StatusCode::CREATED, AxumJson(answer(&verified))))
}

/// The seed's own form (see [`crate::seed_form`]).
async fn seed_upload(
    st: &AppState,
    admin: &Admin,
    body: &[u8],
) -> ApiResult<(StatusCode, AxumJson<Uploaded>)> {
    let up = seed_form::parse(body)?;
    let tenant = admin.tenant.to_string();
    let src = resolve(st, &tenant, &up.artifact_uri, up.size_bytes).await?;
    let (name, version, kind, size, sha) = (
        up.name
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        up.version.to_string(),
        up.kind.as_str(),
        up.size_bytes,
        up.sha256.to_hex(),
    );
    let temp = src.temp.then(|| src.path.clone());
    let checked = seed_form::check(st, &tenant, up, src.path, body).await;
    if let Some(t) = temp {
        let _ = tokio::fs::remove_file(t).await;
    }
    let c = match checked {
        Ok(c) => c,
        Err(Ok(e)) => return Err(e),
        Err(Err(r)) => {
            if existing(st, &tenant, r.id.as_str()).await?.is_none() {
                Row {
                    tenant: &tenant,
                    id: r.id.to_string(),
                    status: "rejected",
                    reason: Some(&r.error.message),
                    name,
                    version,
                    kind,
                    size_bytes: size,
                    sha256: sha,
                    envelope: String::new(),
                    key: String::new(),
                    signed_by: Vec::new(),
                    object_key: None,
                }
                .insert(st)
                .await?;
            }
            let mut e = r.error;
            e.message = format!("{} (package {} rejected)", e.message, r.id);
            return Err(e);
        }
    };
    let v = &c.verified;
    let object_key = format!("{tenant}/{}.enc", v.package().sha256.to_hex());
    let dest = st.store_dir.join(&object_key);
    rename_durably(&c.tmp, &dest)
        .await
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    let mut row = Row::of(&tenant, v, &c.key, "available");
    row.signed_by.insert(0, c.publisher.clone());
    row.object_key = Some(object_key);
    row.insert(st).await?;
    let stored = Arc::new(StoredPackage {
        tenant: tenant.clone(),
        verified: v.clone(),
        encryption_key: c.key.clone(),
        path: dest,
    });
    st.packages
        .write()
        .await
        .insert((tenant, v.id().to_string()), stored);
    let mut a = answer(v);
    a.signed_by.insert(0, c.publisher);
    tracing::info!(package_id = %v.id(), "package available (seed form, sealed by the server)");
    Ok((StatusCode::CREATED, AxumJson(a)))
}

fn answer(v: &VerifiedPackage) -> Uploaded {
    Uploaded {
        package_id: v.id().to_string(),
        status: "available",
        checksum_verified: true,
        name: v.package().name.to_string(),
        version: v.package().version.to_string(),
        signed_by: v.signed_by().iter().map(ToString::to_string).collect(),
    }
}

async fn existing(
    st: &AppState,
    tenant: &str,
    id: &str,
) -> ApiResult<Option<(String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT status, reason FROM packages WHERE tenant = $1 AND package_id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&st.db)
            .await?,
    )
}

/// A package row.
struct Row<'a> {
    tenant: &'a str,
    id: String,
    status: &'a str,
    reason: Option<&'a str>,
    name: String,
    version: String,
    kind: &'a str,
    size_bytes: u64,
    sha256: String,
    envelope: String,
    key: String,
    signed_by: Vec<String>,
    object_key: Option<String>,
}

impl<'a> Row<'a> {
    fn of(tenant: &'a str, v: &VerifiedPackage, key: &SealKey, status: &'a str) -> Row<'a> {
        let p = v.package();
        Row {
            tenant,
            id: v.id().to_string(),
            status,
            reason: None,
            name: p.name.to_string(),
            version: p.version.to_string(),
            kind: p.kind.as_str(),
            size_bytes: p.size_bytes,
            sha256: p.sha256.to_hex(),
            envelope: v.envelope_json().unwrap_or_default(),
            key: key.to_hex(),
            signed_by: v.signed_by().iter().map(ToString::to_string).collect(),
            object_key: None,
        }
    }

    async fn insert(self, st: &AppState) -> ApiResult<()> {
        sqlx::query(
            "INSERT INTO packages (tenant, package_id, status, reason, name, version, package_type, \
             size_bytes, sha256, envelope, encryption_key, signed_by, object_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(self.tenant.to_string())
        .bind(self.id)
        .bind(self.status.to_string())
        .bind(self.reason.map(str::to_string))
        .bind(self.name)
        .bind(self.version)
        .bind(self.kind.to_string())
        .bind(i(self.size_bytes))
        .bind(self.sha256)
        .bind(self.envelope)
        .bind(self.key)
        .bind(serde_json::to_string(&self.signed_by).unwrap_or_default())
        .bind(self.object_key)
        .bind(i(now().get()))
        .execute(&st.db)
        .await?;
        Ok(())
    }
}

/// One package as listed (`GET /api/v1/ota/packages/{id}`, and each of the list's).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageView {
    package_id: String,
    /// `available` or `rejected`.
    status: String,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    name: String,
    version: String,
    /// `fw`, `sw` or `model`.
    #[serde(rename = "type")]
    kind: String,
    size_bytes: u64,
    sha256: String,
    /// The key ids of the signatures that verified.
    signed_by: Vec<String>,
    /// Unix milliseconds.
    created_at: u64,
}

/// `GET /api/v1/ota/packages`: the tenant's packages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PackageList {
    /// Oldest first.
    packages: Vec<PackageView>,
}

type PackageRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
);

fn view(r: PackageRow) -> PackageView {
    PackageView {
        package_id: r.0,
        status: r.1,
        reason: r.2,
        name: r.3,
        version: r.4,
        kind: r.5,
        size_bytes: u(r.6),
        sha256: r.7,
        signed_by: serde_json::from_str(&r.8).unwrap_or_default(),
        created_at: u(r.9),
    }
}

const COLUMNS: &str = "SELECT package_id, status, reason, name, version, package_type, size_bytes, \
                       sha256, signed_by, created_at FROM packages";

/// `GET /api/v1/ota/packages`: the tenant's packages and who signed them (the Trust Center).
pub async fn list(State(st): State<AppState>, admin: Admin) -> ApiResult<AxumJson<PackageList>> {
    let rows: Vec<PackageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{COLUMNS} WHERE tenant = $1 ORDER BY created_at, package_id"
    )))
    .bind(admin.tenant.to_string())
    .fetch_all(&st.db)
    .await?;
    let packages = rows.into_iter().map(view).collect();
    Ok(AxumJson(PackageList { packages }))
}

/// `GET /api/v1/ota/packages/{id}`.
pub async fn get(
    State(st): State<AppState>,
    admin: Admin,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<AxumJson<PackageView>> {
    let row: Option<PackageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{COLUMNS} WHERE tenant = $1 AND package_id = $2"
    )))
    .bind(admin.tenant.to_string())
    .bind(id.clone())
    .fetch_optional(&st.db)
    .await?;
    row.map(|r| AxumJson(view(r)))
        .ok_or_else(|| ApiError::not_found(format!("package_id: no package {id}")))
}

/// An available package of a tenant, or why not.
pub async fn available(st: &AppState, tenant: &str, id: &str) -> ApiResult<Arc<StoredPackage>> {
    if let Some(p) = st
        .packages
        .read()
        .await
        .get(&(tenant.to_string(), id.to_string()))
    {
        return Ok(p.clone());
    }
    match existing(st, tenant, id).await? {
        // Another replica took it since this one loaded the packages.
        Some((status, _)) if status == "available" && st.config.lease_ms > 0 => {
            load(st).await?;
            st.packages
                .read()
                .await
                .get(&(tenant.to_string(), id.to_string()))
                .cloned()
                .ok_or_else(|| {
                    ApiError::precondition(format!(
                        "package_id: {id} no longer verifies with this server's keys"
                    ))
                })
        }
        Some((status, reason)) => Err(ApiError::precondition(format!(
            "package_id: {id} is {status}{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ))),
        None => Err(ApiError::not_found(format!("package_id: no package {id}"))),
    }
}

/// Loads the available packages at start, verifying each envelope again with today's keys.
pub async fn load(st: &AppState) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT tenant, package_id, envelope, encryption_key, object_key FROM packages \
         WHERE status = 'available'",
    )
    .fetch_all(&st.db)
    .await?;
    let mut map = st.packages.write().await;
    for (tenant, id, envelope, key, object_key) in rows {
        let verified = match sign::verify(
            envelope.as_bytes(),
            &st.trusted,
            st.config.threshold,
            &Limits::DEFAULT,
        ) {
            Ok(v) if v.id().as_str() == id => v,
            Ok(_) => {
                tracing::warn!(%tenant, package_id = %id, "stored envelope has another id; skipped");
                continue;
            }
            Err(e) => {
                tracing::warn!(%tenant, package_id = %id, error = %e, "package no longer verifies; skipped");
                continue;
            }
        };
        let Ok(key) = key.parse::<SealKey>() else {
            tracing::warn!(%tenant, package_id = %id, "stored key unreadable; skipped");
            continue;
        };
        let path = st.store_dir.join(object_key.unwrap_or_default());
        map.insert(
            (tenant.clone(), id),
            Arc::new(StoredPackage {
                tenant,
                verified,
                encryption_key: key,
                path,
            }),
        );
    }
    Ok(())
}

/// A package id from a path or query, or `INVALID_ARGUMENT` naming the field.
pub fn parse_id(field: &str, s: &str) -> ApiResult<PackageId> {
    s.parse()
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// `GET /api/v1/ota/keys`: the keys a device trusts — the publishers' and the server's own
/// (which signs the statements of seed-form uploads) — with the signature threshold.
pub async fn keys(State(st): State<AppState>, _caller: crate::auth::Caller) -> AxumJson<Value> {
    let key = |k: &ota_core::sign::PublicKey| json!({"key_id": k.key_id().to_string(), "algorithm": "ed25519", "public_key": k.to_hex()});
    let mut publishers: Vec<Value> = st.publisher_keys.iter().map(key).collect();
    publishers.extend(st.ecdsa_keys.iter().map(
        |k| json!({"key_id": k.key_id(), "algorithm": "ecdsa-p256", "public_key": k.to_pem()}),
    ));
    AxumJson(json!({
        "server_key": key(&st.signing_key.public_key()),
        "publisher_keys": publishers,
        "threshold": st.config.threshold,
    }))
}

/// The bytes `[offset, offset + length)` of a stored artifact: one chunk (at most 64 KiB),
/// read in one call on the blocking pool rather than an open, a seek and reads each of
/// their own.
pub async fn read_range(path: &Path, offset: u64, length: u32) -> ApiResult<axum::body::Bytes> {
    let path = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; length as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    read.map(axum::body::Bytes::from)
        .map_err(|e| ApiError::internal(format!("store: {e}")))
}
