//! `ota demo`: the whole job on built-in defaults, offline, in a temporary directory.
//!
//! 1. Keys are made; a synthetic TensorRT engine for Jetson Orin NX (a few MB of float
//!    weights) gets its manifest.
//! 2. `ota pack` seals and signs it (2.1.0), and the version the plant runs (2.0.4) as the
//!    signed rollback package; `ota publish` puts both in a local store.
//! 3. A plant of line cameras of mixed Jetson profiles: some do not fit the engine, a few will
//!    not come up with it.
//! 4. The real rollout engine runs a canary and widening waves; every device runs the real
//!    device path (chunks in random order, some corrupted or lost and fetched again, an
//!    install into a slot file, a swap, the real readiness-file probe, a restore on failure).
//! 5. A live transcript in the style of seed 000; when the halt rule trips, the rollout
//!    pauses and the operator rolls the updated devices back.
//! 6. A summary: eligible, incompatible by reason, succeeded, failed, restored, rolled back,
//!    and the fleet impact, measured on the devices' active slots.
//!
//! Everything follows from `--seed`: the same seed prints the same transcript and summary.

mod device;
mod fleet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ota_core::assignment::Assignment;
use ota_core::audit::{self, AuditRecord};
use ota_core::name::Name;
use ota_core::plan::RolloutSpec;
use ota_core::rollout::{Create, Rollout, RolloutCommand, RolloutState};
use ota_core::seal::SealKey;
use ota_core::sign::{SigningKey, VerifiedPackage};
use ota_core::{DeviceProfile, Sha256Digest};
use serde_json::json;

use self::device::{Device, Run};
use self::fleet::Rng;
use crate::out::{self, CliError, Out, Outcome};
use crate::pack::{self, PackArgs};
use crate::publish::{self, PublishArgs};

/// `ota demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Everything random follows from it.
    #[arg(long, default_value_t = 3)]
    seed: u64,
    /// Line cameras in the plant.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// The canary's share of the eligible devices, in percent.
    #[arg(long, default_value_t = 5.0)]
    canary: f64,
    /// The halt rule trips when failures exceed this share of a wave's finished devices.
    #[arg(long, default_value_t = 10.0)]
    threshold: f64,
    /// The share of eligible devices on which the new model will not come up (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    failure_rate: f64,
    /// The engine's size in MiB.
    #[arg(long, default_value_t = 3.0)]
    model_mb: f64,
    /// Keep the working directory (keys, store, devices, audit trail) here.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// The simulated clock starts here (Unix ms): 2026-04-15 07:32:37 UTC.
const T0: u64 = 1_776_238_357_000;
const NAME: &str = "yolo-v8n";
const NEW: &str = "2.1.0";
const OLD: &str = "2.0.4";
/// A rollback of at most this many devices prints one line per device.
const LISTED_WAVE: usize = 20;

fn check_args(a: &DemoArgs) -> Result<(), CliError> {
    let bad = |flag: &str, why: &str| Err(CliError::usage(format!("--{flag}: {why}")));
    if !(1..=100_000).contains(&a.devices) {
        return bad("devices", "from 1 to 100000");
    }
    if !(a.canary > 0.0 && a.canary <= 100.0) {
        return bad("canary", "a percentage above 0, at most 100");
    }
    if !(0.0..=100.0).contains(&a.threshold) {
        return bad("threshold", "a percentage from 0 to 100");
    }
    if !(0.0..=1.0).contains(&a.failure_rate) {
        return bad("failure-rate", "a share from 0 to 1");
    }
    if !(a.model_mb > 0.0 && a.model_mb <= 256.0) {
        return bad("model-mb", "above 0, at most 256");
    }
    Ok(())
}

/// Runs the demo.
pub fn demo(a: &DemoArgs, out: Out) -> Result<Outcome, CliError> {
    check_args(a)?;
    let started = Instant::now();
    let tmp;
    let work: PathBuf = match &a.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
            dir.clone()
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| CliError::usage(format!("a temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    let mut demo = Demo::new(a, out, &work)?;
    demo.run()?;
    Ok(demo.finish(
        started.elapsed().as_secs_f64(),
        a.keep.is_some().then_some(&work),
    ))
}

/// What the publisher made.
struct Published {
    package: VerifiedPackage,
    key: SealKey,
    artifact: Vec<u8>,
    plaintext_sha256: Sha256Digest,
}

struct Demo<'a> {
    args: &'a DemoArgs,
    out: Out,
    work: PathBuf,
    transcript: Vec<String>,
    new: Published,
    old: Published,
    old_engine: Vec<u8>,
    signer: SigningKey,
    fleet: Vec<DeviceProfile>,
    bad: BTreeMap<String, bool>,
    devices: BTreeMap<String, Device>,
    rollout: Rollout,
    trail: Vec<AuditRecord>,
    now: u64,
    rng: Rng,
    waves: usize,
    open_wave: usize,
    rolled_back: bool,
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    delivered: usize,
    corrupted: usize,
    dropped: usize,
    restored: usize,
    probe_failures: usize,
}

impl<'a> Demo<'a> {
    fn new(a: &'a DemoArgs, out: Out, work: &Path) -> Result<Self, CliError> {
        let mut transcript = Vec::new();
        let mut say = |line: String| {
            if !out.json {
                println!("{line}");
            }
            transcript.push(line);
        };
        // 1. Keys, the engines and their manifests.
        let mut rng = Rng::new(a.seed, "publisher");
        let signer = SigningKey::from_secret(rng.bytes32());
        let keys = work.join("keys");
        out::write_atomic(
            &keys.join("private.pem"),
            signer.to_pkcs8_pem().as_bytes(),
            true,
        )?;
        out::write_atomic(
            &keys.join("public.pem"),
            signer.public_key().to_pem().as_bytes(),
            false,
        )?;
        let size = (a.model_mb * 1024.0 * 1024.0) as usize;
        let new_engine = fleet::engine(size, &mut rng);
        let old_engine = fleet::engine(size, &mut rng);
        say(format!(
            "publisher   key {} · model {NAME} {NEW}, TensorRT 8.6 engine for Jetson Orin NX, {}",
            &signer.key_id().to_string()[..12],
            out::bytes(size as u64)
        ));
        // 2. Pack, sign and publish both versions.
        let new = publish_version(work, NEW, &new_engine, false, &mut rng)?;
        let old = publish_version(work, OLD, &old_engine, true, &mut rng)?;
        say(format!(
            "artifact    signed DSSE · {} ({}, {} chunks) · rollback {} signed as {}",
            new.package.id(),
            out::bytes(new.artifact.len() as u64),
            new.package.chunks().len(),
            OLD,
            old.package.id()
        ));
        // 3. The plant.
        let mut frng = Rng::new(a.seed, "fleet");
        let plant = fleet::plant(a.devices, &mut frng);
        let mut hrng = Rng::new(a.seed, "health");
        let bad = plant
            .iter()
            .map(|d| (d.device_id.to_string(), hrng.chance(a.failure_rate)))
            .collect();
        // 4. The rollout.
        let spec = json!({
            "package_id": new.package.id(),
            "target_profile_id": "prof_line_camera",
            "canary_percent": a.canary,
            "waves": [
                {"percent": 30, "min_soak_ms": 900_000},
                {"percent": 100, "min_soak_ms": 900_000},
            ],
            "failure_threshold_percent": a.threshold,
            "halt": {"min_terminal": 3},
            "rollback_package_id": old.package.id(),
            "pacing": {"max_in_flight": 50},
        });
        let spec = RolloutSpec::from_json(spec.to_string().as_bytes())
            .map_err(|e| CliError::usage(format!("the demo's rollout request: {e}")))?;
        let waves = spec.all_waves().len();
        let rollout = Rollout::create(Create {
            rollout_id: name("rol_demo")?,
            tenant: name("acme")?,
            spec,
            package: &new.package,
            rollback: Some(&old.package),
            fleet: &plant,
            by: name("alice")?,
            now: T0,
        })
        .map_err(|e| CliError::failure(Some(e.status()), e))?;
        let status = rollout.status();
        let reasons: Vec<String> = status
            .incompatible_reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let incompatible: u64 = status.incompatible_reasons.values().sum();
        say(format!(
            "fleet       {} line cameras at plant-7 · {} eligible · {incompatible} incompatible ({})",
            plant.len(),
            status.eligible,
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join(", ")
            }
        ));
        say(format!(
            "rollout — {NAME}@{NEW} → plant-7 (canary {}%, halt above {}% failed)",
            a.canary, a.threshold
        ));
        Ok(Demo {
            args: a,
            out,
            work: work.to_path_buf(),
            transcript,
            new,
            old,
            old_engine,
            signer,
            fleet: plant,
            bad,
            devices: BTreeMap::new(),
            rollout,
            trail: Vec::new(),
            now: T0,
            rng: Rng::new(a.seed, "network"),
            waves,
            open_wave: 0,
            rolled_back: false,
            totals: Totals::default(),
        })
    }

    fn say(&mut self, line: String) {
        if !self.out.json {
            println!("{line}");
        }
        self.transcript.push(line);
    }

    /// Drives the rollout to its end.
    fn run(&mut self) -> Result<(), CliError> {
        for _ in 0..100_000 {
            self.drain()?;
            let commands: Vec<RolloutCommand> =
                std::iter::from_fn(|| self.rollout.poll_command()).collect();
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
                        .get(&ota_core::rollout::DeviceState::Succeeded)
                        .copied()
                        .unwrap_or(0);
                    self.say(format!(
                        "operator alice: roll back the {updated} updated device(s) to {OLD}"
                    ));
                    self.now += 60_000;
                    let alice = name("alice")?;
                    self.rollout
                        .handle_rollback(&alice, self.now)
                        .map_err(|e| CliError::failure(Some(e.status()), e))?;
                    continue;
                }
                _ => {}
            }
            match self.rollout.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.rollout.handle_tick(self.now);
                }
                None => break,
            }
        }
        self.drain()
    }

    /// Audit records to the trail; events to the transcript.
    fn drain(&mut self) -> Result<(), CliError> {
        while let Some(rec) = self.rollout.poll_audit() {
            self.trail.push(rec);
        }
        while let Some(e) = self.rollout.poll_event() {
            let d = &e.data;
            let line = match e.kind.as_str() {
                "wave_opened" => {
                    let wave = d["wave"].as_u64().unwrap_or(0) as usize;
                    self.open_wave = wave;
                    let what = if wave == 0 { " canary" } else { "" };
                    Some(format!(
                        "wave {}/{} → {} devices{what}",
                        wave + 1,
                        self.waves,
                        d["devices"]
                    ))
                }
                "gate_blocked" | "gate_waiting" => Some(format!(
                    "wave {} waits: {}",
                    d["wave"],
                    e.kind.replace('_', " ")
                )),
                "halted" => Some(format!(
                    "halt rule tripped — {}",
                    d["reason"].as_str().unwrap_or("")
                )),
                "paused" => Some("rollout paused                              halted".to_string()),
                "rolling_back" => Some(format!("rolling back {} device(s) to {OLD}", d["devices"])),
                "rolled_back" => Some(format!("rolled back {} device(s) to {OLD}", d["devices"])),
                "completed" => Some(format!(
                    "rollout {}",
                    if self.rolled_back {
                        "closed after the rollback"
                    } else {
                        "completed through every wave"
                    }
                )),
                "started" | "approved" | "verdict" | "resumed" => None,
                other => Some(format!("event {other}")),
            };
            if let Some(l) = line {
                self.say(l);
            }
        }
        Ok(())
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
        let mut finished: Vec<(u64, String, Run, bool)> = Vec::new();
        for c in commands {
            let RolloutCommand::Send {
                device_id,
                rollback,
                ..
            } = c
            else {
                continue;
            };
            let run = self.update(&device_id, rollback, start)?;
            finished.push((start + run.took_ms, device_id.to_string(), run, rollback));
        }
        finished.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut quiet = 0usize;
        for (at, id, run, rollback) in &finished {
            let ok = run
                .reports
                .last()
                .is_some_and(|r| r.status == ota_core::report::ReportStatus::Success);
            if listed || !ok {
                for line in device_lines(id, run, *rollback) {
                    self.say(line);
                }
            } else {
                quiet += 1;
            }
            for r in &run.reports {
                let _ = self.rollout.handle_report(r, *at);
            }
            self.now = self.now.max(*at);
            if listed {
                self.drain()?;
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
        self.drain()
    }

    fn update(&mut self, id: &Name, rollback: bool, start: u64) -> Result<Run, CliError> {
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
            let d = Device::new(profile, healthy, &dir, &self.old_engine, trusted, start)
                .map_err(|e| CliError::io(&dir, e))?;
            self.devices.insert(key.clone(), d);
        }
        let p = if rollback { &self.old } else { &self.new };
        let Some(device) = self.devices.get_mut(&key) else {
            return Err(CliError::usage(format!("device {id} vanished")));
        };
        let assignment = Assignment::new(
            &p.package,
            p.key.clone(),
            Some(name("rol_demo")?),
            Some(device.probe()),
        );
        let comes_up = rollback || device.healthy;
        let run = device.update(assignment, &p.artifact, &mut self.rng, start, comes_up);
        self.totals.delivered += run.delivered;
        self.totals.corrupted += run.corrupted;
        self.totals.dropped += run.dropped;
        self.totals.restored += usize::from(run.restored);
        self.totals.probe_failures += usize::from(run.probe.as_ref().is_some_and(|(ok, _)| !ok));
        Ok(run)
    }

    /// The summary, checked against the devices' own slots.
    fn finish(self, wall_s: f64, kept: Option<&PathBuf>) -> Outcome {
        let status = self.rollout.status();
        let count =
            |s: ota_core::rollout::DeviceState| status.devices.get(&s).copied().unwrap_or(0);
        use ota_core::rollout::DeviceState as S;
        // Measured: every device the rollout touched runs a whole version.
        let (mut on_new, mut on_old, mut down) = (0u64, 0u64, 0u64);
        for d in self.devices.values() {
            match d.active_slot().map(|b| Sha256Digest::of(&b)) {
                Ok(h) if h == self.new.plaintext_sha256 => on_new += 1,
                Ok(h) if h == self.old.plaintext_sha256 => on_old += 1,
                _ => down += 1,
            }
        }
        let audit = audit::verify(&self.trail);
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
            ("audit trail".into(), format!("{} records, chain {}", self.trail.len(), if audit.is_ok() { "verified" } else { "BROKEN" })),
        ]);
        for (k, v) in rows {
            t.push_str(&format!("  {k:<26} {v}\n"));
        }
        t.push_str(&format!("  {:<26} {:.1} s\n", "wall time", wall_s));
        if let Some(dir) = kept {
            t.push_str(&format!(
                "\nkept in {}: try `ota audit verify {}`",
                dir.display(),
                trail_file.display()
            ));
        }
        let json = json!({"ok": down == 0, "summary": summary, "transcript": self.transcript, "wall_seconds": wall_s});
        if down == 0 {
            Outcome::ok(t, json)
        } else {
            Outcome::failed(t, json)
        }
    }
}

/// The transcript lines for one device's update.
fn device_lines(id: &str, run: &Run, rollback: bool) -> Vec<String> {
    let mut extra = Vec::new();
    if run.corrupted > 0 {
        extra.push(format!("{} corrupt", run.corrupted));
    }
    if run.dropped > 0 {
        extra.push(format!("{} lost", run.dropped));
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

fn name(s: &str) -> Result<Name, CliError> {
    s.parse().map_err(|e| CliError::usage(format!("{s}: {e}")))
}

/// Packs and publishes one version through the real `pack` and `publish` commands.
fn publish_version(
    work: &Path,
    version: &str,
    engine: &[u8],
    rollback: bool,
    rng: &mut Rng,
) -> Result<Published, CliError> {
    let model = work.join("model");
    let engine_path = model.join(format!("{NAME}-{version}.engine"));
    out::write_atomic(&engine_path, engine, false)?;
    let sha = Sha256Digest::of(engine);
    let manifest = fleet::manifest(version, engine.len() as u64, &sha.to_hex());
    let manifest_path = model.join(format!("manifest-{version}.json"));
    out::write_atomic(&manifest_path, manifest.to_string().as_bytes(), false)?;
    let key = SealKey::from_bytes(rng.bytes32());
    let out_dir = work.join(format!("out-{version}"));
    let packed = pack::run(
        &PackArgs {
            file: engine_path,
            manifest: manifest_path,
            key: work.join("keys/private.pem"),
            resource_name: NAME.into(),
            dev_stage: "prod".into(),
            architecture: "arm64".into(),
            version: version.into(),
            out: out_dir.clone(),
            reproducible: true,
            seal_key: Some(key.to_hex()),
            device_types: vec!["line-camera".into()],
            hardware_profiles: Vec::new(),
            release_notes: if rollback {
                format!("Rollback to {version}.")
            } else {
                "Retrained on plant-7 data.".into()
            },
            rollback,
            s3_endpoint: None,
            bucket: None,
            cdn_base: Some("https://cdn.demo.invalid".into()),
            tuf_repo: None,
            tuf_keys: Vec::new(),
        },
        true,
    )?;
    publish::publish(
        &PublishArgs {
            dir: out_dir,
            store: Some(work.join("store").display().to_string()),
            s3_endpoint: None,
            s3_access_key: None,
            s3_secret_key: None,
            bucket: None,
            cdn_base: None,
            region: "us-east-1".into(),
            admin_api_url: None,
            admin_api_token: None,
            admin_api_publish_path: String::new(),
        },
        true,
    )?;
    let artifact = out::read(&work.join("store").join(packed.record.object_key()))?;
    Ok(Published {
        package: packed.package,
        key,
        artifact,
        plaintext_sha256: sha,
    })
}
