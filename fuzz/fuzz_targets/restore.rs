//! Mutated rollout snapshots: a snapshot of a real rollout (fresh, mid-way with retries and
//! failures, or rolling back) has arbitrary values written over its fields, elements removed
//! or repeated; then it is parsed and restored. Restore refuses it with a typed error, or the
//! rollout it gives takes every kind of input without a panic, and its own snapshot
//! restores again.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_core::report::ReportStatus;
use ota_core::rollout::{Create, Input, Rollout, Snapshot};
use ota_core::sign::VerifiedPackage;
use ota_core::{DeviceProfile, Limits, UnixMs};
use ota_tests::fleet::{firmware, report, sensors, spec};
use serde_json::{Value, json};

struct Fixture {
    pkg: VerifiedPackage,
    rb: VerifiedPackage,
    fleet: Vec<DeviceProfile>,
    bases: Vec<Value>,
}

const T0: u64 = 1_000_000;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pkg = firmware("2.0.0", false);
        let rb = firmware("1.9.0", true);
        let fleet = sensors(60, 7);
        let plan = json!({"canary_percent": 10, "failure_threshold_percent": 40,
            "waves": [{"percent": 50, "min_soak_ms": 10}, {"percent": 100, "gate": "approval"}],
            "retries": {"failed": {"max": 1, "backoff_ms": 100}, "no_ack": {"max": 1}},
            "pacing": {"per_minute": 5, "max_in_flight": 4},
            "timeouts": {"ack_ms": 1000, "in_progress_ms": 5000, "offline_expiry_ms": 20000}});
        let mut r = Rollout::create(Create {
            rollout_id: "rol_fuzz".parse().unwrap(),
            tenant: "acme".parse().unwrap(),
            spec: spec(&pkg, Some(&rb), plan),
            package: &pkg,
            rollback: Some(&rb),
            fleet: &fleet,
            by: "op".parse().unwrap(),
            now: UnixMs(T0),
        })
        .unwrap();
        let snap = |r: &mut Rollout| {
            while r.poll().is_some() {}
            serde_json::from_str::<Value>(&r.snapshot().to_json()).unwrap()
        };
        let mut bases = vec![snap(&mut r)];
        let ids: Vec<String> = r.devices().map(|(d, _)| d.to_string()).collect();
        let mut now = T0;
        for (n, d) in ids.iter().enumerate() {
            let st = [ReportStatus::InProgress, ReportStatus::Success, ReportStatus::Failure][n % 3];
            let v = if st == ReportStatus::Success { "2.0.0" } else { "1.2.0" };
            let attempt = r.attempt(d).unwrap_or(1);
            let _ = r.handle(
                Input::AttemptReport { report: report(d, st, Some(v)), attempt },
                UnixMs(now),
            );
            now += 700;
            let _ = r.handle(Input::Tick, UnixMs(now));
        }
        bases.push(snap(&mut r));
        let _ = r.handle(Input::Rollback { by: "op".parse().unwrap() }, UnixMs(now + 1));
        bases.push(snap(&mut r));
        Fixture { pkg, rb, fleet, bases }
    })
}

#[derive(Arbitrary, Debug)]
enum Write {
    Number(u64),
    Small(u8),
    Bool(bool),
    Null,
    State(u8),
    Remove,
    Repeat,
    Empty,
}

#[derive(Arbitrary, Debug)]
struct Mutation {
    pick: u16,
    write: Write,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Report { pick: u8, status: u8, attempt: u8 },
    Tick { ms: u32 },
    Pause,
    Resume,
    Abort,
    Rollback,
    Approve { wave: u8 },
    Verdict { wave: u8, pass: bool },
    Join { n: u8 },
    Leave { n: u8 },
}

const STATES: [&str; 17] = [
    "pending", "scheduled", "sent", "in_progress", "succeeded", "failed", "timed_out", "rejected",
    "incompatible", "already_installed", "cancelled", "removed", "rollback_scheduled",
    "rollback_sent", "rolled_back", "rollback_failed", "active",
];

/// Every place of a document, by path (the root excluded).
fn places(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(i.to_string());
                out.push(here.clone());
                places(x, here, out);
                here.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                here.push(k.clone());
                out.push(here.clone());
                places(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    places(doc, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let path = &all[usize::from(m.pick) % all.len()];
    let (last, parent) = path.split_last().unwrap();
    let mut p = doc;
    for k in parent {
        p = match p {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        };
    }
    let value = match &m.write {
        Write::Number(x) => json!(x),
        Write::Small(x) => json!(x),
        Write::Bool(b) => json!(b),
        Write::Null => Value::Null,
        Write::State(s) => json!(STATES[usize::from(*s) % STATES.len()]),
        Write::Empty => match p.get(last.as_str()).or_else(|| last.parse::<usize>().ok().and_then(|i| p.get(i))) {
            Some(Value::Object(_)) => json!({}),
            _ => json!([]),
        },
        Write::Remove | Write::Repeat => {
            match p {
                Value::Array(a) => {
                    let i = last.parse::<usize>().unwrap();
                    if matches!(m.write, Write::Remove) {
                        a.remove(i);
                    } else {
                        let x = a[i].clone();
                        a.insert(i, x);
                    }
                }
                Value::Object(o) => {
                    o.remove(last.as_str());
                }
                _ => {}
            }
            return;
        }
    };
    match p {
        Value::Array(a) => a[last.parse::<usize>().unwrap()] = value,
        other => other[last.as_str()] = value,
    }
}

fuzz_target!(|input: (u8, Vec<Mutation>, Vec<Op>)| {
    let (base, mutations, ops) = input;
    let f = fixture();
    let mut doc = f.bases[usize::from(base) % f.bases.len()].clone();
    for m in mutations.iter().take(8) {
        apply(&mut doc, m);
    }
    let Ok(snap) = Snapshot::from_json(doc.to_string().as_bytes(), &Limits::DEFAULT) else {
        return;
    };
    let Ok(mut r) = Rollout::restore(snap, &f.pkg, Some(&f.rb)) else {
        return;
    };
    let ids: Vec<String> = r.devices().map(|(d, _)| d.to_string()).collect();
    let op: ota_core::name::Name = "op".parse().unwrap();
    let mut now = T0 + 100_000;
    let _ = r.status();
    let _ = r.poll_timeout();
    for o in ops.into_iter().take(200) {
        let input = match o {
            Op::Report { pick, status, attempt } => {
                if ids.is_empty() {
                    continue;
                }
                let d = &ids[usize::from(pick) % ids.len()];
                let st = [
                    ReportStatus::InProgress,
                    ReportStatus::Success,
                    ReportStatus::Failure,
                    ReportStatus::Rejected,
                ][usize::from(status) % 4];
                let v = ["2.0.0", "1.9.0", "1.2.0"][usize::from(status / 4) % 3];
                Input::AttemptReport {
                    report: report(d, st, Some(v)),
                    attempt: u32::from(attempt % 4),
                }
            }
            Op::Tick { ms } => {
                now += u64::from(ms);
                Input::Tick
            }
            Op::Pause => Input::Pause { by: op.clone() },
            Op::Resume => Input::Resume { by: op.clone() },
            Op::Abort => Input::Abort { by: op.clone() },
            Op::Rollback => Input::Rollback { by: op.clone() },
            Op::Approve { wave } => Input::Approve { wave: usize::from(wave % 6), by: op.clone() },
            Op::Verdict { wave, pass } => Input::Verdict { wave: usize::from(wave % 6), pass, by: op.clone() },
            Op::Join { n } => Input::Join(Box::new(f.fleet[usize::from(n) % f.fleet.len()].clone())),
            Op::Leave { n } => Input::Leave {
                device_id: f.fleet[usize::from(n) % f.fleet.len()].device_id.clone(),
            },
        };
        let _ = r.handle(input, UnixMs(now));
        while r.poll().is_some() {}
        let _ = r.status();
        let _ = r.poll_timeout();
    }
    // What the rollout persists restores again.
    let again = Snapshot::from_json(r.snapshot().to_json().as_bytes(), &Limits::DEFAULT)
        .expect("the snapshot parses");
    let back = Rollout::restore(again, &f.pkg, Some(&f.rb)).expect("the snapshot restores");
    assert!(back.same_state(&r));
});
