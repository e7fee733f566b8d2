//! The host of the rollout engine: one [`Rollout`] per rollout in memory, driven by the HTTP
//! handlers and the timer driver, each input committed with everything it produced in ONE
//! transaction before the answer.
//!
//! The drive loop of the library, as this host carries it out:
//!
//! 1. lock the rollout; `handle(input, now)` — a refused input changes nothing and is answered
//!    with its error;
//! 2. drain `poll()` into one transaction, in order: each `Audit` record is appended to
//!    `audit_records` (the write-ahead log) and its typed effects update the device rows (a
//!    device that took the update gets its new version); each `Command` becomes a persistent
//!    device RPC record (and the device-level assignment it implies); each `Event` an outbox
//!    row. The rollout row gets the new state, audit head and `poll_timeout`, and every
//!    `--snapshot-every` records a new snapshot;
//! 3. commit, then publish the events to the live streams and re-arm the timer driver. When
//!    the commit fails the in-memory rollout is restored from the database, so memory never
//!    runs ahead of what was acknowledged.
//!
//! On start each rollout is restored from its latest snapshot plus the trail after it: every
//! later record's input is handled again at its instant and must write exactly the stored
//! record, and the trail must end at the stored head.
//!
//! Replicas (PostgreSQL with `--lease-ms`; SQLite is always one replica): each rollout is
//! driven by the replica holding its row in `rollout_leases` (holder, expiry). A replica uses
//! its in-memory copy only while it holds the lease with a margin; otherwise the copy is
//! stale by definition, so before anything is applied (or read) the lease is taken — when it
//! is free or expired — and the rollout reloaded from its snapshot and trail; a lease another
//! live replica holds is answered with a retryable `UNAVAILABLE`. The holder renews its
//! leases every third of the lease, and every commit checks and extends the lease in its own
//! transaction (the row stays locked until the commit), so a replica that lost its lease can
//! never append; the `(rollout_id, seq)` primary key of the trail is the last guard. Each
//! replica also watches for expired leases, and its timer driver takes those rollouts over.
//!
//! Here: the rollouts in memory, their lookup and creation, and the entry of every input. The
//! parts: `commit` (group commit: a step's outputs into one transaction), `load` (restoring
//! from snapshot and trail), `leases` (replicas) and `join` (devices registered while
//! rollouts run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use ota_core::plan::RolloutSpec;
use ota_core::rollout::{Create, Input, Output, Rollout};
use ota_core::{Name, UnixMs};
use tokio::sync::{Mutex, oneshot};

use crate::db::i;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};
use crate::writes::Writes;

mod commit;
mod join;
mod leases;
mod load;

use commit::{Step, after_commit, attempts, commit_batch, persist};
use join::catch_up;
pub use join::{join, join_ready};
use leases::ensure_lease;
pub use leases::renew_leases;
pub use load::{load_all, load_one};

/// A rollout in memory.
pub struct Hosted {
    /// The engine.
    pub rollout: Rollout,
    /// Its tenant.
    pub tenant: String,
    /// The audit record the stored snapshot includes.
    pub snapshot_seq: u64,
    /// How many records after it the next snapshot is taken (see [`snapshot_span`]).
    pub snapshot_span: u64,
    /// Memory may be ahead of the database: a commit failed, and so did the reload after it.
    /// Nothing is applied to it or answered from it until a reload succeeds ([`fresh`]).
    pub stale: bool,
}

/// How many audit records a rollout's snapshot waits for: `--snapshot-every`, or a quarter
/// of the rollout's devices when that is more. A snapshot's size grows with the fleet (100k
/// devices make megabytes, rewritten whole), so its cost per record stays bounded; a
/// restore still replays at most that many records.
pub fn snapshot_span(every: u64, r: &Rollout) -> u64 {
    every.max(r.devices().count() as u64 / 4)
}

/// A loaded rollout: its tenant and the rollout.
type Entry = (String, Arc<Slot>);

/// An input waiting for the next commit, and where its answer goes.
type Queued = (Input, oneshot::Sender<ApiResult<Applied>>);

/// A rollout and the inputs waiting for it. Whoever holds the lock takes every input queued
/// so far and commits them in one transaction (group commit); each is answered only after
/// that commit.
pub struct Slot {
    /// The rollout.
    pub hosted: Arc<Mutex<Hosted>>,
    queue: StdMutex<Vec<Queued>>,
}

impl Slot {
    /// How many inputs wait for the next commit (the next holder of the lock takes them all,
    /// and hands the engine the reports among them as batches).
    pub fn queued(&self) -> usize {
        self.queue.lock().expect("queue lock").len()
    }
}

/// What an input did, once committed: read under the lock at its commit, so the answer says
/// what the commit left (an answer read later could meet a reload, or another input's change).
#[derive(Debug, Clone)]
pub struct Applied {
    /// For a report, the device's state after the commit.
    pub device_state: Option<ota_core::rollout::DeviceState>,
    /// The rollout's state after the commit.
    pub state: ota_core::rollout::RolloutState,
    /// Why it halted, if it did.
    pub halt_reason: Option<String>,
    /// The trail's head after the commit (of the inputs committed with this one too).
    pub audit_head: String,
}

/// The rollouts being driven, and their timeouts.
#[derive(Default)]
pub struct Engines {
    /// Each rollout with its tenant (kept outside the lock, so a tenant check never waits).
    map: StdMutex<HashMap<String, Entry>>,
    timeouts: StdMutex<HashMap<String, u64>>,
    /// The leases this replica holds, each until when (only with `--lease-ms`).
    held: StdMutex<HashMap<String, u64>>,
}

impl Engines {
    /// A rollout, if it is loaded.
    pub fn get(&self, id: &str) -> Option<Arc<Slot>> {
        self.map
            .lock()
            .expect("engines lock")
            .get(id)
            .map(|(_, h)| h.clone())
    }

    /// A rollout of this tenant, if it is loaded.
    pub fn get_for(&self, tenant: &str, id: &str) -> Option<Arc<Slot>> {
        self.map
            .lock()
            .expect("engines lock")
            .get(id)
            .filter(|(t, _)| t == tenant)
            .map(|(_, h)| h.clone())
    }

    fn insert(&self, id: String, h: Hosted) -> Arc<Slot> {
        let tenant = h.tenant.clone();
        let h = Arc::new(Slot {
            hosted: Arc::new(Mutex::new(h)),
            queue: StdMutex::new(Vec::new()),
        });
        self.map
            .lock()
            .expect("engines lock")
            .insert(id, (tenant, h.clone()));
        h
    }

    fn set_timeout(&self, id: &str, t: Option<UnixMs>) {
        let mut m = self.timeouts.lock().expect("timeouts lock");
        match t {
            Some(t) => m.insert(id.to_string(), t.get()),
            None => m.remove(id),
        };
    }

    /// Until when this replica holds the rollout's lease (0: it does not).
    fn held_until(&self, id: &str) -> u64 {
        self.held
            .lock()
            .expect("held lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    fn set_held(&self, id: &str, until: Option<u64>) {
        let mut m = self.held.lock().expect("held lock");
        match until {
            Some(t) => m.insert(id.to_string(), t),
            None => m.remove(id),
        };
    }

    /// The earliest timeout.
    pub fn next_timeout(&self) -> Option<u64> {
        self.timeouts
            .lock()
            .expect("timeouts lock")
            .values()
            .min()
            .copied()
    }

    /// Rollouts whose timeout has come.
    pub fn due(&self, now: UnixMs) -> Vec<String> {
        self.timeouts
            .lock()
            .expect("timeouts lock")
            .iter()
            .filter(|(_, t)| **t <= now.get())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The ids of a tenant's loaded rollouts.
    pub fn ids(&self) -> Vec<String> {
        self.map
            .lock()
            .expect("engines lock")
            .keys()
            .cloned()
            .collect()
    }
}

fn engine_error(e: ota_core::rollout::RolloutError) -> ApiError {
    ApiError::from_status(e.status(), "", e)
}

/// A tenant's rollout, or `NOT_FOUND` (another tenant's rollout is not found either).
///
/// With leases (several replicas), the rollout is this replica's to serve only while it holds
/// its lease: a rollout another replica created is loaded from the database, a lease that is
/// free (or expired) is taken and the rollout reloaded from its snapshot and trail, and a
/// lease another live replica holds is answered with a retryable `UNAVAILABLE`.
///
/// The rollout is given locked, once it is known to be this replica's and stored ([`fresh`]):
/// a reader answers from what it checked, not from what a failed commit may leave after it.
pub async fn lookup(
    st: &AppState,
    tenant: &str,
    id: &str,
) -> ApiResult<tokio::sync::OwnedMutexGuard<Hosted>> {
    let slot = slot(st, Some(tenant), id).await?;
    let mut g = slot.hosted.clone().lock_owned().await;
    ensure_lease(st, id, &mut g).await?;
    fresh(st, id, &mut g).await?;
    Ok(g)
}

/// A rollout whose memory ran ahead of a failed commit ([`Hosted::stale`]) taken back from the
/// database, or `UNAVAILABLE` while it cannot be: no answer comes from, and no input is applied
/// to, transitions that were never stored.
async fn fresh(st: &AppState, id: &str, g: &mut Hosted) -> ApiResult<()> {
    if !g.stale {
        return Ok(());
    }
    let stored = load_one(st, id).await.map_err(|e| {
        ApiError::new(
            crate::error::Code::Unavailable,
            format!(
                "rollout_id: rollout {id} is being reloaded after a failed commit ({e}); send the request again"
            ),
        )
    })?;
    *g = stored;
    st.engines.set_timeout(id, g.rollout.poll_timeout());
    st.timer.notify_one();
    Ok(())
}

fn no_rollout(id: &str) -> ApiError {
    ApiError::not_found(format!("rollout_id: no rollout {id}"))
}

/// The rollout in memory; with leases, one another replica created is loaded on first use.
async fn slot(st: &AppState, tenant: Option<&str>, id: &str) -> ApiResult<Arc<Slot>> {
    let found = match tenant {
        Some(t) => st.engines.get_for(t, id),
        None => st.engines.get(id),
    };
    if let Some(s) = found {
        return Ok(s);
    }
    let row: Option<(String,)> =
        sqlx::query_as("SELECT tenant FROM rollouts WHERE rollout_id = $1")
            .bind(id.to_string())
            .fetch_optional(&st.db)
            .await?;
    match row {
        Some((t,)) if tenant.is_none_or(|want| want == t) => {}
        _ => return Err(no_rollout(id)),
    }
    if st.config.lease_ms == 0 {
        // Stored but not in memory: its restore at start failed (logged). Not "no such
        // rollout": a device would drop its report for good on that answer.
        return Err(ApiError::internal(format!(
            "rollout_id: rollout {id} is stored but was not restored (see the server's log)"
        )));
    }
    let h = load_one(st, id).await.map_err(|e| {
        ApiError::internal(format!("rollout_id: rollout {id} cannot be restored: {e}"))
    })?;
    // Whoever inserts first wins; the copy is cold (no lease) until `ensure_lease`.
    let mut map = st.engines.map.lock().expect("engines lock");
    let entry = map.entry(id.to_string()).or_insert_with(|| {
        (
            h.tenant.clone(),
            Arc::new(Slot {
                hosted: Arc::new(Mutex::new(h)),
                queue: StdMutex::new(Vec::new()),
            }),
        )
    });
    Ok(entry.1.clone())
}

/// The answer of a create.
pub struct Created {
    /// The rollout's id.
    pub rollout_id: String,
    /// Its status.
    pub status: ota_core::rollout::RolloutStatus,
}

/// Creates a rollout over the tenant's fleet and commits its first record, commands and
/// events.
pub async fn create(
    st: &AppState,
    tenant: &Name,
    by: &Name,
    spec: RolloutSpec,
) -> ApiResult<Created> {
    let t = tenant.as_str();
    let package = crate::packages::available(st, t, spec.package_id.as_str()).await?;
    let rollback = match &spec.rollback_package_id {
        Some(id) => Some(
            crate::packages::available(st, t, id.as_str())
                .await
                .map_err(|e| {
                    ApiError::new(
                        e.code,
                        e.message.replacen("package_id", "rollback_package_id", 1),
                    )
                })?,
        ),
        None => None,
    };
    if let Some(p) = &spec.target_profile_id
        && crate::fleet::profile(st, t, p.as_str()).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "target_profile_id: no profile {p}"
        )));
    }
    let fleet_read_at = now();
    let fleet = crate::fleet::fleet(st, t).await?;
    let rollout_id: Name = format!("rol_{}", crate::auth::random_hex(6))
        .parse()
        .map_err(|e| ApiError::internal(format!("rollout id: {e}")))?;
    let at = now();
    // A large fleet is judged on the machine's cores (`ota_host::rollout::create`).
    let mut r = ota_host::rollout::create(
        Create {
            rollout_id: rollout_id.clone(),
            tenant: tenant.clone(),
            spec,
            package: &package.verified,
            rollback: rollback.as_ref().map(|p| &p.verified),
            fleet: &fleet,
            by: by.clone(),
            now: at,
        },
        0,
    )
    .map_err(engine_error)?;
    let outputs: Vec<Output> = std::iter::from_fn(|| r.poll()).collect();
    let head = r.audit_head();
    let turn = st.write_turn().await;
    let mut tx = st.db.begin().await?;
    sqlx::query(
        "INSERT INTO rollouts (rollout_id, tenant, package_id, rollback_package_id, state, \
         snapshot, snapshot_seq, head_seq, head_hash, next_timeout, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, '', $6, $6, $7, $8, $9, $9)",
    )
    .bind(rollout_id.to_string())
    .bind(t.to_string())
    .bind(r.package().id().to_string())
    .bind(r.rollback_package().map(|p| p.id().to_string()))
    .bind(r.state().as_str().to_string())
    .bind(i(head.seq))
    .bind(head.hash.to_hex())
    .bind(r.poll_timeout().map(|t| i(t.get())))
    .bind(i(at.get()))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO rollout_snapshots (rollout_id, snapshot_seq, snapshot) VALUES ($1, $2, $3)",
    )
    .bind(rollout_id.to_string())
    .bind(i(head.seq))
    .bind(r.snapshot().to_json())
    .execute(&mut *tx)
    .await?;
    let mut hosted = Hosted {
        snapshot_span: snapshot_span(st.config.snapshot_every, &r),
        stale: false,
        rollout: r,
        tenant: t.to_string(),
        snapshot_seq: head.seq,
    };
    let mut w = Writes::default();
    let step = Step {
        attempts: attempts(&hosted.rollout, &outputs),
        outputs,
        reports: 0,
        acks: Vec::new(),
    };
    let live = persist(&mut w, &hosted, step);
    w.flush(
        &mut tx,
        t,
        rollout_id.as_str(),
        at.get(),
        st.config.rpc_ttl_ms,
    )
    .await?;
    let lease_until = at.get().saturating_add(st.config.lease_ms);
    if st.config.lease_ms > 0 {
        sqlx::query(
            "INSERT INTO rollout_leases (rollout_id, holder, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(rollout_id.to_string())
        .bind(st.config.replica_id.clone())
        .bind(i(lease_until))
        .execute(&mut *tx)
        .await?;
    }
    {
        let _order = st.assignments.in_order(&w.assign).await;
        tx.commit().await?;
        st.assignments.apply(t, rollout_id.as_str(), &w.assign);
    }
    drop(turn);
    if st.config.lease_ms > 0 {
        st.engines.set_held(rollout_id.as_str(), Some(lease_until));
    }
    let status = hosted.rollout.status();
    let timeout = hosted.rollout.poll_timeout();
    hosted.snapshot_seq = head.seq;
    st.engines.insert(rollout_id.to_string(), hosted);
    after_commit(st, rollout_id.as_str(), timeout, live);
    catch_up(st, t, rollout_id.as_str(), fleet_read_at).await;
    Ok(Created {
        rollout_id: rollout_id.to_string(),
        status,
    })
}

/// Feeds one input to a tenant's rollout and commits what it produced (with whatever other
/// inputs queued meanwhile, in one transaction) before it returns. The work runs as its own
/// task: a client that hangs up (a device killed mid-report) drops the request, never a
/// commit whose inputs memory has already applied.
pub async fn input(
    st: &AppState,
    tenant: Option<&str>,
    rollout_id: &str,
    input: Input,
) -> ApiResult<Applied> {
    let (st, tenant, rollout_id) = (
        st.clone(),
        tenant.map(str::to_string),
        rollout_id.to_string(),
    );
    tokio::spawn(async move { input_now(&st, tenant.as_deref(), &rollout_id, input).await })
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("engine input: {e}"))))
}

async fn input_now(
    st: &AppState,
    tenant: Option<&str>,
    rollout_id: &str,
    input: Input,
) -> ApiResult<Applied> {
    let h = slot(st, tenant, rollout_id).await?;
    let (tx, mut rx) = oneshot::channel();
    h.queue.lock().expect("queue lock").push((input, tx));
    let mut g = h.hosted.lock().await;
    // A leader before us may have committed it already.
    if let Ok(r) = rx.try_recv() {
        return r;
    }
    let batch = std::mem::take(&mut *h.queue.lock().expect("queue lock"));
    // Never from stale memory: without the lease, or after a failed commit memory could not
    // be taken back from, nothing is applied.
    let ready = match ensure_lease(st, rollout_id, &mut g).await {
        Ok(()) => fresh(st, rollout_id, &mut g).await,
        Err(e) => Err(e),
    };
    match ready {
        Ok(()) => commit_batch(st, rollout_id, &mut g, batch).await,
        Err(e) => {
            for (_, tx) in batch {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
    drop(g);
    rx.await
        .unwrap_or_else(|_| Err(ApiError::internal("the input was dropped")))
}

/// The timer driver: feeds `Tick` to each rollout at its `poll_timeout`.
pub async fn drive_timers(st: AppState) {
    loop {
        let at = now();
        for id in st.engines.due(at) {
            if let Err(e) = input(&st, None, &id, Input::Tick).await {
                tracing::debug!(rollout_id = %id, error = %e, "tick failed");
                // Another replica's rollout: try again when its lease could have expired.
                let retry = st.config.lease_ms.clamp(1000, 60_000);
                st.engines
                    .set_timeout(&id, Some(at.saturating_add_ms(retry)));
            }
        }
        let wait = match st.engines.next_timeout() {
            Some(t) => {
                std::time::Duration::from_millis(t.saturating_sub(now().get()).clamp(1, 60_000))
            }
            None => std::time::Duration::from_secs(60),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = st.timer.notified() => {}
        }
    }
}
