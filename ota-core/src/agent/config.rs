//! The agent's settings, and their JSON form.

use serde::Deserialize;

use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::probe::{ProbePolicy, ProbeSpec};
use crate::profile::DeviceProfile;
use crate::sign::{self, TrustedKeys};

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This device.
    pub device: DeviceProfile,
    /// The keys whose DSSE signatures the agent trusts.
    pub trusted: TrustedKeys,
    /// How many distinct trusted keys must sign.
    pub threshold: usize,
    /// When to probe and how to judge.
    pub policy: ProbePolicy,
    /// The probe to run when an assignment names none.
    pub default_probe: Option<ProbeSpec>,
    /// The executables a probe may run.
    pub exec_allowlist: Vec<String>,
    /// How many boots into a new version before it is rolled back. Default 3.
    pub max_boot_attempts: u32,
    /// How long a download may take from the assignment (across restarts) before the update
    /// fails; an artifact that disappeared does not keep the device downloading forever.
    pub download_deadline_ms: u64,
    /// The bounds of every document the agent parses or verifies.
    pub limits: Limits,
}

/// The JSON form of [`AgentConfig`]:
/// `{"device": {profile}, "trusted_keys": ["hex or PEM", ...], "threshold": 1,
/// "probe_policy": {...}, "default_probe": {...}, "exec_allowlist": [...],
/// "max_boot_attempts": 3, "download_deadline_ms": 86400000}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    device: DeviceProfile,
    trusted_keys: Vec<String>,
    #[serde(default = "one")]
    threshold: usize,
    #[serde(default)]
    probe_policy: ProbePolicy,
    #[serde(default)]
    default_probe: Option<ProbeSpec>,
    #[serde(default)]
    exec_allowlist: Vec<String>,
    #[serde(default = "three")]
    max_boot_attempts: u32,
    #[serde(default = "one_day")]
    download_deadline_ms: u64,
}

/// The default download deadline: a day.
pub const DEFAULT_DOWNLOAD_DEADLINE_MS: u64 = 86_400_000;

fn one_day() -> u64 {
    DEFAULT_DOWNLOAD_DEADLINE_MS
}

fn one() -> usize {
    1
}

fn three() -> u32 {
    3
}

impl Validate for ConfigJson {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        self.device
            .validate_at(&json::field(path, "device"), faults);
        for (i, k) in self.trusted_keys.iter().enumerate() {
            if let Err(e) = sign::PublicKey::parse(k) {
                json::fault(
                    faults,
                    json::index(&json::field(path, "trusted_keys"), i),
                    e.to_string(),
                );
            }
        }
        if self.trusted_keys.is_empty() {
            json::fault(
                faults,
                json::field(path, "trusted_keys"),
                "at least one trusted key is required",
            );
        }
        if self.threshold == 0 || self.threshold > self.trusted_keys.len().max(1) {
            json::fault(
                faults,
                json::field(path, "threshold"),
                format!(
                    "must be between 1 and the number of trusted keys, found {}",
                    self.threshold
                ),
            );
        }
        if self.download_deadline_ms == 0 {
            json::fault(
                faults,
                json::field(path, "download_deadline_ms"),
                "must be above 0",
            );
        }
        if let Some(p) = &self.default_probe
            && let Err(e) = p.check(&self.exec_allowlist)
        {
            json::fault(faults, json::field(path, "default_probe"), e.to_string());
        }
    }
}

impl AgentConfig {
    /// Parses the JSON form (see [`AgentConfig`]'s fields), bounded by
    /// `limits.max_document_bytes`: every error names its field. The agent keeps `limits`
    /// for everything it parses and verifies later.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        let c: ConfigJson = json::parse("agent config", bytes, limits.max_document_bytes)?;
        Ok(AgentConfig {
            trusted: c
                .trusted_keys
                .iter()
                .filter_map(|k| sign::PublicKey::parse(k).ok())
                .collect(),
            device: c.device,
            threshold: c.threshold,
            policy: c.probe_policy,
            default_probe: c.default_probe,
            exec_allowlist: c.exec_allowlist,
            max_boot_attempts: c.max_boot_attempts,
            download_deadline_ms: c.download_deadline_ms,
            limits: *limits,
        })
    }
}
