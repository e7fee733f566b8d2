//! Devices registered while rollouts run: each joins the rollouts that target it, including
//! one created while it registered.

use ota_core::UnixMs;
use ota_core::rollout::Input;

use super::{input, lookup};
use crate::error::ApiResult;
use crate::state::AppState;

/// With leases, makes sure this replica holds the lease of each of the tenant's running
/// rollouts (loading those another replica created), so a device registered now can join
/// them all; `UNAVAILABLE` when another live replica drives one of them.
pub async fn join_ready(st: &AppState, tenant: &str) -> ApiResult<()> {
    if st.config.lease_ms == 0 {
        return Ok(());
    }
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT rollout_id FROM rollouts WHERE tenant = $1 AND state NOT IN ('completed', \
         'aborted')",
    )
    .bind(tenant.to_string())
    .fetch_all(&st.db)
    .await?;
    for (id,) in ids {
        lookup(st, tenant, &id).await?;
    }
    Ok(())
}

/// A device registered while rollouts run: each of the tenant's rollouts that is not over
/// and does not know it yet takes it if it is in its target (`Input::Join`: placed by its
/// bucket, scheduled when its wave is open). A rollout whose target it is not in refuses the
/// input, and records nothing. Run at every registration, a first or a repeated one: a
/// repeated `PUT` joins what the first could not (its process died after its commit, or a
/// rollout's replica was unavailable), and changes nothing in a rollout that has it.
pub async fn join(st: &AppState, tenant: &str, device: &ota_core::DeviceProfile) -> ApiResult<()> {
    for id in st.engines.ids() {
        join_one(st, tenant, &id, device).await?;
    }
    Ok(())
}

/// [`join`] for one rollout, `id`: the device joins it if the rollout is the tenant's, is not
/// over, does not know the device yet and targets it. An error only when the rollout could not
/// take the input (another replica drives it, or the database failed).
async fn join_one(
    st: &AppState,
    tenant: &str,
    id: &str,
    device: &ota_core::DeviceProfile,
) -> ApiResult<()> {
    let Some(slot) = st.engines.get_for(tenant, id) else {
        return Ok(());
    };
    {
        // Memory a failed commit left (stale) is no guide: the input reloads it first.
        let hosted = slot.hosted.lock().await;
        let r = &hosted.rollout;
        let known = r.device_state(device.device_id.as_str()).is_some();
        if !hosted.stale && (r.state().is_over() || known) {
            return Ok(());
        }
    }
    match input(st, Some(tenant), id, Input::Join(Box::new(device.clone()))).await {
        Err(e)
            if matches!(
                e.code,
                crate::error::Code::Unavailable
                    | crate::error::Code::Internal
                    | crate::error::Code::Aborted
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// How far before a new rollout read its fleet a registration is looked for again: one stamped
/// before the read but committed after it (its request was slow) is caught too.
const CATCH_UP_MS: u64 = 60_000;

/// A device registered while rollout `id` was being made, after its fleet was read, joined no
/// rollout (this one was not listed yet, so the registration's [`join`] missed it): every
/// device registered since shortly before the read joins it now. A failure is logged, not
/// returned (the rollout is created), and the others still join; a device that could not
/// joins at its next registration.
pub(super) async fn catch_up(st: &AppState, tenant: &str, id: &str, fleet_read_at: UnixMs) {
    let since = fleet_read_at.get().saturating_sub(CATCH_UP_MS);
    let devices = match crate::fleet::registered_since(st, tenant, since).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(rollout_id = id, error = %e.message, "devices registered meanwhile join later");
            return;
        }
    };
    for device in devices {
        if let Err(e) = join_one(st, tenant, id, &device).await {
            tracing::warn!(rollout_id = id, device_id = %device.device_id, error = %e.message, "joins at its next registration");
        }
    }
}
