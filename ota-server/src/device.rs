//! The device side, each endpoint reachable only with that device's own credential:
//! its assignment, the chunk protocol, its reports, and its persistent RPC records.

use axum::Json as AxumJson;
use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ota_core::assignment::{Assignment, clamp};
use ota_core::chunk::CHUNK_SIZE;
use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::rollout::{DeviceState, Input};
use ota_core::{Limits, Name};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Device};
use crate::db::{i, u};
use crate::engine;
use crate::error::{ApiError, ApiResult};
use crate::packages::{available, parse_id};
use crate::state::{AppState, Body, LiveEvent, Path, Query, now, parse_json};

/// The progress steps a device may report beside `in_progress`, for the live view.
pub const STEPS: [&str; 5] = ["downloading", "verified", "installed", "swapped", "probing"];

/// A device's assignment: the package, and the rollout and attempt of the command behind
/// it; device-level first, then its profile's (which no rollout sent).
struct Assigned {
    package_id: String,
    rollout: Option<(String, u32)>,
}

/// A device's assignment, device-level first, then its profile's.
async fn assigned(st: &AppState, d: &Device) -> ApiResult<Option<Assigned>> {
    let row = crate::assignments::get(st, d.tenant.as_str(), d.device_id.as_str()).await?;
    if let Some((package_id, r, attempt)) = row {
        return Ok(Some(Assigned {
            package_id,
            rollout: Some((r, attempt)),
        }));
    }
    let Some((Some(profile_id), _)) =
        crate::fleet::device(st, d.tenant.as_str(), d.device_id.as_str()).await?
    else {
        return Ok(None);
    };
    let profile = crate::fleet::profile(st, d.tenant.as_str(), &profile_id).await?;
    Ok(profile
        .and_then(|p| p.package_id)
        .map(|package_id| Assigned {
            package_id,
            rollout: None,
        }))
}

/// The header in which a device tells, on each poll, the version it really runs:
/// `name=version`, comma separated (after a local rollback, the server learns the truth).
pub const INSTALLED_HEADER: &str = "ota-installed";
/// The header in which the server suggests how long a device waits between polls, in
/// milliseconds (`--poll-interval-ms`).
pub const POLL_INTERVAL_HEADER: &str = "ota-poll-interval-ms";

/// The versions an `ota-installed` header names.
fn parse_installed(v: &HeaderValue) -> ApiResult<Vec<(Name, ota_core::Version)>> {
    let bad = |why: String| ApiError::invalid(format!("{INSTALLED_HEADER}: {why}"));
    let s = v
        .to_str()
        .map_err(|_| bad("expected `name=version`, comma separated".into()))?;
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (n, ver) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("expected `name=version`, found {item:?}")))?;
        let n: Name = n.trim().parse().map_err(|e| bad(format!("{e}")))?;
        let ver: ota_core::Version = ver.trim().parse().map_err(|e| bad(format!("{e}")))?;
        out.push((n, ver));
    }
    Ok(out)
}

/// Records what the device says it runs into its row, when that differs. The row is
/// replaced only if it is still the one read (an admin's `PUT /devices` in between is never
/// overwritten with the old document): on such a race it is read again, a few times at most
/// (the device says it again at its next poll).
async fn record_installed(
    st: &AppState,
    dev: &Device,
    installed: &[(Name, ota_core::Version)],
) -> ApiResult<()> {
    if installed.is_empty() {
        return Ok(());
    }
    for _ in 0..4 {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT profile FROM devices WHERE tenant = $1 AND device_id = $2")
                .bind(dev.tenant.to_string())
                .bind(dev.device_id.to_string())
                .fetch_optional(&st.db)
                .await?;
        let Some((read,)) = row else {
            return Ok(());
        };
        let mut profile: ota_core::DeviceProfile = serde_json::from_str(&read)
            .map_err(|e| ApiError::internal(format!("stored device {}: {e}", dev.device_id)))?;
        let mut changed = false;
        for (n, v) in installed {
            if profile.installed.get(n) != Some(v) {
                profile.installed.insert(n.clone(), v.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let replaced = sqlx::query(
            "UPDATE devices SET profile = $1, updated_at = $2 \
             WHERE tenant = $3 AND device_id = $4 AND profile = $5",
        )
        .bind(serde_json::to_string(&profile).unwrap_or_default())
        .bind(i(now().get()))
        .bind(dev.tenant.to_string())
        .bind(dev.device_id.to_string())
        .bind(read)
        .execute(&st.db)
        .await?
        .rows_affected();
        if replaced > 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// `GET /api/v1/devices/{device_id}/ota`: the assignment (the library's `Assignment`: seed
/// 004's metadata, the signed envelope, the key, and the rollout and `attempt` of the command
/// behind it, which the device says back in its reports), or 204 when there is none. Queued RPC
/// records count as delivered. The device may tell the versions it runs in an
/// `ota-installed: name=version` header, recorded into its row; the answer suggests the
/// poll interval in `ota-poll-interval-ms`.
pub async fn ota(
    State(st): State<AppState>,
    dev: Device,
    Path(device_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    dev.require(&device_id)?;
    if let Some(v) = headers.get(INSTALLED_HEADER) {
        let installed = parse_installed(v)?;
        record_installed(&st, &dev, &installed).await?;
    }
    let interval = (POLL_INTERVAL_HEADER, st.config.poll_interval_ms.to_string());
    let Some(Assigned {
        package_id,
        rollout,
    }) = assigned(&st, &dev).await?
    else {
        return Ok((StatusCode::NO_CONTENT, [interval]).into_response());
    };
    let pkg = available(&st, dev.tenant.as_str(), &package_id).await?;
    mark_sent(&st, &dev).await?;
    let (rollout_id, attempt) = match rollout {
        Some((r, attempt)) => (r.parse().ok(), Some(attempt)),
        None => (None, None),
    };
    // A catalog package was verified whole (`sign::verify` or TUF), so its proof is at hand.
    let a = Assignment::new(&pkg.verified, pkg.encryption_key.clone(), rollout_id, None)
        .ok_or_else(|| ApiError::internal(format!("{package_id}: its envelope was not kept")))?
        .with_attempt(attempt);
    Ok((
        [
            (
                header::CONTENT_TYPE.as_str(),
                "application/json".to_string(),
            ),
            interval,
        ],
        a.to_json(),
    )
        .into_response())
}

async fn mark_sent(st: &AppState, dev: &Device) -> ApiResult<()> {
    crate::rpc::mark_sent(st, dev.tenant.as_str(), dev.device_id.as_str()).await
}

/// The chunk query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkQuery {
    /// The package (must be the device's assignment).
    pub package_id: String,
    /// The first byte (default 0, or the `Range` header's).
    #[serde(default)]
    pub offset: Option<u64>,
    /// How many bytes: at least 1, clamped to the 64 KiB chunk the offset is in.
    #[serde(default)]
    pub length: Option<u64>,
}

fn range_header(h: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = h.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("range: expected `bytes=START-END` or `bytes=START-`");
    let s = v.to_str().map_err(|_| bad())?;
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let len = if b.trim().is_empty() {
        u64::from(CHUNK_SIZE)
    } else {
        let end: u64 = b.trim().parse().map_err(|_| bad())?;
        if end < start {
            return Err(bad());
        }
        // `bytes=0-18446744073709551615` is every byte; the grant is clamped to a chunk.
        (end - start).saturating_add(1)
    };
    Ok(Some((start, len)))
}

/// `GET /api/v1/devices/{device_id}/ota/chunk?package_id=&offset=&length=` (or a `Range`
/// header): the bytes, clamped to the 64 KiB chunk, read from the store in one call (never
/// the whole artifact). Headers:
/// `ota-offset`, `ota-length`, `ota-complete` (`true` on the last range), `content-range`.
/// Any package but the device's own assignment answers `PERMISSION_DENIED`.
pub async fn chunk(
    State(st): State<AppState>,
    dev: Device,
    Path(device_id): Path<String>,
    Query(q): Query<ChunkQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    dev.require(&device_id)?;
    parse_id("package_id", &q.package_id)?;
    let mine = assigned(&st, &dev).await?.map(|a| a.package_id);
    if mine.as_deref() != Some(q.package_id.as_str()) {
        return Err(ApiError::denied(format!(
            "package_id: device {} may not fetch {}: it is not its assignment",
            dev.device_id, q.package_id
        )));
    }
    let pkg = available(&st, dev.tenant.as_str(), &q.package_id).await?;
    let size = pkg.verified.package().size_bytes;
    let range = range_header(&headers)?;
    if range.is_none() && q.length == Some(0) {
        return Err(ApiError::invalid("length: at least 1 byte"));
    }
    let (offset, length) = match range {
        Some(r) => r,
        None => (
            q.offset.unwrap_or(0),
            q.length.unwrap_or(u64::from(CHUNK_SIZE)),
        ),
    };
    let field = if range.is_some() { "range" } else { "offset" };
    let grant =
        clamp(offset, length, size).map_err(|e| ApiError::from_status(e.status(), field, e))?;
    let bytes = crate::packages::read_range(&pkg.path, grant.offset, grant.length).await?;
    st.metrics.chunk_bytes.fetch_add(
        u64::from(grant.length),
        std::sync::atomic::Ordering::Relaxed,
    );
    let end = grant.offset + u64::from(grant.length) - 1;
    let mut resp = Response::new(HttpBody::from(bytes));
    *resp.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    let hv = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, hv(grant.length.to_string()));
    h.insert(
        header::CONTENT_RANGE,
        hv(format!("bytes {}-{end}/{size}", grant.offset)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("ota-offset", hv(grant.offset.to_string()));
    h.insert("ota-length", hv(grant.length.to_string()));
    h.insert("ota-complete", hv(grant.complete.to_string()));
    Ok(resp)
}

/// The answer of a report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReportAnswer {
    #[schema(value_type = String)]
    device_id: Name,
    rollout_id: String,
    /// The device's state in the rollout after the report (`sent`, `in_progress`,
    /// `succeeded`, `failed`...); null when the report named no rollout of the device's.
    #[schema(value_type = Option<String>)]
    state: Option<DeviceState>,
    /// Whether the engine recorded it (a further progress step is for the live view only).
    recorded: bool,
}

/// `POST /api/v1/devices/{device_id}/ota/report`: the OTA API's report `{device_id, rollout_id,
/// firmware_version, status, reason}`, plus the `attempt` the assignment named, and an
/// optional progress `step` (downloading, verified, installed, swapped, probing) with
/// `status: in_progress`.
///
/// A report must match the rollout, the package version (a success names it) and the
/// attempt; one that does not is refused with its reason and recorded in the rollout's
/// audit trail. A report without `rollout_id` is about the device's own assignment. A report
/// without `attempt` (an agent that does not say it back) is about the first attempt of the
/// device's current command (the update's, or the rollback's): taken while the device is on
/// it, refused (`attempt`) once a retry went out, since it cannot be told from a replay of the
/// first attempt's report. A success on an earlier attempt of the update counts when every
/// earlier attempt timed out (the device finished it after all).
pub async fn report(
    State(st): State<AppState>,
    dev: Device,
    Path(device_id): Path<String>,
    Body(body): Body,
) -> ApiResult<AxumJson<ReportAnswer>> {
    dev.require(&device_id)?;
    let mut v: Value = parse_json(&body)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid("body: expected a JSON object"))?;
    let step = match obj.remove("step") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if STEPS.contains(&s.as_str()) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "step: expected one of {}",
                STEPS.join(", ")
            )));
        }
    };
    let text = serde_json::to_vec(&v).unwrap_or_default();
    let mut r = DeviceReport::from_json(&text, &Limits::DEFAULT)
        .map_err(|e| ApiError::from_status(e.status(), "", e))?;
    if step.is_some() && r.status != ReportStatus::InProgress {
        return Err(ApiError::invalid(
            "step: a progress step goes with status in_progress",
        ));
    }
    if r.device_id != dev.device_id {
        return Err(ApiError::invalid(format!(
            "device_id: the report names {}, the path {}",
            r.device_id, dev.device_id
        )));
    }
    let assignment = assigned(&st, &dev)
        .await?
        .and_then(|a| a.rollout)
        .map(|(r, _)| r);
    let rid = match (&r.rollout_id, &assignment) {
        (Some(b), _) => b.to_string(),
        (None, Some(a)) => a.clone(),
        (None, None) => {
            return Err(ApiError::precondition(format!(
                "rollout_id: device {} has no rollout assignment to report on",
                dev.device_id
            )));
        }
    };
    let state = engine::lookup(&st, dev.tenant.as_str(), &rid)
        .await?
        .rollout
        .device_state(dev.device_id.as_str());
    let Some(state) = state else {
        return Err(ApiError::precondition(format!(
            "rollout_id: device {} is not in rollout {rid}",
            dev.device_id
        )));
    };
    if let Some(a) = &assignment
        && *a != rid
    {
        return Err(ApiError::precondition(format!(
            "rollout_id: device {} is assigned rollout {a}, not {rid}",
            dev.device_id
        )));
    }
    let reportable = matches!(
        state,
        DeviceState::Sent
            | DeviceState::InProgress
            | DeviceState::RollbackSent
            | DeviceState::Cancelled
            | DeviceState::Scheduled
            | DeviceState::RollbackScheduled
    );
    if !reportable {
        return Err(ApiError::precondition(format!(
            "status: device {} is {state} in rollout {rid}: the report changes nothing",
            dev.device_id
        )));
    }
    let live = LiveEvent {
        tenant: dev.tenant.to_string(),
        rollout_id: rid.clone(),
        id: format!("progress:{}:{}", dev.device_id, now().get()),
        subject: format!("device.ota.progress.{}.{rid}", dev.tenant),
        payload: json!({
            "device_id": dev.device_id, "status": r.status,
            "step": step, "firmware_version": r.firmware_version, "reason": r.reason,
        }),
    };
    // A further progress step of a device already in progress is for the live view only.
    let progress_only = r.status == ReportStatus::InProgress
        && matches!(state, DeviceState::InProgress | DeviceState::RollbackSent)
        && step.is_some();
    let after = if progress_only {
        Some(state)
    } else {
        r.rollout_id = Some(
            rid.parse()
                .map_err(|e| ApiError::invalid(format!("rollout_id: {e}")))?,
        );
        engine::input(
            &st,
            Some(dev.tenant.as_str()),
            &rid,
            Input::device_report(r),
        )
        .await
        // Agents of before `ABORTED` drop a report answered with any coded 409: a
        // concurrent write is answered as it was before, a retryable 503.
        .map_err(|e| match e.code {
            crate::error::Code::Aborted => {
                ApiError::new(crate::error::Code::Unavailable, e.message)
            }
            _ => e,
        })?
        .device_state
    };
    let _ = st.events.send(live);
    Ok(AxumJson(ReportAnswer {
        device_id: dev.device_id,
        rollout_id: rid,
        state: after,
        recorded: !progress_only,
    }))
}

/// The RPC query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcQuery {
    /// Only this rollout's records.
    #[serde(default)]
    pub rollout_id: Option<String>,
}

/// `GET /api/v1/devices/{device_id}/rpc[?rollout_id=]`: the device's persistent RPC records
/// (of one rollout, with `rollout_id`), newest last: `ota_start` and `ota_rollback` with
/// `{rollout_id, package_id, attempt}`, `ota_cancel` with `{rollout_id, forced}`. When the
/// device itself asks, queued records count as delivered. A device that downloads asks for
/// its rollout's records: when the latest is an `ota_cancel`, its update was cancelled.
pub async fn rpc(
    State(st): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
    Query(q): Query<RpcQuery>,
) -> ApiResult<AxumJson<Value>> {
    if let Some(r) = &q.rollout_id {
        r.parse::<Name>()
            .map_err(|e| ApiError::invalid(format!("rollout_id: {e}")))?;
    }
    let tenant = match &caller {
        Caller::Admin(a) => {
            // An admin asking about a device that is not registered is told so, not
            // answered an empty list.
            if crate::fleet::device(&st, a.tenant.as_str(), &device_id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found(format!(
                    "device_id: no device {device_id}"
                )));
            }
            a.tenant.to_string()
        }
        Caller::Device(d) => {
            d.require(&device_id)?;
            mark_sent(&st, d).await?;
            d.tenant.to_string()
        }
    };
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        i64,
    );
    let sql = if q.rollout_id.is_some() {
        "SELECT rpc_id, rollout_id, method, params, state, created_at, sent_at, acked_at, \
         expires_at FROM device_rpc WHERE tenant = $1 AND device_id = $2 AND rollout_id = $3 \
         ORDER BY created_at, rpc_id"
    } else {
        "SELECT rpc_id, rollout_id, method, params, state, created_at, sent_at, acked_at, \
         expires_at FROM device_rpc WHERE tenant = $1 AND device_id = $2 \
         ORDER BY created_at, rpc_id"
    };
    let mut query = sqlx::query_as(sql).bind(tenant).bind(device_id.clone());
    if let Some(r) = q.rollout_id {
        query = query.bind(r);
    }
    let rows: Vec<Row> = query.fetch_all(&st.db).await?;
    let records: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.0, "rollout_id": r.1, "method": r.2,
                "params": serde_json::from_str::<Value>(&r.3).unwrap_or(Value::Null),
                "state": r.4, "created_at": u(r.5), "sent_at": r.6.map(u),
                "acked_at": r.7.map(u), "expires_at": u(r.8),
            })
        })
        .collect();
    Ok(AxumJson(json!({ "device_id": device_id, "rpc": records })))
}
