//! Leases: with several replicas (PostgreSQL and `--lease-ms`), each rollout is driven by the
//! replica that holds its lease; taking, checking, renewing and watching them.

use ota_core::UnixMs;

use super::load::load_one;
use super::{Hosted, slot};
use crate::db::{Tx, i};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};

/// The answer to an input for a rollout another replica drives.
fn not_holder(id: &str) -> ApiError {
    ApiError::new(
        crate::error::Code::Unavailable,
        format!(
            "rollout_id: rollout {id} is driven by another replica until its lease expires; retry"
        ),
    )
}

/// Makes sure this replica holds the rollout's lease before it uses its copy: a lease held
/// with a safe margin is used as is; otherwise the in-memory copy is stale by definition, so
/// the lease is taken (when free or expired) and the rollout reloaded from the database.
pub(super) async fn ensure_lease(st: &AppState, id: &str, g: &mut Hosted) -> ApiResult<()> {
    let lease = st.config.lease_ms;
    if lease == 0 {
        return Ok(());
    }
    let at = now().get();
    if st.engines.held_until(id) > at.saturating_add(lease / 4) {
        return Ok(());
    }
    st.engines.set_held(id, None);
    let until = at.saturating_add(lease);
    let taken = sqlx::query(
        "INSERT INTO rollout_leases (rollout_id, holder, expires_at) VALUES ($1, $2, $3)          ON CONFLICT (rollout_id) DO UPDATE SET holder = excluded.holder,          expires_at = excluded.expires_at          WHERE rollout_leases.holder = excluded.holder OR rollout_leases.expires_at < $4",
    )
    .bind(id.to_string())
    .bind(st.config.replica_id.clone())
    .bind(i(until))
    .bind(i(at))
    .execute(&st.db)
    .await?
    .rows_affected()
        == 1;
    if !taken {
        return Err(not_holder(id));
    }
    // Whatever this copy was, another replica may have driven the rollout since.
    *g = load_one(st, id).await.map_err(|e| {
        ApiError::internal(format!("rollout_id: rollout {id} cannot be restored: {e}"))
    })?;
    st.engines.set_held(id, Some(until));
    st.engines.set_timeout(id, g.rollout.poll_timeout());
    st.timer.notify_one();
    Ok(())
}

/// With leases, the guard of every commit: extends this replica's lease in the same
/// transaction, and fails it when the lease is no longer this replica's. The row stays
/// locked until the commit, so no other replica can take the lease in between.
pub(super) async fn guard_lease(st: &AppState, tx: &mut Tx, id: &str, at: UnixMs) -> ApiResult<()> {
    let lease = st.config.lease_ms;
    if lease == 0 {
        return Ok(());
    }
    let until = at.get().saturating_add(lease);
    let n = sqlx::query(
        "UPDATE rollout_leases SET expires_at = $1 WHERE rollout_id = $2 AND holder = $3          AND expires_at >= $4",
    )
    .bind(i(until))
    .bind(id.to_string())
    .bind(st.config.replica_id.clone())
    .bind(i(at.get()))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n != 1 {
        st.engines.set_held(id, None);
        return Err(not_holder(id));
    }
    Ok(())
}

/// With leases: renews this replica's leases every third of `--lease-ms` (a lease that
/// cannot be renewed is dropped, and the copy reloaded before its next use), and finds the
/// rollouts whose lease has expired (their replica died) so the timer driver takes them over.
pub async fn renew_leases(st: AppState) {
    let lease = st.config.lease_ms;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis((lease / 3).max(10))).await;
        let at = now().get();
        let held: Vec<String> = st
            .engines
            .held
            .lock()
            .expect("held lock")
            .keys()
            .cloned()
            .collect();
        for id in held {
            let until = at.saturating_add(lease);
            let r = sqlx::query(
                "UPDATE rollout_leases SET expires_at = $1 WHERE rollout_id = $2 AND \
                 holder = $3 AND expires_at >= $4",
            )
            .bind(i(until))
            .bind(id.clone())
            .bind(st.config.replica_id.clone())
            .bind(i(at))
            .execute(&st.db)
            .await;
            match r {
                Ok(r) if r.rows_affected() == 1 => {
                    // Only extend what a commit may have extended further meanwhile.
                    let mut m = st.engines.held.lock().expect("held lock");
                    if let Some(t) = m.get_mut(&id) {
                        *t = (*t).max(until);
                    }
                }
                Ok(_) => {
                    tracing::warn!(rollout_id = %id, "lease lost");
                    st.engines.set_held(&id, None);
                }
                Err(e) => tracing::warn!(rollout_id = %id, error = %e, "lease not renewed"),
            }
        }
        let expired: Result<Vec<(String,)>, _> =
            sqlx::query_as("SELECT rollout_id FROM rollout_leases WHERE expires_at < $1")
                .bind(i(at))
                .fetch_all(&st.db)
                .await;
        let mut woke = false;
        for (id,) in expired.unwrap_or_default() {
            if slot(&st, None, &id).await.is_ok() {
                let mut m = st.engines.timeouts.lock().expect("timeouts lock");
                let t = m.entry(id).or_insert(at);
                *t = (*t).min(at);
                woke = true;
            }
        }
        if woke {
            st.timer.notify_one();
        }
    }
}
