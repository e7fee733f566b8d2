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
//! The demo exits 1 when a device is left down or broken (its update refused or silent).
//!
//! The files: `setup` (keys, packages, plant, rollout), `service` (the control plane's drive
//! loop over the rollout's one output queue, and the devices it commands), `transcript` (the
//! lines and the summary); `device` is a simulated device. The plant, the synthetic engines and
//! the network come from the `ota-sim` crate, as the tests' and benchmarks' do.

mod device;
mod service;
mod setup;
mod transcript;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ota_core::audit::AuditRecord;
use ota_core::rollout::Rollout;
use ota_core::sign::SigningKey;
use ota_core::{DeviceProfile, UnixMs};
use ota_sim::Network;

use self::device::Device;
use self::setup::Published;
use crate::out::{CliError, Out, Outcome};

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
    /// The halt rule trips when failures exceed this share of a wave's scheduled devices.
    #[arg(long, default_value_t = 10.0)]
    threshold: f64,
    /// The share of eligible devices on which the new model will not come up (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    failure_rate: f64,
    /// The engine's size in MiB.
    #[arg(long, default_value_t = 3.0)]
    model_mb: f64,
    /// Keep the working directory (keys, store, devices, audit trail) here; a relative path is
    /// taken from the current directory.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// The simulated clock starts here: 2026-04-15 07:32:37 UTC.
const T0: UnixMs = UnixMs(1_776_238_357_000);
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
            // The devices' probes name files by absolute path.
            std::path::absolute(dir).map_err(|e| CliError::io(dir, e))?
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
    now: UnixMs,
    /// The network between the store and every device.
    net: Network,
    waves: usize,
    open_wave: usize,
    /// The last wave the operator approved past its gate.
    approved: usize,
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
    /// Devices whose update was refused or never answered: the demo itself is broken.
    broken: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(keep: Option<PathBuf>) -> DemoArgs {
        DemoArgs {
            seed: 3,
            devices: 30,
            canary: 10.0,
            threshold: 10.0,
            failure_rate: 0.0,
            model_mb: 0.1,
            keep,
        }
    }

    /// Devices whose probe names a relative readiness file refuse their assignment: the demo
    /// is broken, and says so with its exit code instead of reporting success.
    #[test]
    fn a_demo_whose_devices_break_fails() {
        let rel = PathBuf::from(format!("../target/demo-broken-{}", std::process::id()));
        let a = args(None);
        let mut d = Demo::new(&a, Out { json: true }, &rel).unwrap();
        d.run().unwrap();
        let o = d.finish(0.0, None);
        let _ = std::fs::remove_dir_all(&rel);
        assert!(!o.ok, "{}", o.text);
        assert!(
            o.json["summary"]["broken"].as_u64().unwrap() > 0,
            "{}",
            o.text
        );
    }

    /// `--keep` with a relative path works: it is made absolute first.
    #[test]
    fn keep_accepts_a_relative_directory() {
        let rel = PathBuf::from(format!("../target/demo-keep-{}", std::process::id()));
        let o = demo(&args(Some(rel.clone())), Out { json: true }).unwrap();
        let kept = rel.join("audit.jsonl").exists();
        let _ = std::fs::remove_dir_all(&rel);
        assert!(o.ok, "{}", o.text);
        assert_eq!(o.json["summary"]["broken"], 0);
        assert!(kept);
    }
}
