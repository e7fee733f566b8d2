//! The operator's rollout API: create (the OTA API's body, or any field of the library's plan),
//! pause, resume, rollback, abort, approve a wave, status, devices, audit trail.

use axum::Json as AxumJson;
use axum::extract::State;
use axum::http::StatusCode;
use ota_core::Limits;
use ota_core::plan::RolloutSpec;
use ota_core::rollout::{DeviceState, Input};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::db::{i, u};
use crate::engine;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Body, Path, Query};

/// A percentage as the OTA API writes it: `5`, not `5.0`, when whole.
fn percent(p: f64) -> Value {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        json!(p as i64)
    } else {
        json!(p)
    }
}

/// The answer of a creation, in the OTA API's order.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RolloutCreated)]
pub struct Created {
    rollout_id: String,
    /// `active`.
    #[schema(value_type = String)]
    status: ota_core::rollout::RolloutState,
    #[schema(value_type = f64)]
    canary_percent: Value,
    scheduled_count: u64,
}

/// The answer of an operator command.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OperatorAnswer {
    rollout_id: String,
    /// `active`, `paused`, `rolling_back`, `completed`, `aborted`.
    #[schema(value_type = String)]
    status: ota_core::rollout::RolloutState,
    halt_reason: Option<String>,
    /// `SEQ:HASH`.
    audit_head: String,
}

/// `POST /api/v1/ota/rollouts`.
pub async fn create(
    State(st): State<AppState>,
    admin: Admin,
    Body(body): Body,
) -> ApiResult<(StatusCode, AxumJson<Created>)> {
    admin.require_write()?;
    crate::state::check_body(&body)?;
    let spec = RolloutSpec::from_json(&body, &Limits::DEFAULT)
        .map_err(|e| ApiError::from_status(e.status(), "", e))?;
    let c = engine::create(&st, &admin.tenant, &admin.sub, spec).await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(Created {
            rollout_id: c.rollout_id,
            status: c.status.status,
            canary_percent: percent(c.status.canary_percent),
            scheduled_count: c.status.scheduled_count,
        }),
    ))
}

/// `GET /api/v1/ota/rollouts`: the tenant's rollouts.
pub async fn list(State(st): State<AppState>, admin: Admin) -> ApiResult<AxumJson<Value>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT rollout_id, package_id, state, created_at FROM rollouts WHERE tenant = $1 \
         ORDER BY created_at, rollout_id",
    )
    .bind(admin.tenant.to_string())
    .fetch_all(&st.db)
    .await?;
    let rollouts: Vec<Value> = rows
        .into_iter()
        .map(|(id, p, s, t)| json!({"rollout_id": id, "package_id": p, "status": s, "created_at": u(t)}))
        .collect();
    Ok(AxumJson(json!({ "rollouts": rollouts })))
}

/// `GET /api/v1/ota/rollouts/{id}`: state, counts per device state and per wave, the halt
/// reason, the audit head.
pub async fn status(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<Value>> {
    let s = engine::lookup(&st, admin.tenant.as_str(), &id)
        .await?
        .rollout
        .status();
    let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
    v["canary_percent"] = percent(s.canary_percent);
    v["audit_head"] = Value::String(s.audit_head.to_string());
    Ok(AxumJson(v))
}

async fn operator(
    st: &AppState,
    admin: &Admin,
    id: &str,
    input: Input,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    admin.require_write()?;
    let tenant = admin.tenant.as_str();
    // The answer is what the commit left, not a second look (which could fail, or see
    // another input's change, after this one was committed).
    let applied = engine::input(st, Some(tenant), id, input).await?;
    Ok(AxumJson(OperatorAnswer {
        rollout_id: id.to_string(),
        status: applied.state,
        halt_reason: applied.halt_reason,
        audit_head: applied.audit_head,
    }))
}

/// `POST /api/v1/ota/rollouts/{id}/pause`.
pub async fn pause(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    let by = admin.sub.clone();
    operator(&st, &admin, &id, Input::Pause { by }).await
}

/// `POST /api/v1/ota/rollouts/{id}/resume`.
pub async fn resume(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    let by = admin.sub.clone();
    operator(&st, &admin, &id, Input::Resume { by }).await
}

/// `POST /api/v1/ota/rollouts/{id}/rollback`.
pub async fn rollback(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    let by = admin.sub.clone();
    operator(&st, &admin, &id, Input::Rollback { by }).await
}

/// `POST /api/v1/ota/rollouts/{id}/abort`.
pub async fn abort(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    let by = admin.sub.clone();
    operator(&st, &admin, &id, Input::Abort { by }).await
}

/// `POST /api/v1/ota/rollouts/{id}/waves/{n}/approve`.
pub async fn approve(
    State(st): State<AppState>,
    admin: Admin,
    Path((id, wave)): Path<(String, usize)>,
) -> ApiResult<AxumJson<OperatorAnswer>> {
    let by = admin.sub.clone();
    operator(&st, &admin, &id, Input::Approve { wave, by }).await
}

/// The query of the devices listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    /// Only devices in this state.
    #[serde(default)]
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Where the previous page ended.
    #[serde(default)]
    pub page_token: Option<usize>,
}

/// `GET /api/v1/ota/rollouts/{id}/devices?state=&page_size=&page_token=`.
pub async fn devices(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(q): Query<DevicesQuery>,
) -> ApiResult<AxumJson<Value>> {
    let filter = match &q.state {
        Some(s) => Some(
            DeviceState::ALL
                .into_iter()
                .find(|d| d.as_str() == s)
                .ok_or_else(|| ApiError::invalid(format!("state: unknown device state {s:?}")))?,
        ),
        None => None,
    };
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let start = q.page_token.unwrap_or(0);
    let g = engine::lookup(&st, admin.tenant.as_str(), &id).await?;
    let r = &g.rollout;
    let mut page = Vec::new();
    let mut next = None;
    for (n, (device_id, state)) in r
        .devices()
        .enumerate()
        .skip(start)
        .filter(|(_, (_, s))| filter.is_none_or(|f| f == *s))
    {
        if page.len() == size {
            next = Some(n);
            break;
        }
        page.push(json!({
            "device_id": device_id,
            "state": state,
            "wave": r.device_wave(device_id),
        }));
    }
    Ok(AxumJson(
        json!({ "devices": page, "next_page_token": next }),
    ))
}

/// The query of the audit listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number.
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (default 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A page of the audit trail: the head, and the stored lines after `after`, each exactly as
/// stored (a byte-hashing verifier reads them as it reads the trail's file).
#[derive(Debug, serde::Serialize)]
pub struct AuditPage {
    /// The trail's head, `SEQ:HASH`.
    pub head: String,
    /// The records, in order, numbered from `after + 1`.
    pub records: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /api/v1/ota/rollouts/{id}/audit`: the hash-chained trail.
pub async fn audit(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AxumJson<AuditPage>> {
    let head = engine::lookup(&st, admin.tenant.as_str(), &id)
        .await?
        .rollout
        .audit_head();
    let after = q.after.map_or(-1, i);
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, record FROM audit_records WHERE rollout_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id.clone())
    .bind(after)
    .bind(i(limit))
    .fetch_all(&st.db)
    .await?;
    // A stored record that is not JSON is served as an error naming it, never left out: a
    // trail with a hole in it would read as one cut short or tampered with.
    let records = rows
        .into_iter()
        .map(|(seq, r)| {
            serde_json::value::RawValue::from_string(r).map_err(|e| {
                ApiError::internal(format!(
                    "audit record {seq} of {id} is not JSON as stored: {e}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AxumJson(AuditPage {
        head: head.to_string(),
        records,
    }))
}
