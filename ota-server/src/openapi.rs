//! The OpenAPI document of every endpoint, generated with utoipa from the declarations below
//! and checked in as `ota-server/openapi.json` (`tests/openapi.rs` fails on drift;
//! `OTA_BLESS=1` rewrites it). The request and answer documents of the library (the rollout
//! plan, the device profile, the assignment, the rollout status, audit records) are described
//! as objects: their fields are documented in `ota-core`.
#![allow(dead_code, missing_docs)]

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::device::ReportAnswer;
use crate::error::{ApiError as Error, Code};
use crate::fleet::Profile;
use crate::packages::{DsseUpload, PackageList, PackageView, Uploaded};
use crate::rollouts::{Created as RolloutCreated, OperatorAnswer};
use crate::seed_form::{SeedCompatibility, SeedUpload};

/// What a signed rollback is bound to: devices downgrade with it only while they run `from`,
/// before `expires`.
#[derive(Serialize, ToSchema)]
pub struct RollbackBinding {
    /// The version the rollback replaces.
    pub from: String,
    /// When it stops being valid (RFC 3339).
    pub expires: String,
}

/// A package upload, in either form (the document's union of the two bodies).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PackageUpload {
    Dsse(DsseUpload),
    Seed(Box<SeedUpload>),
}

/// A device's report (the OTA API's), with an optional progress step.
#[derive(Serialize, ToSchema)]
pub struct Report {
    pub device_id: String,
    pub rollout_id: Option<String>,
    /// The version the device runs; required with `success` (the package's version).
    pub firmware_version: Option<String>,
    /// `in_progress`, `success`, `failure`, `rejected`.
    pub status: String,
    pub reason: Option<String>,
    /// The attempt the assignment named, said back (none: the first attempt of the device's
    /// current command).
    pub attempt: Option<u32>,
    /// With `in_progress`: `downloading`, `verified`, `installed`, `swapped`, `probing`.
    pub step: Option<String>,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The answers any call of the API can get, added to each operation that does not list them
/// itself: 401 and 403 where a credential is needed, a concurrent write's 409 on the calls
/// that write, 500 and 503 on every call under `/api`.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("Error"))),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let ops = [
                (true, &mut item.put),
                (true, &mut item.post),
                (true, &mut item.delete),
                (false, &mut item.get),
            ];
            for (writing, op) in ops {
                let Some(op) = op else { continue };
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |code: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| answer(description).into());
                };
                if secured {
                    add(
                        "401",
                        "No credential, or one that is not valid (malformed, expired, revoked)",
                    );
                    add(
                        "403",
                        "A credential of the wrong kind (a device's on an admin path, an admin's on a device path, another device's), or a viewer's on a write",
                    );
                }
                if writing {
                    add(
                        "409",
                        "ABORTED: a concurrent request wrote the same row first; send the request again",
                    );
                }
                add("500", "INTERNAL: a bug, logged");
                add(
                    "503",
                    "UNAVAILABLE: the database is, or another replica drives the rollout; send the request again",
                );
            }
        }
    }
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The server is up", body = String)))]
fn healthz() {}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text: engine inputs, reports, commit failures, chunk bytes, events, packages, rollouts, unpublished outbox events", content_type = "text/plain", body = String)))]
fn metrics() {}

#[utoipa::path(post, path = "/api/v1/ota/packages", tag = "packages",
    request_body = PackageUpload,
    responses(
        (status = 201, description = "Verified and available", body = Uploaded),
        (status = 200, description = "The same package was available already", body = Uploaded),
        (status = 400, description = "Malformed, unknown field, bad signature, or the artifact does not match (the package is then rejected for good)", body = Error),
        (status = 403, description = "A viewer token, or an artifact outside the allowed roots", body = Error),
        (status = 409, description = "The package was rejected before", body = Error),
        (status = 413, description = "The body is larger than the limit", body = Error),
        (status = 501, description = "An artifact scheme or signature kind not supported yet", body = Error)),
    security(("bearer" = [])))]
fn upload_package() {}

#[utoipa::path(get, path = "/api/v1/ota/packages", tag = "packages",
    responses((status = 200, description = "The tenant's packages and their signers (the Trust Center)", body = PackageList)),
    security(("bearer" = [])))]
fn list_packages() {}

#[utoipa::path(get, path = "/api/v1/ota/packages/{id}", tag = "packages",
    params(("id" = String, Path, description = "The package id")),
    responses((status = 200, body = PackageView), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn get_package() {}

#[utoipa::path(get, path = "/api/v1/ota/keys", tag = "packages",
    responses((status = 200, description = "The server's key and the publisher keys devices trust, with the threshold", body = Object)),
    security(("bearer" = [])))]
fn keys() {}

#[utoipa::path(put, path = "/api/v1/ota/profiles/{id}", tag = "fleet",
    params(("id" = String, Path, description = "The profile id")),
    request_body = Profile,
    responses((status = 200, body = Object), (status = 400, body = Error), (status = 404, description = "Its package is not the tenant's", body = Error)),
    security(("bearer" = [])))]
fn put_profile() {}

#[utoipa::path(get, path = "/api/v1/ota/profiles/{id}", tag = "fleet",
    params(("id" = String, Path, description = "The profile id")),
    responses((status = 200, description = "{profile_id, profile, devices}", body = Object), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn get_profile() {}

#[utoipa::path(put, path = "/api/v1/devices/{device_id}", tag = "fleet",
    params(("device_id" = String, Path)),
    request_body(content = Object, description = "`profile_id` and the library's DeviceProfile fields (device_type, hardware_profile, arch, installed, ...); `issue_credential: true` issues a registered device a new credential (the old one is revoked)"),
    responses(
        (status = 201, description = "Registered: {device_id, profile_id, device, credential} (the credential is shown once)", body = Object),
        (status = 200, description = "Updated (with a new credential when issue_credential was asked)", body = Object),
        (status = 400, body = Error), (status = 404, description = "No such profile", body = Error)),
    security(("bearer" = [])))]
fn put_device() {}

#[utoipa::path(get, path = "/api/v1/devices/{device_id}", tag = "fleet",
    params(("device_id" = String, Path)),
    responses((status = 200, description = "{device_id, profile_id, device}", body = Object), (status = 403, body = Error), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn get_device() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts", tag = "rollouts",
    request_body(content = Object, description = "The OTA API's {package_id, target_profile_id, canary_percent, failure_threshold_percent, rollback_package_id}, plus any field of the library's RolloutSpec (waves, halt, timeouts, retries, pacing, window, target)"),
    responses(
        (status = 201, body = RolloutCreated),
        (status = 400, body = Error), (status = 404, body = Error),
        (status = 409, description = "A package not available", body = Error)),
    security(("bearer" = [])))]
fn create_rollout() {}

#[utoipa::path(get, path = "/api/v1/ota/rollouts", tag = "rollouts",
    responses((status = 200, description = "{rollouts: [{rollout_id, package_id, status, created_at}]}", body = Object)),
    security(("bearer" = [])))]
fn list_rollouts() {}

#[utoipa::path(get, path = "/api/v1/ota/rollouts/{id}", tag = "rollouts",
    params(("id" = String, Path)),
    responses((status = 200, description = "The library's RolloutStatus: state, counts per device state and per wave, halt reason, audit head", body = Object), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn rollout_status() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts/{id}/pause", tag = "rollouts",
    params(("id" = String, Path)),
    responses((status = 200, body = OperatorAnswer), (status = 404, body = Error), (status = 409, body = Error)),
    security(("bearer" = [])))]
fn pause() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts/{id}/resume", tag = "rollouts",
    params(("id" = String, Path)),
    responses((status = 200, body = OperatorAnswer), (status = 404, body = Error), (status = 409, body = Error)),
    security(("bearer" = [])))]
fn resume() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts/{id}/rollback", tag = "rollouts",
    params(("id" = String, Path)),
    responses((status = 200, body = OperatorAnswer), (status = 404, body = Error), (status = 409, body = Error)),
    security(("bearer" = [])))]
fn rollback() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts/{id}/abort", tag = "rollouts",
    params(("id" = String, Path)),
    responses((status = 200, body = OperatorAnswer), (status = 404, body = Error), (status = 409, body = Error)),
    security(("bearer" = [])))]
fn abort() {}

#[utoipa::path(post, path = "/api/v1/ota/rollouts/{id}/waves/{n}/approve", tag = "rollouts",
    params(("id" = String, Path), ("n" = usize, Path, description = "The wave (0 is the canary): the next to open")),
    responses((status = 200, body = OperatorAnswer), (status = 400, body = Error), (status = 404, body = Error),
        (status = 409, description = "Not the next wave to open, or the rollout is neither active nor paused", body = Error)),
    security(("bearer" = [])))]
fn approve() {}

#[utoipa::path(get, path = "/api/v1/ota/rollouts/{id}/devices", tag = "rollouts",
    params(("id" = String, Path),
        ("state" = Option<String>, Query, description = "Only devices in this state"),
        ("page_size" = Option<usize>, Query, description = "Default 100, at most 1000"),
        ("page_token" = Option<usize>, Query, description = "The previous page's next_page_token")),
    responses((status = 200, description = "{devices: [{device_id, state, wave}], next_page_token}", body = Object), (status = 400, body = Error), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn rollout_devices() {}

#[utoipa::path(get, path = "/api/v1/ota/rollouts/{id}/audit", tag = "rollouts",
    params(("id" = String, Path),
        ("after" = Option<u64>, Query, description = "Records after this sequence number (the records are numbered from 0 with no gap)"),
        ("limit" = Option<u64>, Query, description = "Default 1000")),
    responses((status = 200, description = "{head, records}: the hash-chained trail, each stored line exactly as stored (its bytes, so a verifier hashing the stored bytes reads it), in order from `after` + 1: a whole record (an object) or a device's routine report (a report line, an array; docs/audit-trail.md)", body = Object), (status = 404, body = Error), (status = 500, description = "INTERNAL: a bug, logged; here also a stored record that is not JSON, named", body = Error)),
    security(("bearer" = [])))]
fn audit() {}

#[utoipa::path(get, path = "/api/v1/ota/rollouts/{id}/events", tag = "rollouts",
    params(("id" = String, Path), ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event: an id this rollout's stream gave (ROLLOUT:SEQ:IDX)")),
    responses((status = 200, description = "text/event-stream: the OTA API's subjects as SSE event names (profile.ota.rollout.KIND.TENANT.ROLLOUT), and device.ota.progress.TENANT.ROLLOUT", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID is not an event id of this rollout", body = Error), (status = 404, body = Error)),
    security(("bearer" = [])))]
fn events() {}

#[utoipa::path(get, path = "/api/v1/devices/{device_id}/ota", tag = "device",
    params(("device_id" = String, Path),
        ("ota-installed" = Option<String>, Header, description = "The versions the device really runs, name=version, comma separated: recorded into its row (the truth after a local rollback)")),
    responses(
        (status = 200, description = "The library's Assignment: package_id, type, version, size_bytes, sha256, envelope, encryption_key, rollout_id, attempt (of the rollout's command, said back in reports); header ota-poll-interval-ms suggests when to poll again", body = Object),
        (status = 204, description = "Nothing to install; header ota-poll-interval-ms suggests when to poll again"),
        (status = 401, body = Error), (status = 403, description = "Another device's credential, or an admin token", body = Error)),
    security(("bearer" = [])))]
fn device_ota() {}

#[utoipa::path(get, path = "/api/v1/devices/{device_id}/ota/chunk", tag = "device",
    params(("device_id" = String, Path),
        ("package_id" = String, Query, description = "The device's assigned package"),
        ("offset" = Option<u64>, Query), ("length" = Option<u64>, Query, description = "At least 1; clamped to the 64 KiB chunk"),
        ("Range" = Option<String>, Header, description = "bytes=START-END, instead of offset and length")),
    responses(
        (status = 200, description = "The bytes; headers ota-offset, ota-length, ota-complete (true on the last range), content-range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The same, for a Range request", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Error), (status = 403, description = "Any package but the device's assignment", body = Error)),
    security(("bearer" = [])))]
fn device_chunk() {}

#[utoipa::path(post, path = "/api/v1/devices/{device_id}/ota/report", tag = "device",
    params(("device_id" = String, Path)),
    request_body = Report,
    responses(
        (status = 200, body = ReportAnswer),
        (status = 400, description = "A malformed report, or a success naming no version or another version than the package's (refused, and recorded in the audit trail)", body = Error), (status = 403, body = Error), (status = 404, description = "No such rollout", body = Error),
        (status = 409, description = "A replayed report, one for another rollout, or one about an attempt a retry replaced (refused, and recorded in the audit trail)", body = Error)),
    security(("bearer" = [])))]
fn device_report() {}

#[utoipa::path(get, path = "/api/v1/devices/{device_id}/rpc", tag = "device",
    params(("device_id" = String, Path),
        ("rollout_id" = Option<String>, Query, description = "Only this rollout's records")),
    responses((status = 200, description = "{device_id, rpc: [{id, rollout_id, method, params, state, created_at, sent_at, acked_at, expires_at}]}, oldest first: ota_start and ota_rollback (params rollout_id, package_id, attempt), ota_cancel (params rollout_id, forced); the device's own call marks queued records sent", body = Object), (status = 400, body = Error), (status = 403, body = Error),
        (status = 404, description = "No such device", body = Error)),
    security(("bearer" = [])))]
fn device_rpc() {}

#[derive(OpenApi)]
#[openapi(
    info(title = "ota-server", description = "The ota control plane: the OTA API. Admins use a bearer JWT (tenant and role); devices their own credential."),
    paths(healthz, metrics, upload_package, list_packages, get_package, keys, put_profile, get_profile,
        put_device, get_device, create_rollout, list_rollouts, rollout_status, pause, resume,
        rollback, abort, approve, rollout_devices, audit, events, device_ota, device_chunk,
        device_report, device_rpc),
    components(schemas(Error, Code, DsseUpload, SeedUpload, SeedCompatibility, RollbackBinding, PackageUpload, Uploaded,
        PackageView, PackageList, Profile, RolloutCreated, OperatorAnswer, Report, ReportAnswer)),
    modifiers(&Bearer, &CommonAnswers),
)]
struct Doc;

/// The document, as checked in (pretty JSON, a newline at the end). The version is left
/// out, so a release does not change it.
pub fn document() -> String {
    let mut doc = Doc::openapi();
    doc.info.version = "1".into();
    let mut s = doc.to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
