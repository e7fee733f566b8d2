//! Who is calling: a tenant admin with a bearer JWT (HS256, carrying `tenant` and `role`), or
//! a device with the credential it was issued at registration (`otad_...`, stored as its
//! SHA-256).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ota_core::Name;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The prefix of a device credential.
pub const DEVICE_PREFIX: &str = "otad_";

/// The claims of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who (for the audit trail).
    pub sub: String,
    /// The tenant the token acts for.
    pub tenant: String,
    /// `admin` (read and write) or `viewer` (read only).
    pub role: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
}

/// The signing key of admin tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    /// Keys from a shared secret (not empty).
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        let bad = |e: jsonwebtoken::errors::Error| format!("jwt secret: {e}");
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret).map_err(bad)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad)?,
        })
    }

    /// Signs claims.
    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// A token for `tenant` with `role`, valid `ttl_secs` from now.
    pub fn token(&self, sub: &str, tenant: &str, role: &str, ttl_secs: u64) -> String {
        let now = crate::state::now().get() / 1000;
        self.issue(&Claims {
            sub: sub.to_string(),
            tenant: tenant.to_string(),
            role: role.to_string(),
            iat: now,
            exp: now + ttl_secs,
        })
    }

    /// Checks a token's signature and expiry.
    pub fn check(&self, token: &str) -> ApiResult<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| ApiError::unauthenticated(format!("authorization: {e}")))
    }
}

/// The JWT secret: `--jwt-secret` when given, else the file `DATA_DIR/jwt-secret`, created
/// with a random secret on first start (owner-only).
pub fn load_secret(given: Option<&str>, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(s) = given {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_hex(32);
            write_private(&path, secret.as_bytes())?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(e),
    }
}

/// The server's signing key: the PKCS#8 file given, else `DATA_DIR/signing-key.pem`,
/// created on first start (owner-only).
pub fn load_signing_key(
    given: Option<&Path>,
    data_dir: &Path,
) -> Result<ota_core::sign::SigningKey, String> {
    use ota_core::sign::SigningKey;
    let path = given.map_or_else(|| data_dir.join("signing-key.pem"), Path::to_path_buf);
    match std::fs::read(&path) {
        Ok(bytes) => SigningKey::from_pkcs8(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && given.is_none() => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("random: {e}"))?;
            let key = SigningKey::from_secret(secret);
            write_private(&path, key.to_pkcs8_pem().as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(bytes)
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the operating system's random source");
    hex::encode(b)
}

/// A new device credential.
pub fn new_device_credential() -> String {
    format!("{DEVICE_PREFIX}{}", random_hex(32))
}

/// The stored form of a device credential.
pub fn credential_hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

/// A tenant admin (or viewer).
#[derive(Debug, Clone)]
pub struct Admin {
    /// The tenant.
    pub tenant: Name,
    /// Who.
    pub sub: Name,
    /// Whether it may change things.
    pub write: bool,
}

impl Admin {
    /// Refuses a viewer.
    pub fn require_write(&self) -> ApiResult<()> {
        if self.write {
            Ok(())
        } else {
            Err(ApiError::denied(
                "authorization: the token's role is viewer; admin is needed",
            ))
        }
    }
}

/// A device, authenticated by its credential.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its tenant.
    pub tenant: Name,
    /// Its id.
    pub device_id: Name,
}

impl Device {
    /// Refuses a path naming another device.
    pub fn require(&self, device_id: &str) -> ApiResult<()> {
        if self.device_id.as_str() == device_id {
            Ok(())
        } else {
            Err(ApiError::denied(format!(
                "device_id: the credential is device {}'s, not {device_id}'s",
                self.device_id
            )))
        }
    }
}

/// Either caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A tenant admin.
    Admin(Admin),
    /// A device.
    Device(Device),
}

fn bearer(parts: &Parts) -> ApiResult<&str> {
    let h = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("authorization: missing bearer token"))?;
    let s = h
        .to_str()
        .map_err(|_| ApiError::unauthenticated("authorization: not text"))?;
    s.strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthenticated("authorization: expected `Bearer <token>`"))
}

/// The device credentials this server has already found in the database, by hash; only a
/// credential found is remembered (an unknown one is looked up every time). This replica
/// forgets a device's entries when it reissues its credential ([`Credentials::forget`]).
/// Another replica cannot tell it, so with replicas (leases on) an entry is trusted for one
/// lease period (`--lease-ms`) after it was found, then looked up again: a credential
/// replaced on one replica stops working on every replica within that time. A single
/// replica (leases off) remembers an entry until it forgets it.
#[derive(Default)]
pub struct Credentials(std::sync::Mutex<Remembered>);

/// The credentials found (each with when it was found), and how many times some were
/// forgotten (a lookup that began before a forget does not remember what it found).
#[derive(Default)]
struct Remembered {
    forgotten: u64,
    map: HashMap<[u8; 32], (Device, Instant)>,
}

impl Credentials {
    /// Forgets a device's remembered credentials: whoever rotates or revokes a credential,
    /// or removes a device, calls it after the commit.
    pub fn forget(&self, tenant: &str, device_id: &str) {
        let mut r = self.0.lock().expect("credentials lock");
        r.forgotten += 1;
        r.map.retain(|_, (d, _)| {
            !(d.tenant.as_str() == tenant && d.device_id.as_str() == device_id)
        });
    }

    /// The device of a remembered credential, when it may still be trusted: always with
    /// `lease_ms` 0 (one replica), else for `lease_ms` after it was found.
    fn remembered(&self, digest: &[u8; 32], lease_ms: u64) -> Result<Device, u64> {
        let mut r = self.0.lock().expect("credentials lock");
        let fresh = match r.map.get(digest) {
            Some((d, found))
                if lease_ms == 0 || found.elapsed() < Duration::from_millis(lease_ms) =>
            {
                return Ok(d.clone());
            }
            Some(_) => false,
            None => true,
        };
        if !fresh {
            r.map.remove(digest);
        }
        Err(r.forgotten)
    }
}

async fn caller(parts: &Parts, state: &AppState) -> ApiResult<Caller> {
    let token = bearer(parts)?;
    if token.starts_with(DEVICE_PREFIX) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let forgotten = match state.credentials.remembered(&digest, state.config.lease_ms) {
            Ok(d) => return Ok(Caller::Device(d)),
            Err(forgotten) => forgotten,
        };
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT tenant, device_id FROM devices WHERE credential_hash = $1")
                .bind(hex::encode(digest))
                .fetch_optional(&state.db)
                .await?;
        let (tenant, device_id) = row
            .ok_or_else(|| ApiError::unauthenticated("authorization: unknown device credential"))?;
        let d = Device {
            tenant: name(&tenant)?,
            device_id: name(&device_id)?,
        };
        let mut r = state.credentials.0.lock().expect("credentials lock");
        if r.forgotten == forgotten {
            r.map.insert(digest, (d.clone(), Instant::now()));
        }
        drop(r);
        return Ok(Caller::Device(d));
    }
    let claims = state.jwt.check(token)?;
    let write = match claims.role.as_str() {
        "admin" => true,
        "viewer" => false,
        other => {
            return Err(ApiError::denied(format!(
                "authorization: unknown role {other:?}"
            )));
        }
    };
    let tenant = claims
        .tenant
        .parse::<Name>()
        .map_err(|e| ApiError::unauthenticated(format!("authorization: tenant: {e}")))?;
    // Who the audit trail records: a token naming no valid subject is refused, never
    // recorded as someone else.
    let sub = claims
        .sub
        .parse::<Name>()
        .map_err(|e| ApiError::unauthenticated(format!("authorization: sub: {e}")))?;
    Ok(Caller::Admin(Admin { tenant, sub, write }))
}

fn name(s: &str) -> ApiResult<Name> {
    s.parse()
        .map_err(|e| ApiError::internal(format!("stored name {s:?}: {e}")))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        caller(parts, state).await
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match caller(parts, state).await? {
            Caller::Admin(a) => Ok(a),
            Caller::Device(_) => Err(ApiError::denied(
                "authorization: a device credential cannot use the admin API",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Device {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match caller(parts, state).await? {
            Caller::Device(d) => Ok(d),
            Caller::Admin(_) => Err(ApiError::denied(
                "authorization: this endpoint takes the device's own credential",
            )),
        }
    }
}
