//! The summary of the live demo: the rollout as the server's API tells it (devices per state
//! and per wave, the halt reason, the fleet impact), its audit trail fetched and verified
//! against the head the API gives, and what each device's own slots hold.
//!
//! The `summary` object holds only what `--seed` fixes (the counts); the rollout id, the
//! audit head, the record count and the timing are beside it.

use std::collections::BTreeMap;

use ota_core::audit::{self, AuditHead, AuditRecord};
use serde_json::{Value, json};

use super::fleet::{self, Device, Running};
use super::operator::{Operator, count};
use super::server::Api;
use super::{Live, NEW, OLD};
use crate::out::{self, CliError, Outcome};

/// Device states the summary counts, in its order.
const STATES: [&str; 11] = [
    "succeeded",
    "failed",
    "timed_out",
    "rejected",
    "rolled_back",
    "rollback_failed",
    "cancelled",
    "pending",
    "scheduled",
    "sent",
    "in_progress",
];

/// Builds the outcome: the summary table (and its JSON), exit 1 when a device is left down
/// or broken.
pub(super) async fn finish(
    live: &mut Live<'_>,
    api: &Api,
    op: &Operator,
    devices: &[Device],
    finished: bool,
    agent_errors: Vec<String>,
) -> Result<Outcome, CliError> {
    let rid = &op.rollout_id;
    let status = api
        .call("GET", &format!("/api/v1/ota/rollouts/{rid}"), None)
        .await?;
    let n = |s: &str| count(&status["devices"][s]);
    let (trail, head) = trail(api, rid, &status).await?;
    let verified = audit::verify_with_head(&trail, &head).is_ok();
    let trail_file = live.work.join("audit.jsonl");
    let lines: String = trail.iter().map(|r| r.to_json() + "\n").collect();
    out::write_atomic(&trail_file, lines.as_bytes(), false)?;
    let served = chunk_bytes(api).await;

    // Measured on the devices: the version each one's active slot holds.
    let (mut on_new, mut on_old, mut down) = (0u64, 0u64, 0u64);
    let mut restored = 0u64;
    let states = device_states(api, rid).await?;
    for d in devices {
        let state = states.get(&d.id).map(String::as_str);
        match fleet::running(d, &live.new, &live.old) {
            Running::New => on_new += 1,
            Running::Old => {
                on_old += 1;
                restored += u64::from(state == Some("failed"));
            }
            Running::Neither(why) => {
                down += 1;
                live.say.line(format!("{}: {why}", d.id));
            }
        }
    }
    let reasons: BTreeMap<String, u64> =
        serde_json::from_value(status["incompatible_reasons"].clone()).unwrap_or_default();
    let eligible = count(&status["eligible"]);
    let unfinished = n("pending")
        + n("scheduled")
        + n("sent")
        + n("in_progress")
        + n("rollback_scheduled")
        + n("rollback_sent");
    let never_sent = n("pending") + n("scheduled") + n("cancelled");
    // Broken: a device that refused its update or never answered, an agent that ended in an
    // error, or a rollout that did not end (a failed probe is the demo working).
    let broken = n("rejected")
        + n("timed_out")
        + n("rollback_failed")
        + agent_errors.len() as u64
        + if finished { 0 } else { unfinished.max(1) };
    for e in &agent_errors {
        live.say.line(format!("agent error: {e}"));
    }
    let waves: Vec<Value> = status["waves"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    json!({"wave": w["index"], "percent": w["percent"], "devices": w["devices"],
                           "succeeded": w["counts"]["succeeded"], "failures": w["counts"]["failures"],
                           "opened": !w["opened_at"].is_null()})
                })
                .collect()
        })
        .unwrap_or_default();
    let by_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, n(s))).collect();
    let ok = down == 0 && broken == 0;
    let summary = json!({
        "seed": live.args.seed,
        "devices": devices.len(),
        "eligible": eligible,
        "incompatible": n("incompatible"),
        "incompatible_by_reason": reasons,
        "succeeded": n("succeeded"),
        "failed": n("failed"),
        "timed_out": n("timed_out"),
        "restored": restored,
        "rolled_back": n("rolled_back"),
        "never_sent": never_sent,
        "by_state": by_state,
        "waves": waves,
        "rollout": status["status"],
        "rolled_back_by_operator": op.rolled_back,
        "halt_reason": status["halt_reason"],
        "fleet_impact": status["fleet_impact"],
        "measured": {"on_new": on_new, "on_previous": on_old, "down": down},
        "broken": broken,
    });

    let mut t = format!(
        "fleet impact: {down} devices down\n\nsummary (seed {}, from the server's API)\n",
        live.args.seed
    );
    let mut rows: Vec<(String, String)> = vec![
        ("devices".into(), devices.len().to_string()),
        ("eligible".into(), eligible.to_string()),
        ("incompatible".into(), n("incompatible").to_string()),
    ];
    for (r, k) in &reasons {
        rows.push((format!("  {r}"), k.to_string()));
    }
    // Devices that took the update and were rolled back since count under "rolled back":
    // "succeeded" is what runs the new version now.
    rows.push((format!("on {NEW} now"), n("succeeded").to_string()));
    rows.push(("failed".into(), (n("failed") + n("timed_out")).to_string()));
    rows.push(("  restored (probe failed)".into(), restored.to_string()));
    rows.push(("rolled back".into(), n("rolled_back").to_string()));
    rows.push(("never sent".into(), never_sent.to_string()));
    for w in &waves {
        if w["opened"] != true {
            continue;
        }
        let k = count(&w["wave"]);
        let name = if k == 0 {
            "canary".to_string()
        } else {
            format!("wave {}", k + 1)
        };
        rows.push((
            format!("  {name} ({}%)", w["percent"].as_f64().unwrap_or(0.0)),
            format!(
                "{} devices: {} took it, {} failed",
                w["devices"], w["succeeded"], w["failures"]
            ),
        ));
    }
    rows.push((
        "rollout".into(),
        format!(
            "{}{}",
            status["status"].as_str().unwrap_or("?"),
            if op.rolled_back { " (rolled back)" } else { "" }
        ),
    ));
    if let Some(r) = op
        .halted
        .clone()
        .or(status["halt_reason"].as_str().map(str::to_string))
    {
        rows.push(("halt rule".into(), r));
    }
    rows.push((
        "fleet impact".into(),
        format!(
            "{} devices down (measured on the devices: {on_new} on {NEW}, {on_old} on {OLD}, {down} on neither)",
            status["fleet_impact"]
        ),
    ));
    rows.push(("chunks served".into(), out::bytes(served)));
    rows.push(("broken devices".into(), broken.to_string()));
    rows.push((
        "audit trail".into(),
        format!(
            "{} records, chain {}, head {head}",
            trail.len(),
            if verified { "verified" } else { "BROKEN" }
        ),
    ));
    for (k, v) in rows {
        t.push_str(&format!("  {k:<26} {v}\n"));
    }
    let wall = live.started.elapsed().as_secs_f64();
    t.push_str(&format!("  {:<26} {:.1} s\n", "wall time", wall));
    if live.args.keep.is_some() {
        t.push_str(&format!(
            "\nkept in {}: try `ota audit verify {} --head {head}`",
            live.work.display(),
            trail_file.display()
        ));
    }
    let json = json!({
        "ok": ok,
        "live": true,
        "summary": summary,
        "rollout_id": rid,
        "audit_head": head.to_string(),
        "audit": {"records": trail.len(), "verified": verified},
        "chunk_bytes_served": served,
        "transcript": live.say.lines,
        "wall_seconds": wall,
    });
    Ok(if ok {
        Outcome::ok(t, json)
    } else {
        Outcome::failed(t, json)
    })
}

/// The whole audit trail of the rollout, page by page, and the head the status gives.
async fn trail(
    api: &Api,
    rid: &str,
    status: &Value,
) -> Result<(Vec<AuditRecord>, AuditHead), CliError> {
    let head: AuditHead = status["audit_head"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| CliError::usage(format!("GET /api/v1/ota/rollouts/{rid}: audit_head: {e}")))?;
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..10_000 {
        // The trail's records are numbered from 0 with no gap: the next page starts after
        // the last one read.
        let after = lines
            .len()
            .checked_sub(1)
            .map_or(String::new(), |seq| format!("&after={seq}"));
        let path = format!("/api/v1/ota/rollouts/{rid}/audit?limit=10000{after}");
        let v = api.call("GET", &path, None).await?;
        let page = v["records"].as_array().map_or(&[][..], Vec::as_slice);
        if page.is_empty() {
            break;
        }
        lines.extend_from_slice(page);
    }
    let records = audit::parse_values(&lines).map_err(|e| {
        CliError::usage(format!(
            "GET /api/v1/ota/rollouts/{rid}/audit: records: {e}"
        ))
    })?;
    Ok((records, head))
}

/// Each device's state in the rollout.
async fn device_states(api: &Api, rid: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut states = BTreeMap::new();
    let mut token: Option<u64> = None;
    for _ in 0..10_000 {
        let page = token.map_or(String::new(), |t| format!("&page_token={t}"));
        let v = api
            .call(
                "GET",
                &format!("/api/v1/ota/rollouts/{rid}/devices?page_size=1000{page}"),
                None,
            )
            .await?;
        for d in v["devices"].as_array().into_iter().flatten() {
            if let (Some(id), Some(s)) = (d["device_id"].as_str(), d["state"].as_str()) {
                states.insert(id.to_string(), s.to_string());
            }
        }
        token = v["next_page_token"].as_u64();
        if token.is_none() {
            break;
        }
    }
    Ok(states)
}

/// The artifact bytes the server served in chunks (its Prometheus counter).
async fn chunk_bytes(api: &Api) -> u64 {
    let Ok(Value::String(text)) = api.call("GET", "/metrics", None).await else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("ota_chunk_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
