//! Device-level assignments: the package each device is to install, the rollout that
//! assigned it and the attempt of that rollout's command. Only the engine writes them (in the transaction of the input that decided
//! them), so a single replica (SQLite, or PostgreSQL without leases) keeps all of them in
//! memory, loaded at start and updated after each commit, and answers a device's poll, chunk
//! or report without a query. With several replicas another replica may have changed them,
//! so every lookup reads the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ApiResult;
use crate::state::AppState;
use crate::writes::{Assign, ROWS, params};

/// A device's assignment: (package id, rollout id, attempt).
type Entry = (Arc<str>, Arc<str>, u32);

/// The assignments in memory (authoritative on a single replica).
#[derive(Default)]
pub struct Assignments {
    /// Whether the map holds every assignment (a single replica).
    authoritative: bool,
    /// By tenant, then device.
    map: Mutex<HashMap<String, HashMap<String, Entry>>>,
    /// Held over a commit and the update of the map after it ([`Assignments::in_order`]).
    order: tokio::sync::Mutex<()>,
}

impl Assignments {
    /// Loads every assignment when this server is the only replica.
    pub async fn load(db: &sqlx::AnyPool, single_replica: bool) -> Result<Self, sqlx::Error> {
        let mut map: HashMap<String, HashMap<String, Entry>> = HashMap::new();
        if single_replica {
            let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                "SELECT tenant, device_id, package_id, rollout_id, attempt FROM assignments",
            )
            .fetch_all(db)
            .await?;
            for (t, d, p, r, a) in rows {
                map.entry(t)
                    .or_default()
                    .insert(d, (p.into(), r.into(), attempt(a)));
            }
        }
        Ok(Assignments {
            authoritative: single_replica,
            map: Mutex::new(map),
            order: tokio::sync::Mutex::new(()),
        })
    }

    /// The turn of a commit that makes `changes` to the map: hold it over the commit and the
    /// [`Assignments::apply`] after it, so the map takes commits in the order the database did
    /// (two rollouts' commits touching one device, the second waiting for the first's row,
    /// could otherwise be applied the other way round). A transaction takes it only to
    /// commit, never while it waits for a row, so it cannot deadlock. `None` (no turn to wait
    /// for) when the commit changes no assignment, or the map is not kept (replicas).
    pub async fn in_order(
        &self,
        changes: &HashMap<String, Assign>,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !self.authoritative || changes.is_empty() {
            return None;
        }
        Some(self.order.lock().await)
    }

    /// Applies a committed batch's net changes for rollout `rid`.
    pub fn apply(&self, tenant: &str, rid: &str, changes: &HashMap<String, Assign>) {
        if !self.authoritative || changes.is_empty() {
            return;
        }
        let mut map = self.map.lock().expect("assignments lock");
        let devices = map.entry(tenant.to_string()).or_default();
        let rid: Arc<str> = rid.into();
        let mut package: Option<Arc<str>> = None;
        for (d, a) in changes {
            match a {
                Assign::Set {
                    package_id,
                    attempt,
                    ..
                } => {
                    // One rollout assigns one or two packages: share their text.
                    let p = match &package {
                        Some(p) if **p == **package_id => p.clone(),
                        _ => {
                            let p: Arc<str> = package_id.as_str().into();
                            package = Some(p.clone());
                            p
                        }
                    };
                    devices.insert(d.clone(), (p, rid.clone(), *attempt));
                }
                Assign::Removed => {
                    devices.remove(d);
                }
                Assign::RemovedIfMine => {
                    if devices.get(d).is_some_and(|(_, r, _)| *r == rid) {
                        devices.remove(d);
                    }
                }
            }
        }
    }

    /// Reloads, from the database, the rows of the devices a commit whose outcome is unknown
    /// touched (`changes`, the batch's): only they may have changed. The rest of the map is
    /// left alone: reloaded whole, it could lose a change another rollout committed and
    /// applied meanwhile.
    pub async fn reload(
        &self,
        db: &sqlx::AnyPool,
        tenant: &str,
        changes: &HashMap<String, Assign>,
    ) -> Result<(), sqlx::Error> {
        if !self.authoritative || changes.is_empty() {
            return Ok(());
        }
        // No commit comes between the reading and the writing of the map.
        let _order = self.in_order(changes).await;
        let devices: Vec<&String> = changes.keys().collect();
        let mut stored = HashMap::new();
        for some in devices.chunks(ROWS) {
            let sql = format!(
                "SELECT device_id, package_id, rollout_id, attempt FROM assignments \
                 WHERE tenant = $1 AND device_id IN ({})",
                params(2, some.len())
            );
            let mut q =
                sqlx::query_as::<_, (String, String, String, i64)>(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.to_string());
            for d in some {
                q = q.bind((*d).clone());
            }
            for (d, p, r, a) in q.fetch_all(db).await? {
                stored.insert(d, (p.into(), r.into(), attempt(a)));
            }
        }
        let mut map = self.map.lock().expect("assignments lock");
        let of_tenant = map.entry(tenant.to_string()).or_default();
        for d in devices {
            match stored.remove(d) {
                Some(e) => of_tenant.insert(d.clone(), e),
                None => of_tenant.remove(d),
            };
        }
        Ok(())
    }
}

/// A stored attempt (the column counts from 1).
fn attempt(a: i64) -> u32 {
    u32::try_from(a).unwrap_or(u32::MAX).max(1)
}

/// A device's device-level assignment: (package id, rollout id, attempt).
pub async fn get(
    st: &AppState,
    tenant: &str,
    device_id: &str,
) -> ApiResult<Option<(String, String, u32)>> {
    let a = &st.assignments;
    if a.authoritative {
        let map = a.map.lock().expect("assignments lock");
        return Ok(map
            .get(tenant)
            .and_then(|m| m.get(device_id))
            .map(|(p, r, n)| (p.to_string(), r.to_string(), *n)));
    }
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT package_id, rollout_id, attempt FROM assignments WHERE tenant = $1 AND \
         device_id = $2",
    )
    .bind(tenant.to_string())
    .bind(device_id.to_string())
    .fetch_optional(&st.db)
    .await?;
    Ok(row.map(|(p, r, n)| (p, r, attempt(n))))
}
