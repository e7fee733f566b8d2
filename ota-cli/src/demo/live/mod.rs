//! The live system of `ota demo` (see the parent module for the story): an in-process
//! `ota-server` on loopback, the publisher uploading through its API, a plant of real agents,
//! and the operator watching the rollout's live event stream.
//!
//! The files: `server` (the server and the operator's API client), `fleet` (registering the
//! plant and starting its agents), `stream` (the Server-Sent Events stream, typed),
//! `operator` (the rollout: created, watched, approved, rolled back; the transcript lines) and
//! `summary` (the summary from the server's API and the devices' own slots).

mod fleet;
mod operator;
mod server;
mod stream;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ota_sim::Rng;
use serde_json::json;

use self::fleet::Fleet;
use self::server::Server;
use super::publisher::{self, Packed};
use super::{DemoArgs, NAME, NEW, OLD};
use crate::out::{self, CliError, Out, Outcome};

/// The device profile the plant is registered under, and the rollout's target.
const PROFILE: &str = "prof_line_camera";

/// Runs the live system in `work`.
pub(super) fn run(a: &DemoArgs, out: Out, work: &Path) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let mut say = Say {
        json: out.json,
        lines: Vec::new(),
    };
    // The publisher's side before any runtime: `ota publish` runs its own.
    let mut rng = Rng::stream(a.seed, "publisher");
    let signer = publisher::signer(work, &mut rng)?;
    let size = (a.model_mb * 1024.0 * 1024.0) as usize;
    let new_engine = ota_sim::weights(size, &mut rng);
    let old_engine = ota_sim::weights(size, &mut rng);
    say.line(format!(
        "publisher   key {} · model {NAME} {NEW}, TensorRT 8.6 engine for Jetson Orin NX, {}",
        &signer.key_id().to_string()[..12],
        out::bytes(size as u64)
    ));
    let new = publisher::pack(work, NEW, &new_engine, None, &mut rng)?;
    let old = publisher::pack(work, OLD, &old_engine, Some(NEW), &mut rng)?;
    let data_dir = work.join("server");
    // A tenant names only its own part of the store (`store://TENANT/...`).
    let store = Server::store_dir(&data_dir)
        .join(server::TENANT)
        .join("uploads");
    publisher::publish(&new, &store)?;
    publisher::publish(&old, &store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage(format!("starting the runtime: {e}")))?;
    let live = Live {
        args: a,
        work: work.to_path_buf(),
        say,
        new,
        old,
        old_engine,
        public_key: signer.public_key(),
        data_dir,
        started,
    };
    runtime.block_on(live.go())
}

/// Resolves with the signal's name when SIGINT or SIGTERM comes (never, if neither can be
/// listened for).
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// Resolves once a line of the transcript found stdout gone (`ota demo | head`).
async fn stdout_closed() {
    while !out::stdout_gone() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The transcript: printed as it happens (unless `--json`), and kept.
pub(super) struct Say {
    json: bool,
    lines: Vec<String>,
}

impl Say {
    /// Prints and keeps one line.
    pub fn line(&mut self, line: String) {
        if !self.json {
            out::progress(&line);
        }
        self.lines.push(line);
    }
}

/// The live demo, set up.
pub(super) struct Live<'a> {
    args: &'a DemoArgs,
    work: PathBuf,
    say: Say,
    new: Packed,
    old: Packed,
    /// What the plant's devices run at the start.
    old_engine: Vec<u8>,
    public_key: ota_core::sign::PublicKey,
    data_dir: PathBuf,
    started: Instant,
}

impl Live<'_> {
    async fn go(mut self) -> Result<Outcome, CliError> {
        let server = Server::start(&self.data_dir, &self.public_key, self.args.poll_ms).await?;
        // SIGINT or SIGTERM stops the run through its failure path: the agents and the server
        // stop, and the work directory (unless --keep) is removed on the way out.
        let result = tokio::select! {
            r = self.with_server(&server) => r,
            sig = interrupted() => Err(CliError::usage(format!("interrupted by {sig}"))),
            () = stdout_closed() => Err(out::stdout_gone_error()),
        };
        server.stop();
        result
    }

    async fn with_server(&mut self, server: &Server) -> Result<Outcome, CliError> {
        let api = &server.api;
        self.say.line(format!(
            "server      ota-server on {} · SQLite and its object store in {}",
            server.base,
            server.data_dir.display()
        ));
        // The publisher uploads each signed envelope; the server checks the artifact that
        // `ota publish` put in its store, chunk by chunk, before the package is available.
        for p in [&self.new, &self.old] {
            let body = json!({
                "envelope": serde_json::from_str::<serde_json::Value>(&p.package.envelope_json().unwrap_or_default())
                    .unwrap_or_default(),
                "encryption_key": p.key.to_hex(),
                "artifact_uri": format!("store://{}/uploads/{}", server::TENANT, p.object_key),
            });
            let v = api
                .call("POST", "/api/v1/ota/packages", Some(&body))
                .await?;
            if v["status"] != "available" || v["checksum_verified"] != true {
                return Err(CliError::usage(format!(
                    "POST /api/v1/ota/packages: the server did not make {} available: {v}",
                    p.package.id()
                )));
            }
        }
        self.say.line(format!(
            "artifact    uploaded, signed DSSE · {} ({}, {} chunks) · rollback {OLD} signed as {}",
            self.new.package.id(),
            out::bytes(self.new.package.package().size_bytes),
            self.new.package.chunks().len(),
            self.old.package.id()
        ));
        // The plant, registered; the devices that will not come up with the new model.
        let plant =
            ota_sim::fleet::plant(self.args.devices, &mut Rng::stream(self.args.seed, "fleet"));
        let mut hrng = Rng::stream(self.args.seed, "health");
        let healthy: Vec<bool> = plant
            .iter()
            .map(|_| !hrng.chance(self.args.failure_rate))
            .collect();
        let devices =
            fleet::register(api, PROFILE, &plant, &healthy, &self.work.join("devices")).await?;
        // The rollout first, then the stream, then the agents: the stream misses nothing.
        let mut op = operator::Operator::create(self, api, PROFILE).await?;
        let stream = api
            .stream(&format!("/api/v1/ota/rollouts/{}/events", op.rollout_id))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(stream::read(stream, tx));
        let fleet = Fleet::start(
            &devices,
            &server.base,
            &self.public_key,
            &self.old_engine,
            self.args.poll_ms,
        )?;
        self.say.line(format!(
            "agents      {} ota-agent daemons running, each with its own state, A/B slots and probe",
            devices.len()
        ));
        let finished = op.watch(self, rx).await;
        reader.abort();
        let stopped = fleet.stop().await;
        let finished = finished?;
        summary::finish(self, api, &op, &devices, finished, stopped).await
    }
}
