//! The operator: creates the rollout through the API, watches its live event stream and
//! says what happens, approves a wave a gate holds, and — when the halt rule has paused the
//! rollout and nothing is in flight any more — rolls the updated devices back.
//!
//! The plan keeps the counts independent of timing: every device of an opened wave is sent
//! at once (no pacing), devices in flight finish when the rollout pauses, the threshold is a
//! share of the wave's scheduled devices (it trips on the same failure whatever the order of
//! the reports), and the cohorts are salted with the seed.

use std::collections::BTreeMap;
use std::time::Duration;

use ota_core::rollout::{Event, HaltReason, HaltScope};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::server::{Api, OPERATOR};
use super::stream::{Message, Progress};
use super::{Live, NAME, NEW, OLD};
use crate::out::CliError;

/// A rollback of at most this many devices, like the canary, shows every device's steps;
/// larger waves show only the devices that did not come up, and a count of the rest.
const LISTED_WAVE: u64 = 20;

/// How long the operator watches before calling the rollout stuck.
const PATIENCE: Duration = Duration::from_secs(600);

/// How long a rollout event waits for the device lines published just after it.
const SETTLE: Duration = Duration::from_millis(50);

/// The progress steps in the order a device goes through them, and how each is said; a step
/// that arrives after a later one of the same device (they are sent concurrently) is not
/// said again out of order.
const STEPS: [(&str, &str); 4] = [
    (
        "downloading",
        "assigned · fetching chunks in any order, verifying each",
    ),
    (
        "verified",
        "verified every chunk · installed in the inactive slot",
    ),
    ("swapped", "swapped"),
    ("probing", "probing"),
];

/// The operator of one rollout.
pub(super) struct Operator {
    api: Api,
    /// The rollout.
    pub rollout_id: String,
    /// Its waves, the canary included.
    pub waves: usize,
    open_wave: usize,
    /// Devices in the wave being shown.
    wave_devices: u64,
    /// The rollback began.
    rolling_back: bool,
    /// The rollout paused, and the operator has not rolled back yet.
    paused: bool,
    /// The operator asked for the rollback.
    pub rolled_back: bool,
    /// Devices that succeeded quietly since the last line about them.
    quiet: u64,
    /// Why the halt rule tripped, as the transcript said it.
    pub halted: Option<String>,
    /// Every device's last step said (its rank in [`STEPS`]).
    said: BTreeMap<String, usize>,
}

impl Operator {
    /// Creates the rollout over `profile` and says where it stands.
    pub async fn create(
        live: &mut Live<'_>,
        api: &Api,
        profile: &str,
    ) -> Result<Operator, CliError> {
        let a = live.args;
        let spec = json!({
            "package_id": live.new.package.id(),
            "target_profile_id": profile,
            "canary_percent": a.canary,
            "waves": [
                {"percent": 30, "success_gate_percent": 90},
                {"percent": 100, "success_gate_percent": 90},
            ],
            "failure_threshold_percent": a.threshold,
            "halt": {"scope": "wave", "denominator": "scheduled", "action": "pause"},
            "rollback_package_id": live.old.package.id(),
            "in_flight": "finish",
            "salt": format!("plant-7-seed-{}", a.seed),
        });
        let v = api
            .call("POST", "/api/v1/ota/rollouts", Some(&spec))
            .await?;
        let rollout_id = v["rollout_id"]
            .as_str()
            .ok_or_else(|| {
                CliError::usage(format!("POST /api/v1/ota/rollouts: no rollout_id in {v}"))
            })?
            .to_string();
        let status = api
            .call("GET", &format!("/api/v1/ota/rollouts/{rollout_id}"), None)
            .await?;
        let reasons: BTreeMap<String, u64> =
            serde_json::from_value(status["incompatible_reasons"].clone()).unwrap_or_default();
        let incompatible: u64 = reasons.values().sum();
        let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        live.say.line(format!(
            "fleet       {} line cameras at plant-7 registered · {} eligible · {incompatible} incompatible ({})",
            a.devices,
            status["eligible"],
            if reasons.is_empty() { "none".into() } else { reasons.join(", ") }
        ));
        live.say.line(format!(
            "rollout — {NAME}@{NEW} → plant-7 (canary {}%, halt above {}% failed) · {rollout_id}",
            a.canary, a.threshold
        ));
        Ok(Operator {
            api: api.clone(),
            rollout_id,
            waves: status["waves"].as_array().map_or(0, Vec::len),
            open_wave: 0,
            wave_devices: 0,
            rolling_back: false,
            paused: false,
            rolled_back: false,
            quiet: 0,
            halted: None,
            said: BTreeMap::new(),
        })
    }

    /// Watches the stream until the rollout is over: `Ok(true)`, or `Ok(false)` when it did
    /// not end within the operator's patience.
    ///
    /// The server publishes a report's progress right after the rollout events the report
    /// caused (a wave opening, the halt, the end), so a rollout event is held for a moment
    /// and the device lines that arrive meanwhile are said first: the transcript shows the
    /// device whose report tripped the halt rule before the halt.
    pub async fn watch(
        &mut self,
        live: &mut Live<'_>,
        mut rx: UnboundedReceiver<Message>,
    ) -> Result<bool, CliError> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Message::Rollout(e)) => {
                        // Held for a moment: the final reports that arrive meanwhile are said
                        // first, the other steps after the events.
                        let mut held = vec![e];
                        let mut steps = Vec::new();
                        let mut closed = None;
                        let until = tokio::time::Instant::now() + SETTLE;
                        while let Ok(m) = tokio::time::timeout_at(until, rx.recv()).await {
                            match m {
                                Some(Message::Rollout(e)) => held.push(e),
                                Some(Message::Progress(p)) if p.status == "in_progress" => {
                                    steps.push(p);
                                }
                                Some(Message::Progress(p)) => self.progress(live, p),
                                Some(Message::Closed(why)) => {
                                    closed = Some(why);
                                    break;
                                }
                                None => {
                                    closed = Some("the event stream stopped".into());
                                    break;
                                }
                            }
                        }
                        for e in held {
                            if self.event(live, e).await? {
                                self.flush(live);
                                return Ok(true);
                            }
                        }
                        for p in steps {
                            self.progress(live, p);
                        }
                        if let Some(why) = closed {
                            return Err(CliError::usage(why));
                        }
                    }
                    Some(Message::Progress(p)) => self.progress(live, p),
                    Some(Message::Closed(why)) => return Err(CliError::usage(why)),
                    None => return Err(CliError::usage("the event stream stopped")),
                },
                _ = tick.tick() => {
                    if tokio::time::Instant::now() > deadline {
                        self.flush(live);
                        live.say.line(format!(
                            "the rollout did not end within {} s", PATIENCE.as_secs()
                        ));
                        return Ok(false);
                    }
                    if self.paused && !self.rolled_back {
                        self.maybe_roll_back(live).await?;
                    }
                }
            }
        }
    }

    /// Once the paused rollout has nothing in flight, rolls the updated devices back.
    async fn maybe_roll_back(&mut self, live: &mut Live<'_>) -> Result<(), CliError> {
        let path = format!("/api/v1/ota/rollouts/{}", self.rollout_id);
        let status = self.api.call("GET", &path, None).await?;
        let n = |s: &str| status["devices"][s].as_u64().unwrap_or(0);
        if n("sent") + n("in_progress") > 0 {
            return Ok(());
        }
        self.flush(live);
        live.say.line(format!(
            "operator {OPERATOR}: roll back the {} updated device(s) to {OLD}",
            n("succeeded")
        ));
        self.rolled_back = true;
        self.paused = false;
        self.api
            .call("POST", &format!("{path}/rollback"), None)
            .await?;
        Ok(())
    }

    /// Says what an event means, and acts on it; true when the rollout is over.
    async fn event(&mut self, live: &mut Live<'_>, e: Event) -> Result<bool, CliError> {
        self.flush(live);
        let say = &mut live.say;
        match e {
            Event::WaveOpened { wave, devices } => {
                self.open_wave = wave;
                self.wave_devices = devices;
                let what = if wave == 0 { " canary" } else { "" };
                say.line(format!(
                    "wave {}/{} → {devices} devices{what}",
                    wave + 1,
                    self.waves
                ));
            }
            Event::GateBlocked {
                wave,
                success_percent,
            } => {
                say.line(format!(
                    "wave {} held: {success_percent:.1}% succeeded so far, below its gate",
                    wave + 1
                ));
                self.approve(live, wave).await?;
            }
            Event::GateWaiting { wave, .. } => {
                say.line(format!("wave {} waits for an approval", wave + 1));
                self.approve(live, wave).await?;
            }
            Event::Halted { reason } => {
                let why = self.halt(&reason);
                say.line(format!("halt rule tripped — {why}"));
                self.halted = Some(why);
            }
            Event::Paused { .. } => {
                self.paused = true;
                say.line("rollout paused                              halted".to_string());
            }
            Event::RollingBack { devices } => {
                self.rolling_back = true;
                self.wave_devices = devices;
                say.line(format!("rolling back {devices} device(s) to {OLD}"));
            }
            Event::RolledBack { devices } => {
                say.line(format!("rolled back {devices} device(s) to {OLD}"));
            }
            Event::Completed { .. } => {
                say.line(format!(
                    "rollout {}",
                    if self.rolled_back {
                        "closed after the rollback"
                    } else {
                        "completed through every wave"
                    }
                ));
                return Ok(true);
            }
            Event::Aborted => {
                say.line("rollout aborted".to_string());
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    async fn approve(&mut self, live: &mut Live<'_>, wave: usize) -> Result<(), CliError> {
        live.say
            .line(format!("operator {OPERATOR}: approve wave {}", wave + 1));
        self.api
            .call(
                "POST",
                &format!(
                    "/api/v1/ota/rollouts/{}/waves/{wave}/approve",
                    self.rollout_id
                ),
                None,
            )
            .await?;
        Ok(())
    }

    /// Says what a device reported: every step in the canary and a small rollback; in larger
    /// waves only the devices that did not come up.
    fn progress(&mut self, live: &mut Live<'_>, p: Progress) {
        let listed = if self.rolling_back {
            self.wave_devices <= LISTED_WAVE
        } else {
            self.open_wave == 0
        };
        let what = if self.rolling_back {
            format!(" rollback {OLD}")
        } else {
            String::new()
        };
        let id = p.device_id.clone();
        let line = |s: &str| format!("{id:<18}{what} {s}");
        let mut lines: Vec<String> = Vec::new();
        match (p.status.as_str(), p.step.as_deref()) {
            ("in_progress", step) => {
                // The report that starts an update carries no step: it is the download's.
                let step = step.unwrap_or("downloading");
                let rank = STEPS.iter().position(|(s, _)| *s == step);
                let before = self.said.get(&id).copied();
                if let Some(r) = rank
                    && before.is_none_or(|b| r > b)
                {
                    self.said.insert(id.clone(), r);
                    lines.push(line(STEPS[r].1));
                }
            }
            ("success", _) => {
                self.said.remove(&id);
                if !listed {
                    self.quiet += 1;
                }
                let v = p.firmware_version.as_deref().unwrap_or("?");
                lines.push(line(&format!("healthy · runs {v}")));
            }
            ("failure", _) => {
                self.said.remove(&id);
                let reason = p.reason.as_deref().unwrap_or("failed");
                lines.push(line(&format!("{reason}   rolling back")));
                if let Some(running) = &p.firmware_version {
                    lines.push(format!(
                        "{id:<18} restored {running}                                   recovered"
                    ));
                }
            }
            (status, _) => {
                self.said.remove(&id);
                lines.push(line(&format!(
                    "{status}: {}",
                    p.reason.as_deref().unwrap_or("no reason given")
                )));
            }
        }
        let bad = matches!(p.status.as_str(), "failure" | "rejected");
        if listed || bad {
            for l in lines {
                live.say.line(l);
            }
        }
    }

    /// The halt rule's reason, its waves counted from 1 as the transcript does.
    fn halt(&self, reason: &HaltReason) -> String {
        match reason {
            HaltReason::Threshold {
                scope,
                failures,
                of,
                threshold_percent,
                ..
            } => {
                let pct = if *of == 0 {
                    100.0
                } else {
                    *failures as f64 * 100.0 / *of as f64
                };
                let scope = match scope {
                    HaltScope::Wave { wave: 0 } => "the canary".to_string(),
                    HaltScope::Wave { wave } => format!("wave {}/{}", wave + 1, self.waves),
                    _ => "the rollout".to_string(),
                };
                format!(
                    "{failures} of {of} device(s) failed in {scope} ({pct:.1}%, above {threshold_percent}%)"
                )
            }
            other => other.to_string(),
        }
    }

    /// Says how many devices of a large wave came up quietly.
    fn flush(&mut self, live: &mut Live<'_>) {
        if self.quiet == 0 {
            return;
        }
        let what = if self.rolling_back {
            format!(" rollback {OLD}")
        } else {
            String::new()
        };
        live.say.line(format!(
            "… {} more device(s){what} verified · swapped · healthy",
            self.quiet
        ));
        self.quiet = 0;
    }
}

/// A JSON number or zero.
pub(super) fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}
