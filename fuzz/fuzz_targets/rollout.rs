//! Arbitrary rollouts driven by arbitrary operations — reports, ticks, pause, resume, abort,
//! rollback, approvals, verdicts, joins and leaves. Never panics; a paused rollout sends
//! nothing; the number in flight stays within its limit; a wave never opens before its gate;
//! and the audit trail verifies and replays to the live state.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_core::plan::Gate;
use ota_core::report::ReportStatus;
use ota_core::rollout::{Create, Input, Output, Rollout, RolloutCommand, RolloutState, Snapshot};
use ota_core::sign::VerifiedPackage;
use ota_core::{DeviceProfile, Limits, UnixMs};
use ota_tests::fleet::{firmware, report, sensors, spec};

struct Fixture {
    pkg: VerifiedPackage,
    rb: VerifiedPackage,
    fleet: Vec<DeviceProfile>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        pkg: firmware("2.0.0", false),
        rb: firmware("1.9.0", true),
        fleet: sensors(300, 9),
    })
}

#[derive(Arbitrary, Debug)]
struct Plan {
    devices: u8,
    canary: u8,
    waves: Vec<(u8, u16, u8, u8)>,
    threshold: u8,
    min_terminal: u8,
    max_in_flight: Option<u8>,
    per_minute: Option<u8>,
    action: u8,
    scope: bool,
    in_flight: u8,
    rollback_scope: u8,
    retries: (u8, u8, u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Report { pick: u16, status: u8 },
    Tick { ms: u32 },
    Pause,
    Resume,
    Abort,
    Rollback,
    Approve { wave: u8 },
    Verdict { wave: u8, pass: bool },
    Join { n: u16 },
    Leave { n: u16 },
}

fuzz_target!(|input: (Plan, Vec<Op>)| {
    let (p, ops) = input;
    let f = fixture();
    let n = 1 + usize::from(p.devices) % 120;
    let fleet = &f.fleet[..n];
    let mut pct = 1 + u32::from(p.canary) % 99;
    let canary = pct;
    let mut waves = Vec::new();
    for (step, soak, gate, success) in p.waves.iter().take(4) {
        let next = (pct + 1 + u32::from(*step) % 40).min(99);
        if next <= pct {
            continue;
        }
        pct = next;
        let gate = ["automatic", "approval", "external"][usize::from(*gate) % 3];
        waves.push(serde_json::json!({"percent": pct, "min_soak_ms": soak, "gate": gate, "success_gate_percent": u32::from(*success) % 101}));
    }
    if !waves.is_empty() {
        waves.push(serde_json::json!({"percent": 100}));
    }
    let mut pacing = serde_json::json!({});
    if let Some(m) = p.max_in_flight {
        pacing["max_in_flight"] = serde_json::json!(1 + u32::from(m) % 30);
    }
    if let Some(m) = p.per_minute {
        pacing["per_minute"] = serde_json::json!(1 + u32::from(m) % 30);
    }
    let action = ["pause", "abort", "rollback"][usize::from(p.action) % 3];
    let in_flight = ["finish", "soft_cancel", "forced_cancel"][usize::from(p.in_flight) % 3];
    let rollback_scope = ["updated_only", "cohort", "all"][usize::from(p.rollback_scope) % 3];
    let plan = serde_json::json!({
        "canary_percent": canary,
        "waves": waves,
        "failure_threshold_percent": u32::from(p.threshold) % 101,
        "halt": {"min_terminal": 1 + u32::from(p.min_terminal) % 5,
                 "action": action,
                 "scope": if p.scope { "wave" } else { "cumulative" }},
        "in_flight": in_flight,
        "rollback_scope": rollback_scope,
        "pacing": pacing,
        "timeouts": {"ack_ms": 30_000, "in_progress_ms": 60_000, "offline_expiry_ms": 300_000},
        "retries": {"failed": {"max": p.retries.0 % 3, "backoff_ms": 1000}, "timed_out": {"max": p.retries.1 % 2}, "no_ack": {"max": p.retries.2 % 3}},
    });
    let spec = spec(&f.pkg, Some(&f.rb), plan);
    let create = |spec| Create {
        // The rollout the fixture's reports name (`fleet::report`), so they are taken.
        rollout_id: "rol_4c7e".parse().unwrap(),
        tenant: "acme".parse().unwrap(),
        spec,
        package: &f.pkg,
        rollback: Some(&f.rb),
        fleet,
        by: "op".parse().unwrap(),
        now: UnixMs(1_000_000),
    };
    let mut r = Rollout::create(create(spec.clone())).unwrap();
    let mut trail = Vec::new();
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut now = 1_000_000u64;
    let op: ota_core::name::Name = "op".parse().unwrap();
    let drain = |r: &mut Rollout, out: &mut Vec<(String, &'static str)>, trail: &mut Vec<_>| {
        let mut sent = 0;
        let mut recorded = false;
        while let Some(o) = r.poll() {
            match o {
                Output::Audit(a) => {
                    recorded = true;
                    trail.push(*a);
                }
                Output::Command(c) => {
                    assert!(recorded, "a command before its audit record");
                    if let RolloutCommand::Send { device_id, rollback, .. } = c {
                        sent += 1;
                        // A device answers with the version it was sent.
                        let v = if rollback { "1.9.0" } else { "2.0.0" };
                        out.push((device_id.to_string(), v));
                    }
                }
                Output::Event(_) => assert!(recorded, "an event before its audit record"),
                _ => {}
            }
        }
        sent
    };
    drain(&mut r, &mut out, &mut trail);
    for o in ops.into_iter().take(300) {
        let paused = r.state() == RolloutState::Paused;
        let mut resumed = false;
        match o {
            Op::Report { pick, status } => {
                if !out.is_empty() {
                    let (d, v) = out.swap_remove(usize::from(pick) % out.len());
                    let st = [ReportStatus::InProgress, ReportStatus::Success, ReportStatus::Failure, ReportStatus::Rejected][usize::from(status) % 4];
                    // On its current attempt, or (one time in eight) a replay of the first.
                    let attempt = if status >= 224 { 1 } else { r.attempt(&d).unwrap_or(1) };
                    let input = Input::AttemptReport { report: report(&d, st, Some(v)), attempt };
                    let _ = r.handle(input, UnixMs(now));
                    if st == ReportStatus::InProgress {
                        out.push((d, v));
                    }
                }
            }
            Op::Tick { ms } => {
                now += u64::from(ms % 400_000);
                r.handle(Input::Tick, UnixMs(now)).expect("a tick is never refused");
            }
            Op::Pause => drop(r.handle(Input::Pause { by: op.clone() }, UnixMs(now))),
            Op::Resume => {
                resumed = true;
                drop(r.handle(Input::Resume { by: op.clone() }, UnixMs(now)));
            }
            Op::Abort => drop(r.handle(Input::Abort { by: op.clone() }, UnixMs(now))),
            Op::Rollback => {
                resumed = true;
                drop(r.handle(Input::Rollback { by: op.clone() }, UnixMs(now)));
            }
            Op::Approve { wave } => drop(r.handle(Input::Approve { wave: usize::from(wave) % 6, by: op.clone() }, UnixMs(now))),
            Op::Verdict { wave, pass } => drop(r.handle(Input::Verdict { wave: usize::from(wave) % 6, pass, by: op.clone() }, UnixMs(now))),
            Op::Join { n } => drop(r.handle(Input::Join(Box::new(f.fleet[usize::from(n) % f.fleet.len()].clone())), UnixMs(now))),
            Op::Leave { n } => drop(r.handle(Input::Leave { device_id: f.fleet[usize::from(n) % f.fleet.len()].device_id.clone() }, UnixMs(now))),
        }
        let sent = drain(&mut r, &mut out, &mut trail);
        if paused && !resumed {
            assert_eq!(sent, 0, "a paused rollout sent commands");
        }
        if let Some(m) = spec.pacing.max_in_flight {
            assert!(r.in_flight() <= m);
        }
        let s = r.status();
        let ws = spec.all_waves();
        for (before, w) in s.waves.iter().zip(s.waves.iter().skip(1)) {
            if let Some(opened) = w.opened_at {
                let done = before.completed_at.expect("a wave opened before the one before completed");
                assert!(opened >= done + ws[w.index].min_soak_ms);
                match ws[w.index].gate {
                    Gate::Approval => assert!(w.approved),
                    Gate::External => assert_eq!(w.verdict, Some(true)),
                    _ => {}
                }
            }
        }
    }
    ota_core::audit::verify(&trail).expect("the trail verifies");
    let replayed = Rollout::replay(create(spec), &trail).expect("the trail replays");
    assert!(replayed.same_state(&r), "the replay differs from the live rollout");
    let snap = Snapshot::from_json(r.snapshot().to_json().as_bytes(), &Limits::DEFAULT)
        .expect("the snapshot parses");
    let restored = Rollout::restore(snap, &f.pkg, Some(&f.rb)).expect("the snapshot restores");
    assert!(restored.same_state(&r), "the restored rollout differs");
    ota_core::audit::verify_with_head(&trail, &r.audit_head()).expect("the trail ends at its head");
    // Stored as lines and read back, it is the same trail.
    let text: String = trail.iter().map(|a| a.to_json() + "\n").collect();
    let read = ota_core::audit::parse_lines(&text).expect("the stored trail reads back");
    assert!(read == trail, "the trail read back differs");
});
