//! Device profiles and devices: `PUT`/`GET /api/v1/ota/profiles/{id}` and
//! `PUT`/`GET /api/v1/devices/{device_id}`. A device is the library's `DeviceProfile` (its own
//! report of its hardware and installed versions) plus the device profile it belongs to; its
//! credential is issued when it is first registered and stored hashed.

use axum::Json as AxumJson;
use axum::extract::State;
use axum::http::StatusCode;
use ota_core::plan::PROFILE_LABEL;
use ota_core::{DeviceProfile, Limits, Name};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Admin, Caller, credential_hash, new_device_credential};
use crate::db::{i, u};
use crate::error::{ApiError, ApiResult};
use crate::packages::parse_id;
use crate::state::{AppState, Body, Json, Path, now, parse_json};

/// A device profile: the rollout target, and the OTA policy its devices inherit.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The profile-level assignment: the package its devices install when no device-level
    /// assignment says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<String>,
}

fn name(field: &str, s: &str) -> ApiResult<Name> {
    s.parse()
        .map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// `PUT /api/v1/ota/profiles/{id}`.
pub async fn put_profile(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Json(body): Json<Profile>,
) -> ApiResult<AxumJson<Value>> {
    admin.require_write()?;
    name("profile_id", &id)?;
    if let Some(p) = &body.package_id {
        parse_id("package_id", p)?;
        crate::packages::available(&st, admin.tenant.as_str(), p).await?;
    }
    let text = serde_json::to_string(&body).unwrap_or_default();
    // One statement, so two PUTs of the same new profile at once both succeed (the later
    // one's body stays) rather than one failing on the key the other inserted.
    sqlx::query(
        "INSERT INTO profiles (tenant, profile_id, body, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, profile_id) DO UPDATE SET body = excluded.body, \
         updated_at = excluded.updated_at",
    )
    .bind(admin.tenant.to_string())
    .bind(id.clone())
    .bind(text)
    .bind(i(now().get()))
    .execute(&st.db)
    .await?;
    Ok(AxumJson(json!({ "profile_id": id, "profile": body })))
}

/// A tenant's profile.
pub async fn profile(st: &AppState, tenant: &str, id: &str) -> ApiResult<Option<Profile>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT body FROM profiles WHERE tenant = $1 AND profile_id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&st.db)
            .await?;
    Ok(row.and_then(|(b,)| serde_json::from_str(&b).ok()))
}

/// `GET /api/v1/ota/profiles/{id}`.
pub async fn get_profile(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Value>> {
    let p = profile(&st, admin.tenant.as_str(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("profile_id: no profile {id}")))?;
    let devices: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM devices WHERE tenant = $1 AND profile_id = $2")
            .bind(admin.tenant.to_string())
            .bind(id.clone())
            .fetch_one(&st.db)
            .await?;
    Ok(AxumJson(
        json!({ "profile_id": id, "profile": p, "devices": u(devices.0) }),
    ))
}

/// `PUT /api/v1/devices/{device_id}`: `{"profile_id": "prof_temp_v2", "device_type": ...,
/// "hardware_profile": ..., "arch": ..., "installed": {...}}` — the device profile it belongs
/// to, and the library's `DeviceProfile` fields (`device_id` may be left out). The first
/// registration answers 201 with the device's `credential`, shown once; `"issue_credential":
/// true` issues a registered device a new one (answered once, the old one revoked).
pub async fn put_device(
    State(st): State<AppState>,
    admin: Admin,
    Path(device_id): Path<String>,
    Body(body): Body,
) -> ApiResult<(StatusCode, AxumJson<Value>)> {
    admin.require_write()?;
    let id = name("device_id", &device_id)?;
    let mut v: Value = parse_json(&body)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid("body: expected a JSON object"))?;
    let profile_id = match obj.remove("profile_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(name("profile_id", &s)?),
        Some(_) => return Err(ApiError::invalid("profile_id: expected a string")),
    };
    let reissue = match obj.remove("issue_credential") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::invalid(
                "issue_credential: expected true or false",
            ));
        }
    };
    match obj.get("device_id") {
        None => {
            obj.insert("device_id".into(), Value::String(device_id.clone()));
        }
        Some(Value::String(s)) if *s == device_id => {}
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "device_id: the body names another device than the path's {device_id}"
            )));
        }
    }
    let text = serde_json::to_vec(&v).unwrap_or_default();
    let mut device = DeviceProfile::from_json_with_limits(&text, &Limits::DEFAULT)
        .map_err(|e| ApiError::from_status(e.status(), "", e))?;
    if let Some(p) = &profile_id {
        if profile(&st, admin.tenant.as_str(), p.as_str())
            .await?
            .is_none()
        {
            return Err(ApiError::not_found(format!("profile_id: no profile {p}")));
        }
        let label = name(PROFILE_LABEL, PROFILE_LABEL)?;
        if let Some(l) = device.labels.get(&label)
            && l != p.as_str()
        {
            return Err(ApiError::invalid(format!(
                "labels.profile: {l} differs from profile_id {p}"
            )));
        }
        device.labels.insert(label, p.to_string());
    }
    let doc = serde_json::to_string(&device).unwrap_or_default();
    let t = i(now().get());
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT device_id FROM devices WHERE tenant = $1 AND device_id = $2")
            .bind(admin.tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&st.db)
            .await?;
    if exists.is_none() {
        // A new device joins the running rollouts (below): with replicas, this one must be
        // able to drive them all, or nothing is written (a retryable `UNAVAILABLE`).
        crate::engine::join_ready(&st, admin.tenant.as_str()).await?;
    }
    let mut tx = st.db.begin().await?;
    let update = || {
        sqlx::query(
            "UPDATE devices SET profile_id = $1, profile = $2, updated_at = $3 \
             WHERE tenant = $4 AND device_id = $5",
        )
        .bind(profile_id.as_ref().map(ToString::to_string))
        .bind(doc.clone())
        .bind(t)
        .bind(admin.tenant.to_string())
        .bind(id.to_string())
    };
    let mut created = None;
    if update().execute(&mut *tx).await?.rows_affected() == 0 {
        let credential = new_device_credential();
        // Two first registrations at once: the one that inserts second finds the other's
        // row (its insert waits for the other's commit), and updates it as a registered
        // device's PUT would, rather than failing on the key.
        let inserted = sqlx::query(
            "INSERT INTO devices (tenant, device_id, profile_id, profile, credential_hash, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant, device_id) DO NOTHING",
        )
        .bind(admin.tenant.to_string())
        .bind(id.to_string())
        .bind(profile_id.as_ref().map(ToString::to_string))
        .bind(doc.clone())
        .bind(credential_hash(&credential))
        .bind(t)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            created = Some(credential);
        } else {
            update().execute(&mut *tx).await?;
        }
    }
    let (status, credential) = if let Some(credential) = created {
        (StatusCode::CREATED, Some(credential))
    } else if reissue {
        // A device that lost its credential (its agent was killed between the registration
        // and saving it) gets a new one; the old one stops working.
        let credential = new_device_credential();
        sqlx::query("UPDATE devices SET credential_hash = $1 WHERE tenant = $2 AND device_id = $3")
            .bind(credential_hash(&credential))
            .bind(admin.tenant.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        (StatusCode::OK, Some(credential))
    } else {
        (StatusCode::OK, None)
    };
    tx.commit().await?;
    if status == StatusCode::OK && credential.is_some() {
        // The old credential stops working here too, not only in the database.
        st.credentials.forget(admin.tenant.as_str(), id.as_str());
    }
    // A device registered before joins what it is missing (a first registration's join that
    // was lost), as far as this replica drives the rollouts: its update stands either way.
    match crate::engine::join(&st, admin.tenant.as_str(), &device).await {
        Err(e) if status == StatusCode::CREATED => return Err(e),
        Err(e) => tracing::warn!(device_id = %id, error = %e.message, "rejoin deferred"),
        Ok(()) => {}
    }
    let mut answer = json!({ "device_id": id, "profile_id": profile_id, "device": device });
    if let Some(c) = credential {
        answer["credential"] = Value::String(c);
    }
    Ok((status, AxumJson(answer)))
}

/// `GET /api/v1/devices/{device_id}`: for a tenant admin, or the device itself.
pub async fn get_device(
    State(st): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
) -> ApiResult<AxumJson<Value>> {
    let tenant = match &caller {
        Caller::Admin(a) => a.tenant.clone(),
        Caller::Device(d) => {
            d.require(&device_id)?;
            d.tenant.clone()
        }
    };
    let (profile_id, device) = device(&st, tenant.as_str(), &device_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("device_id: no device {device_id}")))?;
    Ok(AxumJson(
        json!({ "device_id": device_id, "profile_id": profile_id, "device": device }),
    ))
}

/// A tenant's device: its profile id and `DeviceProfile`.
pub async fn device(
    st: &AppState,
    tenant: &str,
    device_id: &str,
) -> ApiResult<Option<(Option<String>, DeviceProfile)>> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT profile_id, profile FROM devices WHERE tenant = $1 AND device_id = $2",
    )
    .bind(tenant.to_string())
    .bind(device_id.to_string())
    .fetch_optional(&st.db)
    .await?;
    row.map(|(p, doc)| {
        serde_json::from_str(&doc)
            .map(|d| (p, d))
            .map_err(|e| ApiError::internal(format!("stored device {device_id}: {e}")))
    })
    .transpose()
}

/// Every device of a tenant (the fleet a rollout is created over).
pub async fn fleet(st: &AppState, tenant: &str) -> ApiResult<Vec<DeviceProfile>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT profile FROM devices WHERE tenant = $1 ORDER BY device_id")
            .bind(tenant.to_string())
            .fetch_all(&st.db)
            .await?;
    profiles(rows)
}

/// The profiles of a tenant's devices registered (or registered again) at or after `since`
/// (Unix milliseconds).
pub async fn registered_since(
    st: &AppState,
    tenant: &str,
    since: u64,
) -> ApiResult<Vec<DeviceProfile>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT profile FROM devices WHERE tenant = $1 AND updated_at >= $2 ORDER BY device_id",
    )
    .bind(tenant.to_string())
    .bind(i(since))
    .fetch_all(&st.db)
    .await?;
    profiles(rows)
}

fn profiles(rows: Vec<(String,)>) -> ApiResult<Vec<DeviceProfile>> {
    rows.into_iter()
        .map(|(doc,)| {
            serde_json::from_str(&doc)
                .map_err(|e| ApiError::internal(format!("stored device: {e}")))
        })
        .collect()
}
