//! `ota`: the command for pipelines and operators — keys, manifests, compatibility, packing,
//! publishing, verifying, unpacking, inspecting, audit trails, TUF, and `ota demo`, a whole
//! rollout live on loopback (a server and real agents), or simulated.
//!
//! Every command takes `--json`. Exit codes: 0 done; 1 a verification, validation,
//! compatibility or policy failure; 2 a usage, I/O, key, store or network error (except under
//! `ota tuf`, whose standard client contract is 1 for any failure). Each error is one line
//! naming the file and the field.

mod audit;
mod check;
mod demo;
mod input;
mod inspect;
mod keys;
mod manifest;
mod out;
mod pack;
mod progress;
mod publish;
mod tuf;
mod unpack;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::out::{CliError, Out, Outcome};

/// Ship firmware, software and ML models to device fleets safely.
#[derive(Parser)]
#[command(name = "ota", version, about, long_about = None)]
struct Cli {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole rollout live on loopback (an in-process server, a fleet of real agents):
    /// pack, upload, canary, probe failure, halt, rollback. `--simulate` for huge fleets.
    Demo(demo::DemoArgs),
    /// Make an Ed25519 signing key pair.
    Keygen(keys::KeygenArgs),
    /// Model manifests.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Check whether a package fits a device or a fleet, with every reason.
    Check(check::CheckArgs),
    /// Seal a file, sign its package, and write seed 002's artifact and registration.
    Pack(pack::PackArgs),
    /// Upload a packed artifact to a store and register it with the admin API.
    Publish(publish::PublishArgs),
    /// Verify a package's signature and its artifact, chunk by chunk.
    Verify(verify::VerifyArgs),
    /// Open a sealed artifact, verifying it first; writes nothing on failure.
    Unpack(unpack::UnpackArgs),
    /// Show what a package contains and who signed it.
    Inspect(inspect::InspectArgs),
    /// Rollout audit trails.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// TUF: a standard client (init, refresh, download), the Trust Center (inspect), and the
    /// repository (create-repo, add-target, resign-timestamp, rotate-root). Exit 0 or 1.
    Tuf(tuf::TufArgs),
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Validate a model manifest and list every fault.
    Validate(manifest::ValidateArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a hash-chained audit trail.
    Verify(audit::VerifyArgs),
}

fn run(cli: &Cli, out: Out) -> Result<Outcome, CliError> {
    let json = cli.json;
    match &cli.command {
        Command::Demo(a) => demo::demo(a, out),
        Command::Keygen(a) => keys::keygen(a),
        Command::Manifest(ManifestCommand::Validate(a)) => manifest::validate(a),
        Command::Check(a) => check::check(a),
        Command::Pack(a) => pack::pack(a, json),
        Command::Publish(a) => publish::publish(a, json),
        Command::Verify(a) => verify::verify(a, json),
        Command::Unpack(a) => unpack::unpack(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        Command::Tuf(a) => tuf::tuf(a),
    }
}

/// Whether the command is `ota tuf`, whose contract (a standard TUF client's) is exit 1 for
/// any failure, usage and I/O included.
fn tuf_invoked() -> bool {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| a == "tuf")
}

fn main() -> ExitCode {
    let usage = if tuf_invoked() { 1 } else { 2 };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else clap refuses is usage.
            return if e.use_stderr() {
                ExitCode::from(usage)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let out = Out { json: cli.json };
    match run(&cli, out) {
        Ok(o) => {
            out.outcome(&o);
            if o.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(mut e) => {
            e.code = e.code.min(usage);
            out.error(&e);
            ExitCode::from(e.code)
        }
    }
}
