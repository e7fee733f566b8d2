//! The plant: each line camera registered through the API (its credential issued once), and
//! each run as a real agent with its own state directory, A/B slots and health probe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_agent::{Config, Daemon, SlotsConfig};
use ota_core::probe::{ProbePolicy, ProbeSpec};
use ota_core::sign::PublicKey;
use ota_core::{DeviceProfile, Sha256Digest};
use serde_json::Value;
use tokio::task::JoinSet;

use super::server::Api;
use crate::demo::publisher::Packed;
use crate::out::{self, CliError};

/// The engine's file name in a slot.
const ENGINE: &str = "yolo-v8n.engine";
/// The application's health check on a device where the model comes up: the engine is in the
/// active slot (`test -s`).
const HEALTH_CHECK: &str = "/usr/bin/test";
/// The application's health check on a device where the model will not come up.
const BROKEN_CHECK: &str = "/bin/false";

/// How long the agents have to stop once asked.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// One device of the plant.
pub(super) struct Device {
    /// Its id.
    pub id: String,
    /// What it says about itself.
    pub profile: DeviceProfile,
    /// The credential the server issued when it was registered.
    pub credential: String,
    /// Whether the new model comes up on it (its probe passes).
    pub healthy: bool,
    /// Its own directory: state, slots, credential.
    pub dir: PathBuf,
}

/// Registers the profile `profile_id` and every device of `plant` under it; each device's
/// directory is `root/<device id>`.
pub(super) async fn register(
    api: &Api,
    profile_id: &str,
    plant: &[DeviceProfile],
    healthy: &[bool],
    root: &Path,
) -> Result<Vec<Device>, CliError> {
    api.call(
        "PUT",
        &format!("/api/v1/ota/profiles/{profile_id}"),
        Some(&serde_json::json!({"description": "line cameras at plant-7"})),
    )
    .await?;
    let mut devices = Vec::with_capacity(plant.len());
    for (profile, healthy) in plant.iter().zip(healthy) {
        let id = profile.device_id.to_string();
        let mut body = serde_json::to_value(profile)
            .map_err(|e| CliError::usage(format!("device {id}: {e}")))?;
        body["profile_id"] = Value::String(profile_id.to_string());
        let v = api
            .call("PUT", &format!("/api/v1/devices/{id}"), Some(&body))
            .await?;
        let credential = v["credential"]
            .as_str()
            .ok_or_else(|| CliError::usage(format!("PUT /api/v1/devices/{id}: no credential")))?
            .to_string();
        devices.push(Device {
            dir: root.join(&id),
            id,
            profile: profile.clone(),
            credential,
            healthy: *healthy,
        });
    }
    Ok(devices)
}

/// The running agents.
pub(super) struct Fleet {
    tasks: JoinSet<Result<(), String>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Fleet {
    /// Starts one agent per device against `base`, each trusting `publisher`, running
    /// `running` (the engine in its active slot), polling every `poll_ms`.
    pub fn start(
        devices: &[Device],
        base: &str,
        publisher: &PublicKey,
        running: &[u8],
        poll_ms: u64,
    ) -> Result<Fleet, CliError> {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        for d in devices {
            let config = agent_config(d, base, publisher, running, poll_ms)?;
            let mut stop = rx.clone();
            let id = d.id.clone();
            tasks.spawn(async move {
                let daemon = Daemon::open(config)
                    .await
                    .map_err(|e| format!("{id}: {e}"))?;
                daemon
                    .run(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
                    .map_err(|e| format!("{id}: {e}"))
            });
        }
        Ok(Fleet { tasks, shutdown })
    }

    /// Stops every agent at its next safe point and waits for them (at most [`STOP_WITHIN`]);
    /// the errors they ended with, and one for each agent that did not stop in time.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.shutdown.send(true);
        let mut errors = Vec::new();
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(Ok(())))) => {}
                Ok(Some(Ok(Err(e)))) => errors.push(e),
                Ok(Some(Err(e))) => errors.push(format!("an agent task: {e}")),
                Err(_) => {
                    errors.push(format!(
                        "{} agent(s) did not stop within {} s",
                        self.tasks.len(),
                        STOP_WITHIN.as_secs()
                    ));
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        errors
    }
}

/// What a device's active slot holds.
pub(super) enum Running {
    /// The new version.
    New,
    /// The version the plant ran (restored, or rolled back to).
    Old,
    /// Neither: the device is down (why).
    Neither(String),
}

/// What `d`'s active slot holds, measured on its files: the slot the symlink `app/current`
/// names, and the SHA-256 of the engine in it.
pub(super) fn running(d: &Device, new: &Packed, old: &Packed) -> Running {
    let slots = d.dir.join("app");
    let current = slots.join("current");
    let slot = match std::fs::read_link(&current) {
        Ok(s) => s,
        Err(e) => return Running::Neither(format!("{}: {e}", current.display())),
    };
    let engine = slots.join(slot).join(ENGINE);
    match std::fs::read(&engine).map(|b| Sha256Digest::of(&b)) {
        Ok(h) if h == new.plaintext_sha256 => Running::New,
        Ok(h) if h == old.plaintext_sha256 => Running::Old,
        Ok(_) => Running::Neither(format!("{}: neither version's engine", engine.display())),
        Err(e) => Running::Neither(format!("{}: {e}", engine.display())),
    }
}

/// A device's agent configuration, its directories made: the engine the plant runs in slot
/// `a` (active), its credential, its probe — the application's health check, which passes
/// when the engine is in the active slot, and fails on a device where the model will not come
/// up.
fn agent_config(
    d: &Device,
    base: &str,
    publisher: &PublicKey,
    running: &[u8],
    poll_ms: u64,
) -> Result<Config, CliError> {
    let io = |p: &Path, e| CliError::io(p, e);
    let slots = d.dir.join("app");
    let a = slots.join("a");
    std::fs::create_dir_all(&a).map_err(|e| io(&a, e))?;
    let engine = a.join(ENGINE);
    std::fs::write(&engine, running).map_err(|e| io(&engine, e))?;
    let current = slots.join("current");
    if std::fs::symlink_metadata(&current).is_err() {
        std::os::unix::fs::symlink("a", &current).map_err(|e| io(&current, e))?;
    }
    let credential = d.dir.join("credential");
    out::write_atomic(&credential, format!("{}\n", d.credential).as_bytes(), true)?;
    let mut c = Config::new(
        base,
        d.profile.clone(),
        d.dir.join("state"),
        SlotsConfig::Directory {
            root: slots.clone(),
            file: ENGINE.into(),
        },
        [*publisher].into_iter().collect(),
    );
    c.credential_file = credential;
    c.poll_interval = Duration::from_millis(poll_ms);
    c.max_backoff = Duration::from_secs(2);
    c.probe = Some(if d.healthy {
        ProbeSpec::Exec {
            path: HEALTH_CHECK.into(),
            args: vec!["-s".into(), current.join(ENGINE).display().to_string()],
            timeout_ms: 5_000,
        }
    } else {
        ProbeSpec::Exec {
            path: BROKEN_CHECK.into(),
            args: Vec::new(),
            timeout_ms: 5_000,
        }
    });
    c.exec_allowlist = vec![HEALTH_CHECK.into(), BROKEN_CHECK.into()];
    c.probe_policy = ProbePolicy {
        initial_delay_ms: 100,
        interval_ms: 100,
        successes_needed: 2,
        failures_tolerated: 0,
        deadline_ms: 30_000,
    };
    Ok(c)
}
