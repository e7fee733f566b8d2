//! Group commit: the inputs queued for a rollout handled as one engine step (reports of
//! distinct devices as one batch), and everything they produced written in one transaction
//! before each is answered.

use std::collections::HashMap;

use ota_core::report::DeviceReport;
use ota_core::rollout::{
    BatchedReport, Effect, Input, Output, ReportBatch, Rollout, RolloutCommand,
};
use ota_core::{Name, UnixMs};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::leases::guard_lease;
use super::load::load_one;
use super::{Applied, Hosted, Queued, engine_error, snapshot_span};
use crate::db::i;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, LiveEvent, now};
use crate::writes::Writes;

/// What each input of a batch is answered, once the batch is committed: the report whose
/// device's state to tell, or the error that refused it.
type Done = Vec<(
    oneshot::Sender<ApiResult<Applied>>,
    ApiResult<Option<DeviceReport>>,
)>;

/// One engine step's outputs and what `persist` needs beside them: the reports it took, the
/// devices whose command those reports answer, and the attempt of each command it sent.
pub(super) struct Step {
    pub(super) outputs: Vec<Output>,
    pub(super) reports: u64,
    pub(super) acks: Vec<String>,
    pub(super) attempts: HashMap<String, u32>,
}

/// The attempt of each device the outputs send a command to, as the rollout says right after
/// the input that sent it (an input sends a device one command at most).
pub(super) fn attempts(r: &Rollout, outputs: &[Output]) -> HashMap<String, u32> {
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
pub(super) async fn commit_batch(
    st: &AppState,
    rollout_id: &str,
    g: &mut Hosted,
    queued: Vec<Queued>,
) {
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
        {
            let _order = st.assignments.in_order(&w.assign).await;
            tx.commit().await?;
            st.assignments.apply(&g.tenant, rollout_id, &w.assign);
        }
        Ok::<_, ApiError>(snapshot.then_some(head.seq))
    }
    .await;
    match result {
        Ok(snap) => {
            use std::sync::atomic::Ordering::Relaxed;
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

pub(super) fn after_commit(
    st: &AppState,
    rollout_id: &str,
    timeout: Option<UnixMs>,
    live: Vec<LiveEvent>,
) {
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
pub(super) fn persist(w: &mut Writes, h: &Hosted, step: Step) -> Vec<LiveEvent> {
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
