//! Carrying out the core agent's outputs: the record persisted, reports queued and sent, the
//! swap, the probe, the restore and the reboot, and what a final report says the update came
//! to.

use super::*;

impl Daemon {
    pub(super) async fn run_probe(&mut self, spec: ProbeSpec, swapped_at: UnixMs) -> ProbeResult {
        self.step("probing").await;
        let expected = self.current.as_ref().map(label);
        match self.io.slots.active_label() {
            Ok(active) if active == expected => {}
            Ok(active) => {
                return ProbeResult {
                    healthy: false,
                    detail: format!(
                        "the running slot holds {}, not the new version",
                        active.map_or("nothing installed by the agent".into(), |l| l
                            .version
                            .to_string())
                    ),
                };
            }
            Err(e) => {
                return ProbeResult {
                    healthy: false,
                    detail: e.to_string(),
                };
            }
        }
        let allow = self.config.exec_allowlist.clone();
        let at = system_time(swapped_at);
        tokio::task::spawn_blocking(move || ota_host::probe::run(&spec, &allow, at))
            .await
            .unwrap_or_else(|e| ProbeResult {
                healthy: false,
                detail: format!("the probe runner failed: {e}"),
            })
    }

    /// A progress step for the live view, sent once per update, in order, best effort (a
    /// step the server does not take in time is skipped).
    pub(super) async fn step(&mut self, step: &'static str) {
        if !self.steps.insert(step) {
            return;
        }
        let Some(u) = &self.current else { return };
        let Some(rollout_id) = u.assignment.rollout_id.clone() else {
            return;
        };
        let report = DeviceReport {
            device_id: self.config.device_id().clone(),
            rollout_id: Some(rollout_id),
            firmware_version: self.agent.record().installed.get(&u.name).cloned(),
            status: ReportStatus::InProgress,
            reason: None,
            attempt: u.assignment.attempt,
        };
        // In order after the report that started the update: only when nothing waits.
        if self.outbox.is_empty()
            && let Err(e) = self.client.report_step(&report, step).await
        {
            tracing::debug!(device = %self.config.device_id(), step, error = %e, "step not reported");
        }
    }

    /// Carries out one output of the agent. Each step is idempotent, so that an output whose
    /// step failed part way is carried out again whole.
    pub(super) async fn carry_out(&mut self, out: &Output) -> Result<(), DaemonError> {
        match out {
            Output::Persist(record) => {
                if record.state == AgentState::Committed {
                    // Before the record says committed: a restart after it reports the
                    // success without asking the bootloader again.
                    self.io.slots.confirm()?;
                }
                if matches!(
                    record.state,
                    AgentState::Failed
                        | AgentState::RollingBack
                        | AgentState::Restored
                        | AgentState::Idle
                ) {
                    // The download is over: staging is freed before the record is written,
                    // which a full disk (staging's doing) would otherwise refuse for good.
                    self.io.clear_staging()?;
                }
                self.state.save_record(record)?;
                if let Some(u) = &record.update {
                    self.current = Some(u.clone());
                }
                match record.state {
                    AgentState::Installed => self.step("installed").await,
                    AgentState::Idle => {
                        self.current = None;
                        self.steps.clear();
                        self.bad.clear();
                        self.pending.clear();
                        self.refresh_running()?;
                    }
                    _ => {}
                }
            }
            Output::Fetch(req) => self.pending.push_back(*req),
            Output::Swap { to } => {
                let l = self.current_label()?;
                check_label(&l, to)?;
                if self.reboot_pending || self.io.slots.swap(&l)? == Switched::NeedsReboot {
                    return self.reboot();
                }
                self.refresh_running()?;
                self.agent.handle(Input::Swapped, now(), &mut self.io)?;
                self.step("swapped").await;
            }
            Output::Probe { spec, swapped_at } => self.probe = Some((spec.clone(), *swapped_at)),
            Output::RestorePrevious { from } => {
                let l = self.current_label()?;
                check_label(&l, from)?;
                if self.reboot_pending || self.io.slots.restore(&l)? == Switched::NeedsReboot {
                    return self.reboot();
                }
                self.refresh_running()?;
                self.agent.handle(Input::Restored, now(), &mut self.io)?;
            }
            Output::Report(r) => {
                if !store::enqueue(&mut self.outbox, r) {
                    // The same report waits already, last (the answer to an assignment sent
                    // again while the server refuses reports).
                    self.note(r);
                    return Ok(());
                }
                if let Err(e) = self.state.save_outbox(&self.outbox) {
                    // Not kept: the report is queued again when its output is retried.
                    self.outbox.pop();
                    return Err(e);
                }
                self.note(r);
                if let Err(e) = self.flush_outbox().await {
                    tracing::debug!(device = %self.config.device_id(), error = %e, "report kept for later");
                }
            }
            other => {
                tracing::warn!(device = %self.config.device_id(), output = ?other, "unknown agent output");
            }
        }
        Ok(())
    }

    /// Reboots into the slot just switched to; answers [`DaemonError::Rebooting`], or why the
    /// reboot command failed. Until this process ends, a swap or restore carried out again
    /// reboots again: before the reboot, the slots cannot tell the new slot not booted yet from
    /// a bootloader that fell back.
    fn reboot(&mut self) -> Result<(), DaemonError> {
        self.reboot_pending = true;
        self.io.slots.reboot()?;
        Err(DaemonError::Rebooting)
    }

    fn current_label(&self) -> Result<SlotLabel, DaemonError> {
        self.current.as_ref().map(label).ok_or(DaemonError::Stuck {
            state: self.agent.state(),
        })
    }

    /// What a final report says the update came to.
    fn note(&mut self, r: &DeviceReport) {
        let reason = r.reason.clone().unwrap_or_default();
        let Some(u) = &self.current else {
            if r.status == ReportStatus::Rejected {
                self.outcome = Some(Cycle::Rejected { reason });
            }
            return;
        };
        let (name, version) = (u.name.clone(), u.version.clone());
        self.outcome = match r.status {
            ReportStatus::Success => Some(Cycle::Updated {
                name,
                version,
                previous: u.previous.clone(),
            }),
            ReportStatus::Failure if u.swapped => Some(Cycle::RolledBack {
                name,
                version,
                running: r.firmware_version.clone(),
                reason,
            }),
            ReportStatus::Failure => Some(Cycle::Failed {
                name,
                version,
                reason,
            }),
            ReportStatus::Rejected => Some(Cycle::Rejected { reason }),
            _ => self.outcome.take(),
        };
    }
}
