//! `ota demo`: the whole job on built-in defaults, offline, in a temporary directory — by
//! default as the live system on loopback.
//!
//! 1. Keys are made; a synthetic TensorRT engine for Jetson Orin NX (float weights, 1 MiB by
//!    default) gets its manifest. `ota pack` seals and signs it (2.1.0), and the version the
//!    plant runs (2.0.4) as the signed rollback package.
//! 2. An `ota-server` starts in process on a free port of 127.0.0.1, with SQLite and its local
//!    object store in the working directory. `ota publish` puts both artifacts in that store,
//!    and the publisher uploads each signed envelope through `POST /api/v1/ota/packages` with
//!    a tenant admin token minted in process; the server checks every chunk before the
//!    package is available.
//! 3. A device profile and a plant of line cameras of mixed Jetson profiles are registered
//!    through the API, each device with its own credential. Each device is a real agent — the
//!    `ota-agent` daemon, as a task of this process's runtime — with its own state directory,
//!    A/B slot directories and local health probe. Some do not fit the engine; on some (chosen
//!    by `--seed`) the new model will not come up: their probe fails.
//! 4. A canary rollout with widening waves and a halt rule is created through
//!    `POST /api/v1/ota/rollouts`. The agents poll, download chunks over HTTP, verify,
//!    install, swap, probe, and report; a device whose probe fails restores its previous slot
//!    on its own. When the halt rule trips the rollout pauses; once the devices in flight have
//!    finished, the operator rolls the updated devices back through the API.
//! 5. The transcript, in the style of the push-a-model-bundle guide, is printed from the server's live event
//!    stream (`GET /api/v1/ota/rollouts/{id}/events`, Server-Sent Events), not from inside any
//!    device. It ends with a summary from the server's API — devices per state, per wave,
//!    the halt reason, the audit trail verified against its head — and the versions the
//!    devices' own slots hold.
//!
//! Deterministic in its counts: `--seed` fixes the plant, the devices that fail, and the
//! cohorts (the plan's salt), and the plan makes the outcome independent of timing — every
//! device of an opened wave is sent at once, devices in flight finish when the rollout
//! pauses, the threshold is a share of the wave's scheduled devices (so it trips on the same
//! failure whatever order the reports come in), and the operator rolls back only once nothing
//! is in flight. The order of the transcript's device lines follows the devices' real timing.
//!
//! `--simulate` runs the earlier in-process simulation instead (the rollout engine driven on
//! a simulated clock, devices simulated on the real device path), for fleets too large for
//! real agents; it is deterministic in its transcript too.
//!
//! The demo exits 1 when a device is left down or broken (its update refused, or silent).
//!
//! The files: `publisher` (keys, packing, publishing; shared), `live` (the live system) and
//! `sim` (the simulation).

mod live;
mod publisher;
mod sim;

use std::path::PathBuf;

use crate::out::{CliError, Out, Outcome};

/// `ota demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Everything random follows from it: the plant, the devices that fail, the cohorts.
    /// With the live demo (the default), the default seed's canary catches a bad device, as
    /// in the push-a-model-bundle guide; `--simulate` draws its cohorts its own way, so the
    /// same seed tells another story there.
    #[arg(long, default_value_t = 6)]
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
    #[arg(long, default_value_t = 1.0)]
    model_mb: f64,
    /// Keep the working directory (keys, server data, devices, audit trail) here; a relative
    /// path is taken from the current directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Run the in-process simulation instead of the live system (for very large fleets).
    #[arg(long)]
    simulate: bool,
    /// How often each live agent polls the server, in milliseconds (jitter is added).
    #[arg(long, default_value_t = POLL_MS)]
    poll_ms: u64,
}

/// The agents' default poll interval, in milliseconds.
const POLL_MS: u64 = 250;
const NAME: &str = "yolo-v8n";
const NEW: &str = "2.1.0";
const OLD: &str = "2.0.4";
/// The most devices of the live system: each is a real agent with its own directories.
const MAX_LIVE_DEVICES: usize = 2_000;

fn check_args(a: &DemoArgs) -> Result<(), CliError> {
    let bad = |flag: &str, why: &str| Err(CliError::usage(format!("--{flag}: {why}")));
    if !(1..=100_000).contains(&a.devices) {
        return bad("devices", "from 1 to 100000");
    }
    if !a.simulate && a.devices > MAX_LIVE_DEVICES {
        return bad(
            "devices",
            "at most 2000 real agents; add --simulate for larger fleets",
        );
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
    if !(10..=60_000).contains(&a.poll_ms) {
        return bad("poll-ms", "from 10 to 60000");
    }
    Ok(())
}

/// Runs the demo.
pub fn demo(a: &DemoArgs, out: Out) -> Result<Outcome, CliError> {
    check_args(a)?;
    let tmp;
    let work: PathBuf = match &a.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
            // The devices' probes and slots name files by absolute path.
            std::path::absolute(dir).map_err(|e| CliError::io(dir, e))?
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| CliError::usage(format!("a temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    if a.simulate {
        sim::run(a, out, &work)
    } else {
        live::run(a, out, &work)
    }
}
