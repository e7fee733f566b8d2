//! What the control plane's persistent RPC records tell a device about the update it is
//! downloading: [`RpcRecord`] (as `GET /api/v1/devices/{id}/rpc?rollout_id=` lists them) and
//! [`withdrawn`], which reads them.
//!
//! The rollout engine sends a device `ota_start` (or `ota_rollback`) with `{rollout_id,
//! package_id, attempt}`, and `ota_cancel` with `{rollout_id, forced}` when it stops the
//! device's command (a pause or abort with a cancel policy, a rollback, the device leaving
//! the target). The latest record of the rollout that is still in force says what the
//! control plane wants now: when it is a cancel, or a command for another package, the
//! update the device is downloading was withdrawn, and the daemon feeds the agent
//! `Input::Cancel`. A record the server cancelled before delivering it, or let expire, is in
//! force no more.

use ota_core::PackageId;
use serde::Deserialize;
use serde_json::Value;

/// One persistent RPC record of the device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcRecord {
    /// The record's id (they sort in the engine's order within a rollout).
    pub id: String,
    /// The rollout that sent it.
    pub rollout_id: String,
    /// `ota_start`, `ota_rollback` or `ota_cancel`.
    pub method: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Value,
    /// `queued`, `sent`, `acked`, `cancelled` or `expired`.
    pub state: String,
}

impl RpcRecord {
    /// Whether the record still stands: not cancelled before delivery, not expired.
    fn in_force(&self) -> bool {
        !matches!(self.state.as_str(), "cancelled" | "expired")
    }
}

/// Why the update of `package_id` the device is downloading was withdrawn, if it was: the
/// latest record in force of its rollout (`records` oldest first, as the server lists them) is
/// an `ota_cancel`, or a command for another package.
pub fn withdrawn(records: &[RpcRecord], package_id: &PackageId) -> Option<String> {
    let latest = records.iter().rev().find(|r| {
        r.in_force()
            && matches!(
                r.method.as_str(),
                "ota_start" | "ota_rollback" | "ota_cancel"
            )
    })?;
    if latest.method == "ota_cancel" {
        return Some(format!(
            "rollout {} cancelled the update ({})",
            latest.rollout_id, latest.id
        ));
    }
    let named = latest.params["package_id"].as_str().unwrap_or_default();
    (named != package_id.as_str()).then(|| {
        format!(
            "rollout {} sent {} {named} instead ({})",
            latest.rollout_id, latest.method, latest.id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(id: &str, method: &str, package: &str, state: &str) -> RpcRecord {
        RpcRecord {
            id: id.into(),
            rollout_id: "rol_1".into(),
            method: method.into(),
            params: json!({"rollout_id": "rol_1", "package_id": package, "attempt": 1}),
            state: state.into(),
        }
    }

    fn pkg(c: char) -> PackageId {
        format!("pkg_{}", c.to_string().repeat(16)).parse().unwrap()
    }

    #[test]
    fn the_latest_record_in_force_decides() {
        let a = pkg('a');
        let b = pkg('b');
        let (pa, pb) = (a.to_string(), b.to_string());
        let start = rec("rpc_1", "ota_start", &pa, "sent");
        assert_eq!(withdrawn(std::slice::from_ref(&start), &a), None);
        assert_eq!(withdrawn(&[], &a), None);
        // Cancelled: the update stops.
        let cancel = rec("rpc_2", "ota_cancel", "", "sent");
        assert!(withdrawn(&[start.clone(), cancel.clone()], &a).is_some());
        // Cancelled, then sent again (a resume): the update stands.
        let again = rec("rpc_3", "ota_start", &pa, "queued");
        assert_eq!(withdrawn(&[start.clone(), cancel.clone(), again], &a), None);
        // A rollback command for another package replaces it.
        let rollback = rec("rpc_3", "ota_rollback", &pb, "sent");
        let why = withdrawn(&[start.clone(), rollback], &a).unwrap();
        assert!(why.contains(&pb), "{why}");
        // A cancel that expired undelivered, and a start cancelled before delivery, are
        // in force no more.
        let expired = rec("rpc_2", "ota_cancel", "", "expired");
        assert_eq!(withdrawn(&[start.clone(), expired], &a), None);
        let dropped = rec("rpc_3", "ota_start", &pb, "cancelled");
        assert_eq!(withdrawn(&[start, dropped], &a), None);
    }
}
