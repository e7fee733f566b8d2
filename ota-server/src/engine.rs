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

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use ota_core::audit::AuditRecord;
use ota_core::plan::RolloutSpec;
use ota_core::report::DeviceReport;
use ota_core::rollout::{
    BatchedReport, Create, Effect, Input, Output, ReportBatch, Rollout, RolloutCommand, Snapshot,
};
use ota_core::{Limits, Name, UnixMs};
use serde_json::{Value, json};
use tokio::sync::{Mutex, oneshot};

use crate::db::{Tx, i, u};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, LiveEvent, now};
use crate::writes::Writes;

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
async fn ensure_lease(st: &AppState, id: &str, g: &mut Hosted) -> ApiResult<()> {
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
async fn guard_lease(st: &AppState, tx: &mut Tx, id: &str, at: UnixMs) -> ApiResult<()> {
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
    tx.commit().await?;
    drop(turn);
    st.assignments.apply(t, rollout_id.as_str(), &w.assign);
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

/// What each input of a batch is answered, once the batch is committed: the report whose
/// device's state to tell, or the error that refused it.
type Done = Vec<(
    oneshot::Sender<ApiResult<Applied>>,
    ApiResult<Option<DeviceReport>>,
)>;

/// One engine step's outputs and what `persist` needs beside them: the reports it took, the
/// devices whose command those reports answer, and the attempt of each command it sent.
struct Step {
    outputs: Vec<Output>,
    reports: u64,
    acks: Vec<String>,
    attempts: HashMap<String, u32>,
}

/// The attempt of each device the outputs send a command to, as the rollout says right after
/// the input that sent it (an input sends a device one command at most).
fn attempts(r: &Rollout, outputs: &[Output]) -> HashMap<String, u32> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Command(RolloutCommand::Send { device_id, .. }) => r
                .attempt(device_id.as_str())
                .map(|a| (device_id.to_string(), a)),
            _ => None,
        })
        .collect()
}

/// What one commit gathers as its inputs are handled: the steps to persist, the answers to
/// give after it, and whether every input was a tick.
struct Batch {
    at: UnixMs,
    steps: Vec<Step>,
    done: Done,
    ticks_only: bool,
}

impl Batch {
    /// Whether a device's report answers the command it was sent (its first report does; a
    /// device already in progress acknowledged it before).
    fn acks(g: &Hosted, r: &DeviceReport) -> bool {
        g.rollout.device_state(r.device_id.as_str())
            != Some(ota_core::rollout::DeviceState::InProgress)
    }

    /// The step's outputs, drained.
    fn drain(g: &mut Hosted) -> Vec<Output> {
        std::iter::from_fn(|| g.rollout.poll()).collect()
    }

    /// Handles one input alone.
    fn one(&mut self, g: &mut Hosted, input: Input, tx: oneshot::Sender<ApiResult<Applied>>) {
        let report = input.report().map(|(r, _)| r.clone());
        let ack = report.as_ref().is_some_and(|r| Self::acks(g, r));
        self.ticks_only &= matches!(input, Input::Tick);
        match g.rollout.handle(input, self.at) {
            // Refused: nothing changed; only a recorded refusal has something to commit.
            Err(e) => {
                if e.is_recorded() {
                    let outputs = Self::drain(g);
                    if !outputs.is_empty() {
                        self.steps.push(Step {
                            outputs,
                            reports: 0,
                            acks: Vec::new(),
                            attempts: HashMap::new(),
                        });
                    }
                    self.done.push((tx, Err(engine_error(e))));
                } else {
                    let _ = tx.send(Err(engine_error(e)));
                }
            }
            Ok(()) => {
                let outputs = Self::drain(g);
                if !outputs.is_empty() {
                    let acks = match (&report, ack) {
                        (Some(r), true) => vec![r.device_id.to_string()],
                        _ => Vec::new(),
                    };
                    self.steps.push(Step {
                        attempts: attempts(&g.rollout, &outputs),
                        outputs,
                        reports: u64::from(report.is_some()),
                        acks,
                    });
                }
                self.done.push((tx, Ok(report)));
            }
        }
    }

    /// Handles reports of distinct devices that arrived together as one engine step
    /// ([`Rollout::handle_reports`]): one audit record for all of them, each answered with
    /// what became of it. A batch the engine refuses whole (it changes nothing) is handled
    /// report by report, so each gets its own answer.
    fn reports(&mut self, g: &mut Hosted, run: Vec<Queued>) {
        let mut reports = Vec::with_capacity(run.len());
        let mut acks = Vec::with_capacity(run.len());
        let mut items = Vec::with_capacity(run.len());
        for (input, _) in &run {
            let (r, attempt) = input.report().expect("a run holds reports");
            acks.push(Self::acks(g, r));
            // A report naming no attempt is about its device's current command's first.
            let attempt = attempt
                .or_else(|| g.rollout.first_attempt(r.device_id.as_str()))
                .unwrap_or(1);
            items.push(BatchedReport {
                device_id: r.device_id.clone(),
                status: r.status,
                attempt,
                firmware_version: r.firmware_version.clone(),
                reason: r.reason.clone(),
            });
            reports.push(r.clone());
        }
        let batch = ReportBatch {
            rollout_id: g.rollout.id().clone(),
            reports: items,
        };
        let Ok(each) = g.rollout.handle_reports(batch, self.at) else {
            for (input, tx) in run {
                self.one(g, input, tx);
            }
            return;
        };
        self.ticks_only = false;
        let outputs = Self::drain(g);
        let mut step = Step {
            attempts: attempts(&g.rollout, &outputs),
            outputs,
            reports: 0,
            acks: Vec::new(),
        };
        for ((((_, tx), result), report), ack) in run.into_iter().zip(each).zip(reports).zip(acks) {
            match result {
                Ok(()) => {
                    step.reports += 1;
                    if ack {
                        step.acks.push(report.device_id.to_string());
                    }
                    self.done.push((tx, Ok(Some(report))));
                }
                Err(e) => self.done.push((tx, Err(engine_error(e)))),
            }
        }
        if !step.outputs.is_empty() {
            self.steps.push(step);
        }
    }
}

/// Splits the queued inputs, in order, into what the engine takes as one step: a run of
/// consecutive reports of distinct devices naming `rollout_id` (taken as one batch), or one
/// other input.
fn runs(rollout_id: &Name, queued: Vec<Queued>) -> Vec<Vec<Queued>> {
    let device = |input: &Input| {
        input
            .report()
            .filter(|(r, _)| r.rollout_id.as_ref() == Some(rollout_id))
            .map(|(r, _)| r.device_id.clone())
    };
    let mut runs: Vec<Vec<Queued>> = Vec::new();
    // The devices of the last run, when it is a run of reports.
    let mut devices = std::collections::HashSet::new();
    for q in queued {
        let d = device(&q.0);
        let joins = match (&d, runs.last()) {
            (Some(d), Some(run)) => device(&run[0].0).is_some() && !devices.contains(d),
            _ => false,
        };
        if !joins {
            devices.clear();
            runs.push(Vec::new());
        }
        if let Some(d) = d {
            devices.insert(d);
        }
        runs.last_mut().expect("a run was started").push(q);
    }
    runs
}

/// Handles a batch of inputs and commits all they produced in one transaction; answers each.
/// Reports of distinct devices queued together go to the engine as one batch ([`runs`]). A
/// refused report whose refusal the rollout records (it does not match the rollout, the
/// package or the attempt) is committed with the rest, and then answered with its error.
async fn commit_batch(st: &AppState, rollout_id: &str, g: &mut Hosted, queued: Vec<Queued>) {
    let at = now();
    let mut b = Batch {
        at,
        steps: Vec::new(),
        done: Vec::new(),
        ticks_only: true,
    };
    let id = g.rollout.id().clone();
    for mut run in runs(&id, queued) {
        if run.len() > 1 {
            b.reports(g, run);
        } else if let Some((input, tx)) = run.pop() {
            b.one(g, input, tx);
        }
    }
    let Batch {
        steps,
        done,
        ticks_only,
        ..
    } = b;
    let answer = |g: &Hosted, done: Done| {
        for (tx, report) in done {
            let answer = report.map(|report| Applied {
                device_state: report.and_then(|r| g.rollout.device_state(r.device_id.as_str())),
                state: g.rollout.state(),
                halt_reason: g.rollout.halt_reason().map(ToString::to_string),
                audit_head: g.rollout.audit_head().to_string(),
            });
            let _ = tx.send(answer);
        }
    };
    if steps.is_empty() {
        // Nothing recorded (a tick with nothing to do): nothing to commit.
        let mut t = g.rollout.poll_timeout();
        if ticks_only && t.is_some_and(|t| t <= at) {
            t = Some(at.saturating_add_ms(1000));
        }
        st.engines.set_timeout(rollout_id, t);
        answer(g, done);
        return;
    }
    let reports = steps.iter().map(|s| s.reports).sum::<u64>();
    let inputs = steps.len() as u64;
    let mut w = Writes::default();
    let mut live = Vec::new();
    for step in steps {
        live.extend(persist(&mut w, g, step));
    }
    let result = async {
        let _turn = st.write_turn().await;
        let mut tx = st.db.begin().await?;
        guard_lease(st, &mut tx, rollout_id, at).await?;
        w.flush(
            &mut tx,
            &g.tenant,
            rollout_id,
            at.get(),
            st.config.rpc_ttl_ms,
        )
        .await?;
        let head = g.rollout.audit_head();
        let snapshot = head.seq.saturating_sub(g.snapshot_seq) >= g.snapshot_span;
        sqlx::query(
            "UPDATE rollouts SET state = $1, head_seq = $2, head_hash = $3, next_timeout = $4, \
             updated_at = $5 WHERE rollout_id = $6",
        )
        .bind(g.rollout.state().as_str().to_string())
        .bind(i(head.seq))
        .bind(head.hash.to_hex())
        .bind(g.rollout.poll_timeout().map(|t| i(t.get())))
        .bind(i(at.get()))
        .bind(rollout_id.to_string())
        .execute(&mut *tx)
        .await?;
        if snapshot {
            sqlx::query(
                "UPDATE rollout_snapshots SET snapshot = $1, snapshot_seq = $2 \
                 WHERE rollout_id = $3",
            )
            .bind(g.rollout.snapshot().to_json())
            .bind(i(head.seq))
            .bind(rollout_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<_, ApiError>(snapshot.then_some(head.seq))
    }
    .await;
    match result {
        Ok(snap) => {
            use std::sync::atomic::Ordering::Relaxed;
            st.assignments.apply(&g.tenant, rollout_id, &w.assign);
            st.metrics.inputs.fetch_add(inputs, Relaxed);
            st.metrics.reports.fetch_add(reports, Relaxed);
            if let Some(seq) = snap {
                g.snapshot_seq = seq;
                g.snapshot_span = snapshot_span(st.config.snapshot_every, &g.rollout);
            }
            let timeout = g.rollout.poll_timeout();
            after_commit(st, rollout_id, timeout, live);
            answer(g, done);
        }
        Err(e) => {
            st.metrics
                .commit_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Memory ran ahead of the database: take the rollout back from what is stored.
            if let Err(ae) = st.assignments.reload(&st.db, &g.tenant, &w.assign).await {
                tracing::error!(rollout_id, error = %ae, "cannot reload assignments");
            }
            match load_one(st, rollout_id).await {
                Ok(stored) => *g = stored,
                Err(le) => {
                    tracing::error!(rollout_id, error = %le, "cannot reload rollout: its next input tries again");
                    g.stale = true;
                }
            }
            for (tx, _) in done {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

fn after_commit(st: &AppState, rollout_id: &str, timeout: Option<UnixMs>, live: Vec<LiveEvent>) {
    st.engines.set_timeout(rollout_id, timeout);
    st.timer.notify_one();
    if !live.is_empty() {
        st.outbox.notify_one();
    }
    st.metrics
        .events
        .fetch_add(live.len() as u64, std::sync::atomic::Ordering::Relaxed);
    for e in live {
        let _ = st.events.send(e);
    }
}

/// Gathers a step's outputs, in order, into the batch's writes; returns the live events to
/// publish after the commit. The step's `acks`: the devices whose reports answer their update
/// or rollback command. Its `attempts`: the attempt of each command the step sent
/// ([`attempts`]), told to the device in the `ota_start` or `ota_rollback` record and with its
/// assignment.
fn persist(w: &mut Writes, h: &Hosted, step: Step) -> Vec<LiveEvent> {
    let Step {
        outputs,
        acks,
        attempts,
        ..
    } = step;
    let r = &h.rollout;
    let rid = r.id().to_string();
    let tenant = h.tenant.clone();
    let mut live = Vec::new();
    let mut seq = 0u64;
    let mut idx = 0u64;
    for device in &acks {
        // The device answered its command: the update or rollback RPC sent before its
        // report is acknowledged (not one the report itself makes the engine send).
        w.rpc_ack(device);
    }
    for out in outputs {
        match out {
            Output::Audit(rec) => {
                seq = rec.seq;
                idx = 0;
                w.audit(rec.seq, rec.at.get(), rec.to_json());
                for e in &rec.effects {
                    apply_effect(w, h, e);
                }
            }
            Output::Command(RolloutCommand::Send {
                device_id,
                package_id,
                rollback,
            }) => {
                let method = if rollback {
                    "ota_rollback"
                } else {
                    "ota_start"
                };
                let rpc_id = rpc_id(&rid, seq, idx);
                let attempt = attempts.get(device_id.as_str()).copied().unwrap_or(1);
                let params = json!({
                    "rollout_id": rid, "package_id": package_id.to_string(), "attempt": attempt,
                });
                w.rpc_insert(device_id.as_str(), rpc_id, method, &params);
                w.assign(
                    device_id.as_str(),
                    package_id.to_string(),
                    if rollback { "rollback" } else { "update" },
                    attempt,
                );
                idx += 1;
            }
            Output::Command(RolloutCommand::Cancel { device_id, forced }) => {
                let rpc_id = rpc_id(&rid, seq, idx);
                w.rpc_cancel(device_id.as_str());
                let params = json!({ "rollout_id": rid, "forced": forced });
                w.rpc_insert(device_id.as_str(), rpc_id, "ota_cancel", &params);
                w.unassign(device_id.as_str());
                idx += 1;
            }
            Output::Event(e) => {
                let event_id = format!("{rid}:{seq}:{idx}");
                let subject = r.subject(&e);
                let mut payload = e.payload();
                if let Some(o) = payload.as_object_mut() {
                    o.insert("kind".into(), Value::String(e.kind().to_string()));
                    o.insert("rollout_id".into(), Value::String(rid.clone()));
                    o.insert("tenant".into(), Value::String(tenant.clone()));
                }
                w.outbox(event_id.clone(), seq, idx, subject.clone(), &payload);
                live.push(LiveEvent {
                    tenant: tenant.clone(),
                    rollout_id: rid.clone(),
                    id: event_id,
                    subject,
                    payload,
                });
                idx += 1;
            }
            _ => {}
        }
    }
    live
}

/// The id of the RPC record of output `idx` of audit record `seq`: zero-padded, so the ids of
/// one rollout sort in the engine's order (records of one commit share their `created_at`).
fn rpc_id(rid: &str, seq: u64, idx: u64) -> String {
    format!("rpc_{rid}_{seq:012}_{idx:08}")
}

/// What an effect changes outside the rollout: the device's installed version, and the end
/// of its assignment.
fn apply_effect(w: &mut Writes, h: &Hosted, e: &Effect) {
    let r = &h.rollout;
    let (device_id, installed) = match e {
        Effect::DeviceUpdated { device_id, version } => {
            let p = r.package().package();
            let v = version.clone().unwrap_or_else(|| p.version.clone());
            (device_id, Some((p.name.to_string(), v.to_string())))
        }
        Effect::DeviceRolledBack { device_id } => {
            let installed = r.rollback_package().map(|p| {
                (
                    p.package().name.to_string(),
                    p.package().version.to_string(),
                )
            });
            (device_id, installed)
        }
        Effect::DeviceFailed { device_id, .. }
        | Effect::DeviceRejected { device_id, .. }
        | Effect::DeviceTimedOut { device_id, .. }
        | Effect::DeviceRollbackFailed { device_id } => (device_id, None),
        _ => return,
    };
    w.unassign(device_id.as_str());
    if let Some((name, version)) = installed {
        w.installed(device_id.as_str(), name, version);
    }
}

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
    for (text,) in trail {
        let rec: AuditRecord = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        r.handle(rec.input.clone(), rec.at)
            .map_err(|e| format!("replay of record {}: {e}", rec.seq))?;
        let mut mine = None;
        while let Some(o) = r.poll() {
            if let Output::Audit(a) = o
                && mine.is_none()
            {
                mine = Some(a);
            }
        }
        if mine.as_ref() != Some(&rec) {
            return Err(format!("replay diverges at audit record {}", rec.seq));
        }
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
async fn catch_up(st: &AppState, tenant: &str, id: &str, fleet_read_at: UnixMs) {
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
