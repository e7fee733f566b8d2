//! Restoring rollouts from the database: the latest snapshot, then every later record's input
//! handled again, which must write exactly the stored record and end at the stored head.

use ota_core::Limits;
use ota_core::audit::Reader;
use ota_core::rollout::{Rollout, Snapshot};

use super::{Hosted, snapshot_span};
use crate::db::u;
use crate::state::{AppState, now};

/// Restores one rollout from its snapshot and the trail after it.
pub async fn load_one(st: &AppState, rollout_id: &str) -> Result<Hosted, String> {
    type Row = (String, String, i64, i64, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT r.tenant, s.snapshot, s.snapshot_seq, r.head_seq, r.head_hash \
         FROM rollouts r JOIN rollout_snapshots s ON s.rollout_id = r.rollout_id \
         WHERE r.rollout_id = $1",
    )
    .bind(rollout_id.to_string())
    .fetch_optional(&st.db)
    .await
    .map_err(|e| e.to_string())?;
    let (tenant, snapshot, snapshot_seq, head_seq, head_hash) =
        row.ok_or_else(|| format!("no rollout {rollout_id}"))?;
    let snap =
        Snapshot::from_json(snapshot.as_bytes(), &Limits::DEFAULT).map_err(|e| e.to_string())?;
    if st.config.lease_ms > 0 {
        // Another replica may have taken packages since this one loaded them.
        let missing = {
            let p = st.packages.read().await;
            let has = |id: &str| p.contains_key(&(tenant.clone(), id.to_string()));
            !has(snap.package_id().as_str())
                || snap
                    .rollback_package_id()
                    .is_some_and(|id| !has(id.as_str()))
        };
        if missing {
            crate::packages::load(st).await.map_err(|e| e.to_string())?;
        }
    }
    let packages = st.packages.read().await;
    let get = |id: &str| {
        packages
            .get(&(tenant.clone(), id.to_string()))
            .cloned()
            .ok_or_else(|| format!("package {id} is not available"))
    };
    let package = get(snap.package_id().as_str())?;
    let rollback = match snap.rollback_package_id() {
        Some(id) => Some(get(id.as_str())?),
        None => None,
    };
    drop(packages);
    let mut r = Rollout::restore(
        snap,
        &package.verified,
        rollback.as_ref().map(|p| &p.verified),
    )
    .map_err(|e| e.to_string())?;
    let trail: Vec<(String,)> = sqlx::query_as(
        "SELECT record FROM audit_records WHERE rollout_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind(rollout_id.to_string())
    .bind(snapshot_seq)
    .fetch_all(&st.db)
    .await
    .map_err(|e| e.to_string())?;
    let mut reader = Reader::after(r.audit_chain(), r.id().clone());
    for (text,) in trail {
        // The reader counts lines from the snapshot: name the record by its number.
        let next = r.audit_chain().next_seq;
        let Some(rec) = reader
            .read(&text)
            .map_err(|e| format!("stored audit record {next}: {e}"))?
        else {
            return Err(format!("stored audit record {next} is blank"));
        };
        r.follow(&rec).map_err(|e| e.to_string())?;
    }
    let head = r.audit_head();
    if head.seq != u(head_seq) || head.hash.to_hex() != head_hash {
        return Err(format!(
            "the trail ends at {head}, the rollout row says {head_seq}:{head_hash}"
        ));
    }
    Ok(Hosted {
        snapshot_span: snapshot_span(st.config.snapshot_every, &r),
        stale: false,
        rollout: r,
        tenant,
        snapshot_seq: u(snapshot_seq),
    })
}

/// Restores every rollout at start.
pub async fn load_all(st: &AppState) -> Result<usize, sqlx::Error> {
    let ids: Vec<(String,)> = sqlx::query_as("SELECT rollout_id FROM rollouts ORDER BY created_at")
        .fetch_all(&st.db)
        .await?;
    let mut n = 0;
    for (id,) in ids {
        match load_one(st, &id).await {
            Ok(h) => {
                let mut t = h.rollout.poll_timeout();
                if st.config.lease_ms > 0 && !h.rollout.state().is_over() {
                    // Whoever takes its lease first drives it.
                    t = Some(now());
                }
                st.engines.insert(id.clone(), h);
                st.engines.set_timeout(&id, t);
                n += 1;
            }
            Err(e) => tracing::error!(rollout_id = %id, error = %e, "rollout not restored"),
        }
    }
    Ok(n)
}
