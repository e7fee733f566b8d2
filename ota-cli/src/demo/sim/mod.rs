//! The simulation behind `ota demo --simulate`, for fleets too large to run as real agents:
//! the real rollout engine, driven in process on a simulated clock, and every device the
//! real device path (chunks in random order, some corrupted or lost and fetched again, an
//! install into a slot file, a swap, the real readiness-file probe, a restore on failure).
//! Everything follows from `--seed`: the same seed prints the same transcript and summary.
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
use std::path::{Path, PathBuf};
use std::time::Instant;

use ota_core::audit::AuditRecord;
use ota_core::rollout::Rollout;
use ota_core::sign::SigningKey;
use ota_core::{DeviceProfile, UnixMs};
use ota_sim::Network;

use self::device::Device;
use self::setup::Published;
use super::DemoArgs;
use crate::out::{CliError, Out, Outcome};
use crate::signals::Stop;

/// The simulated clock starts here: 2026-04-15 07:32:37 UTC.
const T0: UnixMs = UnixMs(1_776_238_357_000);
/// A rollback of at most this many devices prints one line per device.
const LISTED_WAVE: usize = 20;

/// Runs the simulation in `work`.
pub(super) fn run(a: &DemoArgs, out: Out, work: &Path) -> Result<Outcome, CliError> {
    let started = Instant::now();
    // SIGINT or SIGTERM stops the simulation between two steps, through its failure path,
    // so the temporary work directory (the models, their sealed copies) is removed.
    let stop = Stop::on_signals()?;
    let mut demo = Demo::new(a, out, work, stop)?;
    demo.interrupted()?;
    demo.run()?;
    Ok(demo.finish(
        started.elapsed().as_secs_f64(),
        a.keep.is_some().then_some(&work.to_path_buf()),
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
    /// Set by SIGINT or SIGTERM.
    stop: Stop,
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
            simulate: true,
            poll_ms: super::super::POLL_MS,
        }
    }

    /// Devices whose probe names a relative readiness file refuse their assignment: the demo
    /// is broken, and says so with its exit code instead of reporting success.
    #[test]
    fn a_demo_whose_devices_break_fails() {
        let rel = PathBuf::from(format!("../target/demo-broken-{}", std::process::id()));
        let a = args(None);
        let mut d = Demo::new(&a, Out { json: true }, &rel, Stop::never()).unwrap();
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
        let o = super::super::demo(&args(Some(rel.clone())), Out { json: true }).unwrap();
        let kept = rel.join("audit.jsonl").exists();
        let _ = std::fs::remove_dir_all(&rel);
        assert!(o.ok, "{}", o.text);
        assert_eq!(o.json["summary"]["broken"], 0);
        assert!(kept);
    }
}
