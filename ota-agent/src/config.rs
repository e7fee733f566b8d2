//! The daemon's settings: [`Config`], built in code or read from TOML, where every error names
//! its field.
//!
//! ```toml
//! server = "http://ota.example:8080"        # the control plane
//! device_id = "dev-0001"
//! credential_file = "/var/lib/ota-agent/credential"
//! enrollment_token_file = "/etc/ota-agent/enroll.jwt"   # optional: register when no credential
//! state_dir = "/var/lib/ota-agent"
//! trusted_keys = ["<64 hex characters or a PEM public key>"]
//! poll_interval_ms = 60000                   # when the server suggests none
//! bandwidth_bytes_per_sec = 0                # 0: no cap
//! concurrency = 4                            # chunks in flight
//! exec_allowlist = ["/usr/bin/app-health"]
//! download_deadline_ms = 86400000            # a download not done by then fails (default a day)
//!
//! [device]                                   # or profile_file = "device.json"
//! profile_id = "prof_temp_v2"                # the server's device profile to register under
//! device_type = "temp-sensor"
//! hardware_profile = "acme-sensor-v2"        # default: the Jetson module, else generic-ARCH
//! arch = "armv7"                             # default: this machine's
//! installed = { temp-sensor-fw = "1.2.0" }
//!
//! [slots]
//! kind = "directory"                         # or "block"
//! root = "/var/lib/app"                      # holds a/, b/ and the symlink current
//!
//! [probe]
//! kind = "exec"
//! path = "/usr/bin/app-health"
//! timeout_ms = 5000
//!
//! [probe_policy]
//! initial_delay_ms = 2000
//! ```
//!
//! A block backend instead names its two partitions and the commands that switch them and say
//! which one runs: `kind = "block"`, `a`, `b`, `switch = ["fw_setenv", "ota_slot", "{slot}"]`,
//! `booted` (prints the slot that runs, as the bootloader booted it: for example from the
//! kernel command line, not the variable `switch` sets for the next boot; required, since only
//! it tells whether a switch took effect, and the probe must judge the new slot, not the old
//! one still running), and optionally `confirm` (marks the boot good after a commit),
//! `reboot` and `command_timeout_ms` (how long each command may run before it is killed with
//! what it started; default 120000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ota_core::probe::{ProbePolicy, ProbeSpec};
use ota_core::profile::Arch;
use ota_core::sign::{PublicKey, TrustedKeys};
use ota_core::{Channel, DeviceProfile, Limits, Name};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hardware;

/// A configuration that cannot be used: which field, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file (or a file it names) cannot be read.
    #[error("{field}: cannot read {}: {source}", path.display())]
    Read {
        /// The field naming the file (`config` for the file itself).
        field: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A field is missing, malformed or out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a path (`slots.root`, `trusted_keys[1]`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Read { field, .. } | ConfigError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where updates are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotsConfig {
    /// A/B directories `ROOT/a` and `ROOT/b`, the active one named by the symlink
    /// `ROOT/current`, switched atomically; the previous one is kept for a restore.
    Directory {
        /// The directory holding `a`, `b` and `current`.
        root: PathBuf,
        /// The name of the installed file inside a slot (default `payload`).
        file: String,
    },
    /// A/B partitions or block devices (or plain files standing in for them), written raw;
    /// the boot slot is switched by a command.
    Block {
        /// Slot `a`'s device.
        a: PathBuf,
        /// Slot `b`'s device.
        b: PathBuf,
        /// The command that makes a slot the boot slot; `{slot}` becomes `a` or `b`,
        /// `{device}` its path.
        switch: Vec<String>,
        /// The command printing the slot that runs (`a` or `b`). Required ([`Config::check`]
        /// refuses a block backend without it): a switch takes effect only once the device
        /// boots the slot, or the bootloader may fall back (boot counting), and only this
        /// command tells; the probe must judge the new slot, never the old one still running.
        booted: Option<Vec<String>>,
        /// A command run after a commit, to tell the bootloader the new slot is good.
        confirm: Option<Vec<String>>,
        /// A command that reboots, when the switch needs a reboot to take effect.
        reboot: Option<Vec<String>>,
        /// How long each of these commands may run before it is killed with what it started
        /// (`command_timeout_ms`, default 120 s): a hung `fw_printenv` fails its step, which
        /// is tried again, instead of freezing the daemon.
        command_timeout: Duration,
    },
}

/// How long a slot command may run when the configuration does not say.
pub const SLOT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The daemon's settings. Build it in code with [`Config::new`] (then set fields), or read it
/// with [`Config::from_toml`] or [`Config::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The control plane's base URL (`http://host:port`), without a trailing slash.
    pub server: String,
    /// This device: its id, type, hardware and the versions it ships with.
    pub device: DeviceProfile,
    /// The server's device profile the device registers under.
    pub profile_id: Option<Name>,
    /// Where the device credential is kept (mode 0600).
    pub credential_file: PathBuf,
    /// A tenant admin token to register with when there is no credential yet.
    pub enrollment_token_file: Option<PathBuf>,
    /// The agent's record, staged chunks and report outbox live here. The daemon's alone:
    /// what a crash left of a file replaced in it (hidden `.*.partial`) is removed at start.
    pub state_dir: PathBuf,
    /// Where updates are installed.
    pub slots: SlotsConfig,
    /// The health probe (the device's policy: the control plane does not choose it).
    pub probe: Option<ProbeSpec>,
    /// When to probe and how to judge.
    pub probe_policy: ProbePolicy,
    /// The executables a probe may run.
    pub exec_allowlist: Vec<String>,
    /// Boots into a new version before it is rolled back (default 3).
    pub max_boot_attempts: u32,
    /// How long a download may take from the assignment, across restarts, before the update
    /// fails and the device is free for its next assignment (default a day): an artifact that
    /// disappeared, or a server that never answers, does not keep it downloading for ever.
    pub download_deadline: Duration,
    /// The publisher keys whose signatures the device trusts.
    pub trusted: TrustedKeys,
    /// Distinct trusted signatures a package needs (default 1).
    pub threshold: usize,
    /// How often to poll when the server suggests nothing (default 60 s).
    pub poll_interval: Duration,
    /// The longest wait between two attempts after errors (default 5 min).
    pub max_backoff: Duration,
    /// The download bandwidth cap in bytes per second; `None`: no cap.
    pub bandwidth: Option<u64>,
    /// Chunks in flight (default 4).
    pub concurrency: usize,
    /// How long one HTTP request may take (default 30 s).
    pub request_timeout: Duration,
    /// The bounds of every document parsed.
    pub limits: Limits,
}

impl Config {
    /// A configuration with the defaults: credential in `state_dir/credential`, no probe, no
    /// bandwidth cap, 4 chunks in flight, a 60 s poll interval.
    pub fn new(
        server: impl Into<String>,
        device: DeviceProfile,
        state_dir: impl Into<PathBuf>,
        slots: SlotsConfig,
        trusted: TrustedKeys,
    ) -> Config {
        let state_dir = state_dir.into();
        Config {
            server: server.into().trim_end_matches('/').to_string(),
            device,
            profile_id: None,
            credential_file: state_dir.join("credential"),
            enrollment_token_file: None,
            state_dir,
            slots,
            probe: None,
            probe_policy: ProbePolicy::default(),
            exec_allowlist: Vec::new(),
            max_boot_attempts: 3,
            download_deadline: Duration::from_millis(
                ota_core::agent::config::DEFAULT_DOWNLOAD_DEADLINE_MS,
            ),
            trusted,
            threshold: 1,
            poll_interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(300),
            bandwidth: None,
            concurrency: 4,
            request_timeout: Duration::from_secs(30),
            limits: Limits::DEFAULT,
        }
    }

    /// The device's id.
    pub fn device_id(&self) -> &Name {
        &self.device.device_id
    }

    /// Reads the TOML file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            field: "config".into(),
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        parse(&text, base)
    }

    /// Parses the TOML form (see the [module documentation](self)); relative paths are
    /// taken from the current directory.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("."))
    }

    /// Checks what a configuration built in code could get wrong; every error names its
    /// field. [`Config::from_toml`] and [`Config::load`] check it too.
    pub fn check(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.server);
        if !url
            .as_ref()
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            let why = url.err().map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(ConfigError::invalid(
                "server",
                format!(
                    "expected an http:// or https:// URL with a host, found {:?}{why}",
                    self.server
                ),
            ));
        }
        if self.trusted.is_empty() {
            return Err(ConfigError::invalid(
                "trusted_keys",
                "at least one trusted key is required",
            ));
        }
        if self.threshold == 0 || self.threshold > self.trusted.len() {
            return Err(ConfigError::invalid(
                "threshold",
                format!(
                    "must be between 1 and the number of trusted keys ({}), found {}",
                    self.trusted.len(),
                    self.threshold
                ),
            ));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(ConfigError::invalid(
                "concurrency",
                format!("must be between 1 and 64, found {}", self.concurrency),
            ));
        }
        if self.max_backoff < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "max_backoff_ms",
                format!(
                    "must be at least 1000 (the first wait after an error), found {}",
                    self.max_backoff.as_millis()
                ),
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::invalid(
                "poll_interval_ms",
                "must be at least 1",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "request_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.bandwidth == Some(0) {
            return Err(ConfigError::invalid(
                "bandwidth_bytes_per_sec",
                "a cap of 0 would never download; leave it out for no cap",
            ));
        }
        if self.max_boot_attempts == 0 {
            return Err(ConfigError::invalid(
                "max_boot_attempts",
                "must be at least 1",
            ));
        }
        if self.download_deadline.is_zero() {
            return Err(ConfigError::invalid(
                "download_deadline_ms",
                "must be at least 1: no download could ever finish",
            ));
        }
        if let Some(p) = &self.probe
            && let Err(e) = p.check(&self.exec_allowlist)
        {
            return Err(ConfigError::invalid("probe", e.to_string()));
        }
        match &self.slots {
            SlotsConfig::Directory { file, .. } => {
                if file.is_empty() || file.contains('/') || file == "." || file == ".." {
                    return Err(ConfigError::invalid(
                        "slots.file",
                        format!("expected a plain file name, found {file:?}"),
                    ));
                }
            }
            SlotsConfig::Block {
                a,
                b,
                switch,
                booted,
                confirm,
                reboot,
                command_timeout,
            } => {
                if command_timeout.is_zero() {
                    return Err(ConfigError::invalid(
                        "slots.command_timeout_ms",
                        "expected a time above 0",
                    ));
                }
                if a == b {
                    return Err(ConfigError::invalid(
                        "slots.b",
                        "slots a and b are the same device",
                    ));
                }
                for (field, argv) in [
                    ("slots.switch", Some(switch)),
                    ("slots.booted", booted.as_ref()),
                    ("slots.confirm", confirm.as_ref()),
                    ("slots.reboot", reboot.as_ref()),
                ] {
                    if argv.is_some_and(|v| v.first().is_none_or(String::is_empty)) {
                        return Err(ConfigError::invalid(
                            field,
                            "expected a command: a non-empty list whose first item is the program",
                        ));
                    }
                }
                if booted.is_none() {
                    return Err(ConfigError::invalid(
                        "slots.booted",
                        "a block backend needs the command printing the slot that runs: \
                         without it a switch cannot be told from one that has not taken effect, \
                         and the probe would judge the old slot",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The TOML form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    server: String,
    device_id: String,
    #[serde(default)]
    credential_file: Option<PathBuf>,
    #[serde(default)]
    enrollment_token_file: Option<PathBuf>,
    state_dir: PathBuf,
    trusted_keys: Vec<String>,
    #[serde(default)]
    threshold: Option<usize>,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    max_backoff_ms: Option<u64>,
    #[serde(default)]
    bandwidth_bytes_per_sec: Option<u64>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
    #[serde(default)]
    exec_allowlist: Vec<String>,
    #[serde(default)]
    max_boot_attempts: Option<u32>,
    #[serde(default)]
    download_deadline_ms: Option<u64>,
    #[serde(default)]
    device: DeviceToml,
    slots: SlotsToml,
    #[serde(default)]
    probe: Option<ProbeSpec>,
    #[serde(default)]
    probe_policy: Option<ProbePolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceToml {
    #[serde(default)]
    profile_file: Option<PathBuf>,
    #[serde(default)]
    profile_id: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
    #[serde(default)]
    hardware_profile: Option<String>,
    #[serde(default)]
    arch: Option<Arch>,
    #[serde(default)]
    memory_mb: Option<u64>,
    #[serde(default)]
    installed: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    allowed_channels: Option<Vec<Channel>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum SlotsToml {
    Directory {
        root: PathBuf,
        #[serde(default)]
        file: Option<String>,
    },
    Block {
        a: PathBuf,
        b: PathBuf,
        switch: Vec<String>,
        #[serde(default)]
        booted: Option<Vec<String>>,
        #[serde(default)]
        confirm: Option<Vec<String>>,
        #[serde(default)]
        reboot: Option<Vec<String>>,
        #[serde(default)]
        command_timeout_ms: Option<u64>,
    },
}

fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        // A syntax error has no field; name the line instead.
        let field = match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                format!("line {}", before.matches('\n').count() + 1)
            }
            None => "config".into(),
        };
        ConfigError::invalid(field, msg)
    })?;
    let t: ConfigToml = serde_path_to_error::deserialize(table).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        let prefix = if path == "." || path.is_empty() {
            String::new()
        } else {
            path
        };
        // An unknown or missing field is named itself, under its table.
        let unknown = message
            .strip_prefix("unknown field `")
            .or_else(|| message.strip_prefix("missing field `"))
            .and_then(|r| r.split_once('`'))
            .map(|(name, _)| name.to_string());
        let field = match (unknown, prefix.is_empty()) {
            (Some(u), true) => u,
            (Some(u), false) if prefix != u && !prefix.ends_with(&format!(".{u}")) => {
                format!("{prefix}.{u}")
            }
            (None, true) => "config".to_string(),
            (_, false) => prefix,
        };
        ConfigError::invalid(field, message)
    })?;
    let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let device_id: Name = t
        .device_id
        .parse()
        .map_err(|e| ConfigError::invalid("device_id", format!("{e}")))?;
    let device = device_profile(&device_id, &t.device, base)?;
    let mut trusted = TrustedKeys::new();
    for (i, k) in t.trusted_keys.iter().enumerate() {
        let key = PublicKey::parse(k)
            .map_err(|e| ConfigError::invalid(format!("trusted_keys[{i}]"), e.to_string()))?;
        trusted.add(key);
    }
    let slots = match t.slots {
        SlotsToml::Directory { root, file } => SlotsConfig::Directory {
            root: abs(root),
            file: file.unwrap_or_else(|| "payload".into()),
        },
        SlotsToml::Block {
            a,
            b,
            switch,
            booted,
            confirm,
            reboot,
            command_timeout_ms,
        } => SlotsConfig::Block {
            a: abs(a),
            b: abs(b),
            switch,
            booted,
            confirm,
            reboot,
            command_timeout: command_timeout_ms.map_or(SLOT_COMMAND_TIMEOUT, Duration::from_millis),
        },
    };
    let state_dir = abs(t.state_dir);
    let mut c = Config::new(t.server, device, state_dir, slots, trusted);
    c.profile_id = t
        .device
        .profile_id
        .as_deref()
        .map(|p| {
            p.parse()
                .map_err(|e| ConfigError::invalid("device.profile_id", format!("{e}")))
        })
        .transpose()?;
    if let Some(p) = t.credential_file {
        c.credential_file = abs(p);
    }
    c.enrollment_token_file = t.enrollment_token_file.map(abs);
    c.threshold = t.threshold.unwrap_or(1);
    if let Some(ms) = t.poll_interval_ms {
        c.poll_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = t.max_backoff_ms {
        c.max_backoff = Duration::from_millis(ms);
    }
    c.bandwidth = t.bandwidth_bytes_per_sec.filter(|b| *b > 0);
    if let Some(n) = t.concurrency {
        c.concurrency = n;
    }
    if let Some(ms) = t.request_timeout_ms {
        c.request_timeout = Duration::from_millis(ms);
    }
    c.exec_allowlist = t.exec_allowlist;
    if let Some(n) = t.max_boot_attempts {
        c.max_boot_attempts = n;
    }
    if let Some(ms) = t.download_deadline_ms {
        c.download_deadline = Duration::from_millis(ms);
    }
    c.probe = t.probe;
    if let Some(p) = t.probe_policy {
        c.probe_policy = p;
    }
    c.check()?;
    Ok(c)
}

/// The device's profile: the file it names, or the fields given, with what is left out
/// detected on this machine.
fn device_profile(id: &Name, d: &DeviceToml, base: &Path) -> Result<DeviceProfile, ConfigError> {
    let mut v = match &d.profile_file {
        Some(p) => {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            let text = std::fs::read(&path).map_err(|source| ConfigError::Read {
                field: "device.profile_file".into(),
                path: path.clone(),
                source,
            })?;
            let v: Value = serde_json::from_slice(&text).map_err(|e| {
                ConfigError::invalid("device.profile_file", format!("{}: {e}", path.display()))
            })?;
            if !v.is_object() {
                return Err(ConfigError::invalid(
                    "device.profile_file",
                    "expected a JSON object (a device profile)",
                ));
            }
            v
        }
        None => {
            let device_type = d.device_type.as_ref().ok_or_else(|| {
                ConfigError::invalid(
                    "device.device_type",
                    "required (or name a device.profile_file)",
                )
            })?;
            json!({ "device_type": device_type })
        }
    };
    let obj = v.as_object_mut().expect("an object");
    obj.insert("device_id".into(), json!(id));
    let set = |obj: &mut serde_json::Map<String, Value>, k: &str, val: Value| {
        obj.insert(k.to_string(), val);
    };
    if let Some(t) = &d.device_type {
        set(obj, "device_type", json!(t));
    }
    let arch = d.arch.unwrap_or_else(hardware::arch);
    if d.arch.is_some() || !obj.contains_key("arch") {
        set(obj, "arch", json!(arch));
    }
    match &d.hardware_profile {
        Some(h) => set(obj, "hardware_profile", json!(h)),
        None if !obj.contains_key("hardware_profile") => {
            let h = hardware::jetson_profile()
                .map(str::to_string)
                .unwrap_or_else(|| format!("generic-{}", arch.as_str()));
            set(obj, "hardware_profile", json!(h));
        }
        None => {}
    }
    if let Some(m) = d.memory_mb {
        set(obj, "memory_mb", json!(m));
    } else if !obj.contains_key("memory_mb")
        && let Some(m) = hardware::memory_mb()
    {
        // Detected memory only narrows a built-in profile; never claim more than it has.
        let builtin = obj
            .get("hardware_profile")
            .and_then(Value::as_str)
            .and_then(ota_core::profile::HardwareProfile::builtin);
        let m = match builtin {
            Some(b) => b.max_memory_mb.map_or(m, |max| m.min(max)),
            None => m,
        };
        set(obj, "memory_mb", json!(m));
    }
    if !d.installed.is_empty() {
        set(obj, "installed", json!(d.installed));
    }
    if !d.labels.is_empty() {
        set(obj, "labels", json!(d.labels));
    }
    if let Some(c) = &d.allowed_channels {
        set(obj, "allowed_channels", json!(c));
    }
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    DeviceProfile::from_json(&bytes).map_err(|e| ConfigError::invalid("device", e.to_string()))
}
