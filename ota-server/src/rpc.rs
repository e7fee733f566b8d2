//! The lifecycle of persistent device RPC records after the engine queued them: delivery
//! (`queued` → `sent` when the device polls) and expiry (`queued` or `sent` → `expired` once
//! past `expires_at`; an expired record is never delivered).
//!
//! Deliveries are group-committed: whoever finds no flush running writes every delivery
//! queued so far in one transaction (one statement per tenant), and each poll is answered
//! after that commit. Expiry happens at read (a device's delivery first expires its own
//! records) and in the background, every half TTL (at most every minute).

use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;

use tokio::sync::{Mutex, oneshot};

use crate::db::i;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};

/// A delivery waiting for the next flush, and where its answer goes.
type Queued = (String, String, oneshot::Sender<ApiResult<()>>);

/// The deliveries waiting to be written.
#[derive(Default)]
pub struct Deliveries {
    queue: StdMutex<Vec<Queued>>,
    flush: Mutex<()>,
}

/// Marks a device's queued, unexpired records `sent` (and its records past their expiry
/// `expired`), committed before it returns. The work runs as its own task: a client that
/// hangs up drops its request, never a flush other polls wait for.
pub async fn mark_sent(st: &AppState, tenant: &str, device_id: &str) -> ApiResult<()> {
    let (st, tenant, device_id) = (st.clone(), tenant.to_string(), device_id.to_string());
    tokio::spawn(async move { mark_sent_now(&st, &tenant, &device_id).await })
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("delivery: {e}"))))
}

async fn mark_sent_now(st: &AppState, tenant: &str, device_id: &str) -> ApiResult<()> {
    let d = &st.deliveries;
    let (tx, mut rx) = oneshot::channel();
    d.queue
        .lock()
        .expect("deliveries lock")
        .push((tenant.to_string(), device_id.to_string(), tx));
    let guard = d.flush.lock().await;
    // A flush before ours may have written it already.
    if let Ok(r) = rx.try_recv() {
        return r;
    }
    let batch = std::mem::take(&mut *d.queue.lock().expect("deliveries lock"));
    let result = write(st, &batch).await;
    for (_, _, tx) in batch {
        let _ = tx.send(result.clone());
    }
    drop(guard);
    rx.await
        .unwrap_or_else(|_| Err(ApiError::internal("the delivery was dropped")))
}

async fn write(st: &AppState, batch: &[Queued]) -> ApiResult<()> {
    let mut by_tenant: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (t, d, _) in batch {
        by_tenant.entry(t).or_default().push(d);
    }
    let at = i(now().get());
    let _turn = st.write_turn().await;
    let mut tx = st.db.begin().await?;
    for (tenant, devices) in by_tenant {
        for devices in devices.chunks(200) {
            let list = (0..devices.len())
                .map(|k| format!("${}", k + 3))
                .collect::<Vec<_>>()
                .join(", ");
            for sql in [
                format!(
                    "UPDATE device_rpc SET state = 'expired' WHERE expires_at <= $1 AND \
                     tenant = $2 AND state IN ('queued', 'sent') AND device_id IN ({list})"
                ),
                format!(
                    "UPDATE device_rpc SET state = 'sent', sent_at = $1 WHERE tenant = $2 AND \
                     state = 'queued' AND device_id IN ({list})"
                ),
            ] {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(at)
                    .bind(tenant.to_string());
                for d in devices {
                    q = q.bind(d.to_string());
                }
                q.execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Marks every queued or sent record past its expiry `expired`; returns how many.
pub async fn expire(st: &AppState) -> ApiResult<u64> {
    Ok(sqlx::query(
        "UPDATE device_rpc SET state = 'expired' WHERE state IN ('queued', 'sent') AND \
         expires_at <= $1",
    )
    .bind(i(now().get()))
    .execute(&st.db)
    .await?
    .rows_affected())
}

/// The background expiry, every half TTL (between 50 ms and a minute).
pub async fn expire_forever(st: AppState) {
    let every = (st.config.rpc_ttl_ms / 2).clamp(50, 60_000);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(every)).await;
        match expire(&st).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "device rpc records expired"),
            Err(e) => tracing::warn!(error = %e, "device rpc expiry failed"),
        }
    }
}
