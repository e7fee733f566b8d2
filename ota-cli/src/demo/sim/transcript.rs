//! What the demo says: the live transcript (events and device lines, in the style of seed
//! 000) and the summary, checked against the devices' own slots.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ota_core::Sha256Digest;
use ota_core::audit;
use ota_core::rollout::{DeviceState as S, Event};
use serde_json::json;

use super::Demo;
use super::device::Run;
use crate::demo::{NEW, OLD};
use crate::out::{self, Outcome};

impl Demo<'_> {
    pub(super) fn say(&mut self, line: String) {
        if !self.out.json {
            crate::out::progress(&line);
        }
        self.transcript.push(line);
    }

    /// The transcript line of an event, if it has one.
    pub(super) fn event_line(&mut self, e: &Event) -> Option<String> {
        match e {
            Event::WaveOpened { wave, devices } => {
                self.open_wave = *wave;
                let what = if *wave == 0 { " canary" } else { "" };
                Some(format!(
                    "wave {}/{} → {devices} devices{what}",
                    wave + 1,
                    self.waves
                ))
            }
            Event::GateBlocked { wave, .. } => Some(format!("wave {wave} waits: gate blocked")),
            Event::GateWaiting { wave, .. } => Some(format!("wave {wave} waits: gate waiting")),
            Event::Halted { reason } => Some(format!("halt rule tripped — {reason}")),
            Event::Paused { .. } => {
                Some("rollout paused                              halted".to_string())
            }
            Event::RollingBack { devices } => {
                Some(format!("rolling back {devices} device(s) to {OLD}"))
            }
            Event::RolledBack { devices } => {
                Some(format!("rolled back {devices} device(s) to {OLD}"))
            }
            Event::Completed { .. } => Some(format!(
                "rollout {}",
                if self.rolled_back {
                    "closed after the rollback"
                } else {
                    "completed through every wave"
                }
            )),
            Event::Started { .. }
            | Event::Approved { .. }
            | Event::Verdict { .. }
            | Event::Resumed => None,
            other => Some(format!("event {}", other.kind())),
        }
    }

    /// The summary, checked against the devices' own slots.
    pub(super) fn finish(self, wall_s: f64, kept: Option<&PathBuf>) -> Outcome {
        let status = self.rollout.status();
        let count = |s: S| status.devices.get(&s).copied().unwrap_or(0);
        // Measured: every device the rollout touched runs a whole version.
        let (mut on_new, mut on_old, mut down) = (0u64, 0u64, 0u64);
        for d in self.devices.values() {
            match d.active_slot().map(|b| Sha256Digest::of(&b)) {
                Ok(h) if h == self.new.plaintext_sha256 => on_new += 1,
                Ok(h) if h == self.old.plaintext_sha256 => on_old += 1,
                _ => down += 1,
            }
        }
        let head = status.audit_head;
        let audit = audit::verify_with_head(&self.trail, &head);
        let broken = self.totals.broken;
        let ok = down == 0 && broken == 0;
        let trail_file = self.work.join("audit.jsonl");
        let lines: String = self.trail.iter().map(|r| r.to_json() + "\n").collect();
        let _ = out::write_atomic(&trail_file, lines.as_bytes(), false);
        let reasons: BTreeMap<String, u64> = status
            .incompatible_reasons
            .iter()
            .map(|(r, n)| (r.to_string(), *n))
            .collect();
        let eligible = status.eligible;
        let summary = json!({
            "seed": self.args.seed,
            "devices": self.fleet.len(),
            "eligible": eligible,
            "incompatible": count(S::Incompatible),
            "incompatible_by_reason": reasons,
            "succeeded": count(S::Succeeded),
            "failed": count(S::Failed),
            "timed_out": count(S::TimedOut),
            "restored": self.totals.restored,
            "rolled_back": count(S::RolledBack),
            "never_sent": eligible.saturating_sub(self.devices.len() as u64),
            "fleet_impact": status.fleet_impact,
            "measured": {"on_new": on_new, "on_previous": on_old, "down": down},
            "rollout": status.status.as_str(),
            "halt_reason": status.halt_reason,
            "chunks": {"delivered": self.totals.delivered, "corrupted_refetched": self.totals.corrupted,
                       "lost_refetched": self.totals.dropped},
            "broken": broken,
            "audit": {"records": self.trail.len(), "verified": audit.is_ok()},
        });
        let mut t = String::new();
        t.push_str(&format!(
            "fleet impact: {down} devices down\n\nsummary (seed {})\n",
            self.args.seed
        ));
        let rows: Vec<(String, String)> = vec![
            ("devices".into(), self.fleet.len().to_string()),
            ("eligible".into(), eligible.to_string()),
            ("incompatible".into(), count(S::Incompatible).to_string()),
        ];
        let mut rows = rows;
        for (r, n) in &reasons {
            rows.push((format!("  {r}"), n.to_string()));
        }
        rows.extend([
            ("succeeded".into(), count(S::Succeeded).to_string()),
            ("failed".into(), (count(S::Failed) + count(S::TimedOut)).to_string()),
            ("restored (probe failed)".into(), self.totals.restored.to_string()),
            ("rolled back".into(), count(S::RolledBack).to_string()),
            ("never sent".into(), eligible.saturating_sub(self.devices.len() as u64).to_string()),
            ("rollout".into(), format!("{}{}", status.status.as_str(), if self.rolled_back { " (rolled back)" } else { "" })),
            ("fleet impact".into(), format!("{} devices down (measured: {on_new} on {NEW}, {on_old} on {OLD}, {down} on neither)", status.fleet_impact)),
            ("chunks".into(), format!("{} delivered, {} corrupt and {} lost, all fetched again", self.totals.delivered, self.totals.corrupted, self.totals.dropped)),
            ("broken devices".into(), broken.to_string()),
            ("audit trail".into(), format!("{} records, chain {}, head {head}", self.trail.len(), if audit.is_ok() { "verified" } else { "BROKEN" })),
        ]);
        for (k, v) in rows {
            t.push_str(&format!("  {k:<26} {v}\n"));
        }
        t.push_str(&format!("  {:<26} {:.1} s\n", "wall time", wall_s));
        if let Some(dir) = kept {
            t.push_str(&format!(
                "\nkept in {}: try `ota audit verify {} --head {head}`",
                dir.display(),
                trail_file.display()
            ));
        }
        // The head hashes device reports that name the working directory: it is kept out of the
        // summary, which a seed fixes.
        let json = json!({"ok": ok, "summary": summary, "audit_head": head.to_string(), "transcript": self.transcript, "wall_seconds": wall_s});
        if ok {
            Outcome::ok(t, json)
        } else {
            Outcome::failed(t, json)
        }
    }
}

/// The transcript lines for one device's update.
pub(super) fn device_lines(id: &str, run: &Run, rollback: bool) -> Vec<String> {
    let mut extra = Vec::new();
    if run.traffic.corrupted > 0 {
        extra.push(format!("{} corrupt", run.traffic.corrupted));
    }
    if run.traffic.lost > 0 {
        extra.push(format!("{} lost", run.traffic.lost));
    }
    let fetched = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({}: fetched again)", extra.join(", "))
    };
    let what = if rollback {
        format!(" rollback {OLD}")
    } else {
        String::new()
    };
    let last = run.reports.last();
    let mut lines = Vec::new();
    match (run.swapped, &run.probe, run.restored) {
        (true, Some((true, _)), false) => {
            lines.push(format!(
                "{id:<18}{what} verified {} chunks{fetched} · swapped   healthy",
                run.chunks
            ));
        }
        (true, Some(_), _) => {
            lines.push(format!("{id:<18}{what} verified {} chunks{fetched} · swapped   probe failed   rolling back", run.chunks));
            if run.restored {
                lines.push(format!(
                    "{id:<18} restored {OLD}                                   recovered"
                ));
            }
        }
        _ => {
            let reason = last
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "no report".into());
            let status = last.map_or("silent", |r| r.status.as_str());
            lines.push(format!("{id:<18}{what} {status}: {reason}"));
        }
    }
    lines
}
