//! The control plane of the demo: the drive loop over the rollout's one output queue — each
//! audit record appended to the trail before the commands and events it caused are acted on —
//! and the devices it commands.

use ota_core::UnixMs;
use ota_core::assignment::Assignment;
use ota_core::name::Name;
use ota_core::report::ReportStatus;
use ota_core::rollout::{DeviceState, Input, Output, RolloutCommand, RolloutState};

use super::device::{Device, Run};
use super::setup::name;
use super::transcript::device_lines;
use super::{Demo, LISTED_WAVE};
use crate::demo::OLD;
use crate::out::CliError;

impl Demo<'_> {
    /// Drives the rollout to its end.
    pub(super) fn run(&mut self) -> Result<(), CliError> {
        for _ in 0..100_000 {
            self.interrupted()?;
            let commands = self.drain();
            if !commands.is_empty() {
                self.dispatch(commands)?;
                continue;
            }
            match self.rollout.state() {
                RolloutState::Completed | RolloutState::Aborted => break,
                RolloutState::Paused if !self.rolled_back => {
                    self.rolled_back = true;
                    let updated = self
                        .rollout
                        .status()
                        .devices
                        .get(&DeviceState::Succeeded)
                        .copied()
                        .unwrap_or(0);
                    self.say(format!(
                        "operator alice: roll back the {updated} updated device(s) to {OLD}"
                    ));
                    self.now = self.now + 60_000;
                    let by = name("alice")?;
                    self.rollout
                        .handle(Input::Rollback { by }, self.now)
                        .map_err(|e| CliError::failure(Some(e.status()), e))?;
                    continue;
                }
                _ => {}
            }
            match self.rollout.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.rollout
                        .handle(Input::Tick, self.now)
                        .map_err(|e| CliError::failure(Some(e.status()), e))?;
                }
                // Held by a success gate: the operator looks, and lets the next wave go.
                None if self.rollout.state() == RolloutState::Active
                    && self.approved <= self.open_wave
                    && self.open_wave + 1 < self.waves =>
                {
                    let wave = self.open_wave + 1;
                    self.approved = wave;
                    self.say(format!("operator alice: approve wave {}", wave + 1));
                    let by = name("alice")?;
                    self.rollout
                        .handle(Input::Approve { wave, by }, self.now)
                        .map_err(|e| CliError::failure(Some(e.status()), e))?;
                }
                None => break,
            }
        }
        let left = self.drain();
        if !left.is_empty() {
            self.dispatch(left)?;
        }
        Ok(())
    }

    /// Fails once SIGINT or SIGTERM has come, or stdout has gone.
    pub(super) fn interrupted(&self) -> Result<(), CliError> {
        if self.stop.stopped() {
            return Err(CliError::usage("interrupted by a signal"));
        }
        if crate::out::stdout_gone() {
            return Err(crate::out::stdout_gone_error());
        }
        Ok(())
    }

    /// Takes the rollout's outputs in order: each audit record to the trail, each event to
    /// the transcript, and the commands, returned to be carried out after their record.
    fn drain(&mut self) -> Vec<RolloutCommand> {
        let mut commands = Vec::new();
        while let Some(o) = self.rollout.poll() {
            match o {
                Output::Audit(rec) => self.trail.push(*rec),
                Output::Event(e) => {
                    if let Some(line) = self.event_line(&e) {
                        self.say(line);
                    }
                }
                Output::Command(c) => commands.push(c),
                _ => {}
            }
        }
        commands
    }

    /// Each device sent a command runs its update; reports go back in the order they finish.
    fn dispatch(&mut self, commands: Vec<RolloutCommand>) -> Result<(), CliError> {
        let start = self.now;
        // Every device of the canary and of a small rollback is shown; in larger waves only the
        // failures are, and a count of the rest.
        let listed = if self.rolled_back {
            commands.len() <= LISTED_WAVE
        } else {
            self.open_wave == 0
        };
        let mut finished: Vec<(UnixMs, String, Run, bool)> = Vec::new();
        let mut later = Vec::new();
        for c in commands {
            let RolloutCommand::Send {
                device_id,
                rollback,
                ..
            } = c
            else {
                continue;
            };
            self.interrupted()?;
            let run = self.update(&device_id, rollback, start)?;
            finished.push((start + run.took_ms, device_id.to_string(), run, rollback));
        }
        finished.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut quiet = 0usize;
        for (at, id, run, rollback) in &finished {
            let ok = run
                .reports
                .last()
                .is_some_and(|r| r.status == ReportStatus::Success);
            if listed || !ok {
                for line in device_lines(id, run, *rollback) {
                    self.say(line);
                }
            } else {
                quiet += 1;
            }
            for r in &run.reports {
                // A late report is recorded and changes nothing; none is refused here.
                let _ = self.rollout.handle(Input::Report(r.clone()), *at);
            }
            self.now = self.now.max(*at);
            if listed {
                later.extend(self.drain());
            }
        }
        if quiet > 0 {
            let rollback = finished.first().is_some_and(|f| f.3);
            let what = if rollback {
                format!(" rollback {OLD}")
            } else {
                String::new()
            };
            self.say(format!(
                "… {quiet} more device(s){what} verified · swapped   healthy"
            ));
        }
        later.extend(self.drain());
        if !later.is_empty() {
            self.dispatch(later)?;
        }
        Ok(())
    }

    /// Runs one device's update (or rollback) on the simulated device.
    fn update(&mut self, id: &Name, rollback: bool, start: UnixMs) -> Result<Run, CliError> {
        let key = id.to_string();
        if !self.devices.contains_key(&key) {
            let profile = self
                .fleet
                .iter()
                .find(|d| &d.device_id == id)
                .cloned()
                .ok_or_else(|| {
                    CliError::usage(format!("the rollout sent to an unknown device {id}"))
                })?;
            let trusted = [self.signer.public_key()].into_iter().collect();
            let healthy = !self.bad.get(&key).copied().unwrap_or(false);
            let dir = self.work.join("devices").join(&key);
            let d = Device::new(
                profile,
                healthy,
                &dir,
                &self.old_engine,
                trusted,
                start.get(),
            )
            .map_err(|e| CliError::io(&dir, e))?;
            self.devices.insert(key.clone(), d);
        }
        let p = if rollback { &self.old } else { &self.new };
        let Some(device) = self.devices.get_mut(&key) else {
            return Err(CliError::usage(format!("device {id} vanished")));
        };
        let assignment = Assignment::new(&p.package, p.key.clone(), Some(name("rol_demo")?), None)
            .ok_or_else(|| {
                CliError::usage("the demo's package was verified without its envelope")
            })?;
        let comes_up = rollback || device.healthy;
        let run = device.update(
            assignment,
            &p.artifact,
            &mut self.net,
            start.get(),
            comes_up,
        );
        self.totals.delivered += run.traffic.delivered;
        self.totals.corrupted += run.traffic.corrupted;
        self.totals.dropped += run.traffic.lost;
        self.totals.restored += usize::from(run.restored);
        self.totals.probe_failures += usize::from(run.probe.as_ref().is_some_and(|(ok, _)| !ok));
        // A device that refused its assignment, or never answered, shows the demo is broken
        // (a failed probe is the demo working).
        let answered = run
            .reports
            .last()
            .is_some_and(|r| matches!(r.status, ReportStatus::Success | ReportStatus::Failure));
        self.totals.broken += usize::from(!answered);
        Ok(run)
    }
}
