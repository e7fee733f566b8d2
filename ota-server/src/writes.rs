//! What one commit of a rollout writes besides the rollout row, gathered while its outputs
//! are drained and then written with a few multi-row statements, so a batch of N reports
//! costs a handful of round trips to the database instead of several per report.
//!
//! Each table keeps the order the engine produced its rows in:
//! - audit records and outbox rows are only ever inserted: one multi-row `INSERT` each;
//! - device RPC operations (insert, cancel the queued ones, acknowledge) keep each device's
//!   order: an operation joins the earliest run of its kind after the device's previous
//!   operation, and the runs are written in order, one statement each;
//! - device-level assignments are reduced to their net effect per device (the batch is one
//!   rollout's, so "clear this rollout's assignment" after "assign" removes it);
//! - installed versions are applied in order to the stored device documents, read and
//!   written once per device.

use std::collections::HashMap;

use serde_json::Value;

use crate::db::{Tx, i};
use crate::error::{ApiError, ApiResult};

/// Rows per multi-row statement (well under SQLite's and PostgreSQL's parameter limits).
pub(crate) const ROWS: usize = 100;

/// A device RPC operation.
#[derive(Debug, Clone)]
enum RpcOp {
    /// A new record, queued.
    Insert {
        rpc_id: String,
        method: &'static str,
        params: String,
    },
    /// The device's queued records of this rollout are cancelled.
    Cancel,
    /// The device's queued or sent update and rollback records of this rollout are acked.
    Ack,
}

impl RpcOp {
    fn kind(&self) -> u8 {
        match self {
            RpcOp::Insert { .. } => 0,
            RpcOp::Cancel => 1,
            RpcOp::Ack => 2,
        }
    }
}

/// The net effect of a batch on one device's assignment row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    /// The device is assigned this package (by this rollout): any previous row is replaced.
    Set {
        /// The package.
        package_id: String,
        /// `update` or `rollback`.
        kind: &'static str,
        /// The attempt of the rollout's command (1 is the first).
        attempt: u32,
    },
    /// The device has no assignment any more.
    Removed,
    /// The device's assignment is removed if it is this rollout's.
    RemovedIfMine,
}

/// The rows of one commit, in the engine's order.
#[derive(Default)]
pub struct Writes {
    audit: Vec<(u64, u64, String)>,
    outbox: Vec<(String, u64, u64, String, String)>,
    /// Runs of one kind of RPC operation: (kind, [(device, op)]).
    rpc: Vec<(u8, Vec<(String, RpcOp)>)>,
    /// The run index of each device's latest RPC operation.
    rpc_last: HashMap<String, usize>,
    /// The net assignment change of each device touched.
    pub assign: HashMap<String, Assign>,
    /// Installed versions, in order: (device, package name, version).
    installed: Vec<(String, String, String)>,
}

impl Writes {
    /// An audit record.
    pub fn audit(&mut self, seq: u64, at: u64, record: String) {
        self.audit.push((seq, at, record));
    }

    /// An outbox row.
    pub fn outbox(
        &mut self,
        event_id: String,
        seq: u64,
        idx: u64,
        subject: String,
        payload: &Value,
    ) {
        self.outbox
            .push((event_id, seq, idx, subject, payload.to_string()));
    }

    fn rpc_op(&mut self, device: &str, op: RpcOp) {
        let kind = op.kind();
        let from = self.rpc_last.get(device).copied();
        let j = match from {
            // Same kind as the device's latest operation: that run (same-kind operations of
            // one device commute).
            Some(f) if self.rpc[f].0 == kind => f,
            _ => {
                let start = from.map_or(0, |f| f + 1);
                match (start..self.rpc.len()).find(|&j| self.rpc[j].0 == kind) {
                    Some(j) => j,
                    None => {
                        self.rpc.push((kind, Vec::new()));
                        self.rpc.len() - 1
                    }
                }
            }
        };
        self.rpc[j].1.push((device.to_string(), op));
        self.rpc_last.insert(device.to_string(), j);
    }

    /// A new queued RPC record for a device.
    pub fn rpc_insert(
        &mut self,
        device: &str,
        rpc_id: String,
        method: &'static str,
        params: &Value,
    ) {
        self.rpc_op(
            device,
            RpcOp::Insert {
                rpc_id,
                method,
                params: params.to_string(),
            },
        );
    }

    /// The device's queued records of the rollout are cancelled.
    pub fn rpc_cancel(&mut self, device: &str) {
        self.rpc_op(device, RpcOp::Cancel);
    }

    /// The device's update or rollback record of the rollout is acknowledged.
    pub fn rpc_ack(&mut self, device: &str) {
        self.rpc_op(device, RpcOp::Ack);
    }

    /// The device is assigned a package by this rollout, on the command's `attempt`.
    pub fn assign(&mut self, device: &str, package_id: String, kind: &'static str, attempt: u32) {
        self.assign.insert(
            device.to_string(),
            Assign::Set {
                package_id,
                kind,
                attempt,
            },
        );
    }

    /// The device's assignment by this rollout ends.
    pub fn unassign(&mut self, device: &str) {
        let e = self
            .assign
            .entry(device.to_string())
            .or_insert(Assign::RemovedIfMine);
        if matches!(e, Assign::Set { .. }) {
            *e = Assign::Removed;
        }
    }

    /// The device now has `version` of package `name`.
    pub fn installed(&mut self, device: &str, name: String, version: String) {
        self.installed.push((device.to_string(), name, version));
    }

    /// Writes everything into the transaction.
    ///
    /// New RPC records expire `rpc_ttl_ms` after `at`.
    pub async fn flush(
        &self,
        tx: &mut Tx,
        tenant: &str,
        rid: &str,
        at: u64,
        rpc_ttl_ms: u64,
    ) -> ApiResult<()> {
        for rows in self.audit.chunks(ROWS) {
            let sql = values(
                "INSERT INTO audit_records (rollout_id, seq, tenant, at, record) VALUES ",
                rows.len(),
                (2, 3),
                |b| format!("($1, ${b}, $2, ${}, ${})", b + 1, b + 2),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rid.to_string())
                .bind(tenant.to_string());
            for (seq, at, rec) in rows {
                q = q.bind(i(*seq)).bind(i(*at)).bind(rec.clone());
            }
            q.execute(&mut **tx).await?;
        }
        for (kind, ops) in &self.rpc {
            for ops in ops.chunks(ROWS) {
                rpc_run(tx, *kind, ops, tenant, rid, at, rpc_ttl_ms).await?;
            }
        }
        self.flush_assignments(tx, tenant, rid, at).await?;
        self.flush_installed(tx, tenant).await?;
        for rows in self.outbox.chunks(ROWS) {
            let sql = values(
                "INSERT INTO outbox (event_id, tenant, rollout_id, seq, idx, subject, payload, \
                 created_at) VALUES ",
                rows.len(),
                (3, 5),
                |b| {
                    format!(
                        "(${b}, $1, $2, ${}, ${}, ${}, ${}, $3)",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4
                    )
                },
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .bind(rid.to_string())
                .bind(i(at));
            for (id, seq, idx, subject, payload) in rows {
                q = q
                    .bind(id.clone())
                    .bind(i(*seq))
                    .bind(i(*idx))
                    .bind(subject.clone())
                    .bind(payload.clone());
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn flush_assignments(
        &self,
        tx: &mut Tx,
        tenant: &str,
        rid: &str,
        at: u64,
    ) -> ApiResult<()> {
        let mut all: Vec<&String> = Vec::new();
        let mut mine: Vec<&String> = Vec::new();
        let mut set: Vec<(&String, &String, &'static str, u32)> = Vec::new();
        for (d, a) in &self.assign {
            match a {
                Assign::Set {
                    package_id,
                    kind,
                    attempt,
                } => {
                    all.push(d);
                    set.push((d, package_id, kind, *attempt));
                }
                Assign::Removed => all.push(d),
                Assign::RemovedIfMine => mine.push(d),
            }
        }
        for devices in all.chunks(ROWS) {
            let sql = format!(
                "DELETE FROM assignments WHERE tenant = $1 AND device_id IN ({})",
                params(2, devices.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
            for d in devices {
                q = q.bind((*d).clone());
            }
            q.execute(&mut **tx).await?;
        }
        for devices in mine.chunks(ROWS) {
            let sql = format!(
                "DELETE FROM assignments WHERE tenant = $1 AND rollout_id = $2 AND device_id IN ({})",
                params(3, devices.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .bind(rid.to_string());
            for d in devices {
                q = q.bind((*d).clone());
            }
            q.execute(&mut **tx).await?;
        }
        for rows in set.chunks(ROWS) {
            let sql = values(
                "INSERT INTO assignments (tenant, device_id, package_id, rollout_id, kind, \
                 attempt, updated_at) VALUES ",
                rows.len(),
                (3, 4),
                |b| format!("($1, ${b}, ${}, $2, ${}, ${}, $3)", b + 1, b + 2, b + 3),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .bind(rid.to_string())
                .bind(i(at));
            for (d, p, kind, attempt) in rows {
                q = q
                    .bind((*d).clone())
                    .bind((*p).clone())
                    .bind(kind.to_string())
                    .bind(i64::from(*attempt));
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn flush_installed(&self, tx: &mut Tx, tenant: &str) -> ApiResult<()> {
        if self.installed.is_empty() {
            return Ok(());
        }
        // Sorted: two commits lock the rows they share in the same order, so neither waits on
        // the other's lock while holding one it needs.
        let mut order: Vec<&String> = self.installed.iter().map(|(d, _, _)| d).collect();
        order.sort_unstable();
        order.dedup();
        let mut docs: HashMap<String, ota_core::DeviceProfile> = HashMap::new();
        for devices in order.chunks(ROWS) {
            // The rows are locked before they are read (PostgreSQL's READ COMMITTED would
            // otherwise let an admin's `PUT /devices` committed in between be overwritten
            // below with the document read before it); an update that changes nothing is the
            // one way to lock rows that both databases take.
            let sql = format!(
                "UPDATE devices SET updated_at = updated_at WHERE tenant = $1 AND device_id IN ({})",
                params(2, devices.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
            for d in devices {
                q = q.bind((*d).clone());
            }
            q.execute(&mut **tx).await?;
            let sql = format!(
                "SELECT device_id, profile FROM devices WHERE tenant = $1 AND device_id IN ({})",
                params(2, devices.len())
            );
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string());
            for d in devices {
                q = q.bind((*d).clone());
            }
            for (d, doc) in q.fetch_all(&mut **tx).await? {
                let p = serde_json::from_str(&doc)
                    .map_err(|e| ApiError::internal(format!("stored device {d}: {e}")))?;
                docs.insert(d, p);
            }
        }
        for (d, name, version) in &self.installed {
            if let Some(p) = docs.get_mut(d) {
                let name = name
                    .parse()
                    .map_err(|e| ApiError::internal(format!("package name {name}: {e}")))?;
                let version = version
                    .parse()
                    .map_err(|e| ApiError::internal(format!("package version {version}: {e}")))?;
                p.installed.insert(name, version);
            }
        }
        let docs: Vec<(String, String)> = docs
            .into_iter()
            .map(|(d, p)| (d, serde_json::to_string(&p).unwrap_or_default()))
            .collect();
        for rows in docs.chunks(ROWS) {
            let mut sql = String::from("UPDATE devices SET profile = CASE device_id");
            for k in 0..rows.len() {
                let b = 2 + 2 * k;
                sql.push_str(&format!(" WHEN ${b} THEN ${}", b + 1));
            }
            let ids: Vec<String> = (0..rows.len()).map(|k| format!("${}", 2 + 2 * k)).collect();
            sql.push_str(&format!(
                " END WHERE tenant = $1 AND device_id IN ({})",
                ids.join(", ")
            ));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
            for (d, doc) in rows {
                q = q.bind(d.clone()).bind(doc.clone());
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// A multi-row `INSERT`: `head` (up to `VALUES `), then `rows` tuples separated by commas,
/// each written by `row` from the number of its first parameter. `(fixed, per_row)`: the
/// statement's own parameters come first (`$1` to `$fixed`), then each row's `per_row`.
fn values(
    head: &str,
    rows: usize,
    (fixed, per_row): (usize, usize),
    row: impl Fn(usize) -> String,
) -> String {
    let tuples: Vec<String> = (0..rows).map(|k| row(fixed + 1 + per_row * k)).collect();
    format!("{head}{}", tuples.join(", "))
}

/// `$from, $from+1, ...` (`n` of them).
pub(crate) fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|k| format!("${k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn rpc_run(
    tx: &mut Tx,
    kind: u8,
    ops: &[(String, RpcOp)],
    tenant: &str,
    rid: &str,
    at: u64,
    rpc_ttl_ms: u64,
) -> ApiResult<()> {
    let devices = |from: usize| params(from, ops.len());
    let q = match kind {
        0 => {
            let sql = values(
                "INSERT INTO device_rpc (rpc_id, tenant, device_id, rollout_id, method, params, \
                 state, created_at, expires_at) VALUES ",
                ops.len(),
                (4, 4),
                |b| {
                    format!(
                        "(${b}, $1, ${}, $2, ${}, ${}, 'queued', $3, $4)",
                        b + 1,
                        b + 2,
                        b + 3
                    )
                },
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .bind(rid.to_string())
                .bind(i(at))
                .bind(i(at.saturating_add(rpc_ttl_ms)));
            for (d, op) in ops {
                if let RpcOp::Insert {
                    rpc_id,
                    method,
                    params,
                } = op
                {
                    q = q
                        .bind(rpc_id.clone())
                        .bind(d.clone())
                        .bind(method.to_string())
                        .bind(params.clone());
                }
            }
            q
        }
        1 => {
            let sql = format!(
                "UPDATE device_rpc SET state = 'cancelled' WHERE tenant = $1 AND rollout_id = $2 \
                 AND state = 'queued' AND device_id IN ({})",
                devices(3)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.to_string())
                .bind(rid.to_string());
            for (d, _) in ops {
                q = q.bind(d.clone());
            }
            q
        }
        _ => {
            let sql = format!(
                "UPDATE device_rpc SET state = 'acked', acked_at = $1 WHERE tenant = $2 AND \
                 rollout_id = $3 AND state IN ('queued', 'sent') AND method IN ('ota_start', \
                 'ota_rollback') AND device_id IN ({})",
                devices(4)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(i(at))
                .bind(tenant.to_string())
                .bind(rid.to_string());
            for (d, _) in ops {
                q = q.bind(d.clone());
            }
            q
        }
    };
    q.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(w: &Writes) -> Vec<(u8, Vec<&str>)> {
        w.rpc
            .iter()
            .map(|(k, ops)| (*k, ops.iter().map(|(d, _)| d.as_str()).collect()))
            .collect()
    }

    #[test]
    fn rpc_operations_merge_across_devices_and_keep_each_devices_order() {
        let mut w = Writes::default();
        let p = serde_json::json!({});
        // An abort of two devices: cancel then a cancel record each.
        w.rpc_cancel("d1");
        w.rpc_insert("d1", "r1".into(), "ota_cancel", &p);
        w.rpc_cancel("d2");
        w.rpc_insert("d2", "r2".into(), "ota_cancel", &p);
        // d1 acks after its insert; d3 acks with nothing before it.
        w.rpc_ack("d1");
        w.rpc_ack("d3");
        // d1 gets a new record after its ack: a run after the ack's.
        w.rpc_insert("d1", "r3".into(), "ota_start", &p);
        assert_eq!(
            runs(&w),
            vec![
                (1, vec!["d1", "d2"]),
                (0, vec!["d1", "d2"]),
                (2, vec!["d1", "d3"]),
                (0, vec!["d1"]),
            ]
        );
    }

    #[test]
    fn an_assignment_reduces_to_its_net_effect() {
        let mut w = Writes::default();
        w.assign("d1", "pkg_a".into(), "update", 1);
        w.unassign("d1");
        w.unassign("d2");
        w.unassign("d3");
        w.assign("d3", "pkg_b".into(), "rollback", 1);
        assert_eq!(w.assign["d1"], Assign::Removed);
        assert_eq!(w.assign["d2"], Assign::RemovedIfMine);
        assert_eq!(
            w.assign["d3"],
            Assign::Set {
                package_id: "pkg_b".into(),
                kind: "rollback",
                attempt: 1
            }
        );
    }
}
