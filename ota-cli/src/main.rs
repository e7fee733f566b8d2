//! `ota`: the command for pipelines and operators — keys, manifests, compatibility, packing,
//! publishing, verifying, unpacking, inspecting, audit trails, TUF, and `ota demo`, a whole
//! rollout live on loopback (a server and real agents), or simulated.
//!
//! Every command takes `--json`, and then prints one object of one shape, errors included (see
//! [`out`]). Exit codes: 0 done; 1 a verification, validation, compatibility or policy failure;
//! 2 a usage, I/O, key, store or network error (except under `ota tuf`, whose standard client
//! contract is 1 for any failure). Each error is one line naming the file and the field.

mod audit;
mod bundle;
mod check;
mod demo;
mod doc;
mod fleet;
mod input;
mod inspect;
mod keys;
mod manifest;
mod manifest_init;
mod out;
mod outputs;
mod pack;
mod pkcs11;
mod progress;
mod publish;
mod shell;
mod sign;
mod signals;
mod tuf;
mod unnamed;
mod unpack;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::out::{CliError, Out, Outcome};

/// Ship firmware, software and ML models to device fleets safely.
#[derive(Parser)]
#[command(name = "ota", version, about, long_about = None, after_help = "Examples:
  ota keygen --out keys/
  ota manifest validate model.yaml
  ota pack --file model/ --manifest model.yaml --key keys/private.pem --resource-name yolo \\
    --dev-stage prod --architecture arm64 --version 2026-04-15 --cdn-base https://cdn.example.com --out out/
  ota verify --package out/package.json --artifact out/prod/yolo-arm64-2026-04-15.enc --trusted-key keys/public.pem
  ota demo")]
struct Cli {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a whole rollout live on loopback (an in-process server, a fleet of real agents):
    /// pack, upload, canary, probe failure, halt, rollback. `--simulate` for huge fleets.
    #[command(after_help = "Examples:\n  ota demo\n  ota demo --seed 7 --json")]
    Demo(demo::DemoArgs),
    /// Make an Ed25519 signing key pair.
    #[command(after_help = "Examples:\n  ota keygen --out keys/\n  ota keygen --out keys/ --force")]
    Keygen(keys::KeygenArgs),
    /// Model manifests.
    #[command(
        subcommand,
        after_help = "Examples:\n  ota manifest init --from model.onnx --out model.yaml\n  ota manifest validate model.yaml"
    )]
    Manifest(ManifestCommand),
    /// Check whether a package fits a device or a fleet, with every reason.
    #[command(
        after_help = "Examples:\n  ota check --package out/package.json --device orin-nx.json\n  ota check --package package.yaml --fleet fleet.yaml --json"
    )]
    Check(check::CheckArgs),
    /// Seal a file or a model's directory, sign its package, and write publish_artifact.py's artifact and
    /// registration.
    Pack(Box<pack::PackArgs>),
    /// Add a signature to a package envelope (co-signing), or sign a sealed statement.
    Sign(sign::SignArgs),
    /// Upload a packed artifact to a store and register it with the admin API.
    #[command(
        after_help = "Examples:\n  ota publish --dir out/ --store /srv/artifacts\n  S3_ENDPOINT=https://s3.example.com ota publish --dir out/ --store s3://models/releases"
    )]
    Publish(publish::PublishArgs),
    /// Verify a package's signature and its artifact, chunk by chunk.
    #[command(
        after_help = "Examples:\n  ota verify --package out/package.json --artifact out/prod/m-arm64-1.enc --trusted-key keys/public.pem\n  ota verify --package out/package.json --artifact a.enc --trusted-key k1.pem --trusted-key k2.pem --threshold 2"
    )]
    Verify(verify::VerifyArgs),
    /// Open a sealed artifact, verifying it first; writes nothing on failure.
    #[command(
        after_help = "Examples:\n  ota unpack --registration out/registration.json --artifact out/prod/m-arm64-1.enc --out model.bin\n  ota unpack --package out/package.json --key <64 hex> --trusted-key keys/public.pem --artifact a.enc --out model.bin"
    )]
    Unpack(unpack::UnpackArgs),
    /// Show what a package contains and who signed it.
    #[command(
        after_help = "Examples:\n  ota inspect out/package.json\n  ota inspect out/package.json --trusted-key keys/public.pem --json"
    )]
    Inspect(inspect::InspectArgs),
    /// Rollout audit trails.
    #[command(
        subcommand,
        after_help = "Examples:\n  ota audit verify demo-out/audit.jsonl"
    )]
    Audit(AuditCommand),
    /// TUF: a standard client (init, refresh, download), the Trust Center (inspect), and the
    /// repository (create-repo, add-target, resign-timestamp, rotate-root). Exit 0 or 1.
    #[command(
        after_help = "Examples:\n  ota tuf create-repo --repo repo/ --key keys/private.pem\n  ota tuf --metadata-url https://tuf.example.com/metadata --metadata-dir md/ refresh"
    )]
    Tuf(tuf::TufArgs),
    /// Print a shell completion script.
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write every page into a directory.
    Man(shell::ManArgs),
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Start a manifest from the model itself (.onnx, .tflite, or a directory holding one and
    /// its other files, safetensors included): framework block, inputs and outputs, precision,
    /// files with size and sha256. Lists what is left to complete (licence, targets).
    #[command(
        after_help = "Examples:\n  ota manifest init --from model.onnx --out manifest.yaml\n  ota manifest init --from model/ --name yolo --model-version 1.2.0 --license Apache-2.0 --target generic-arm64 --out manifest.json\n  ota manifest init --from detector.tflite --json"
    )]
    Init(manifest_init::InitArgs),
    /// Validate a model manifest (JSON or YAML) and list every fault.
    #[command(
        after_help = "Examples:\n  ota manifest validate model.json\n  ota manifest validate model.yaml --json"
    )]
    Validate(manifest::ValidateArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a hash-chained audit trail.
    #[command(
        after_help = "Examples:\n  ota audit verify demo-out/audit.jsonl\n  ota audit verify audit.jsonl --head 42:<sha256 hex>"
    )]
    Verify(audit::VerifyArgs),
}

fn run(cli: &Cli, out: Out) -> Result<Outcome, CliError> {
    let json = cli.json;
    match &cli.command {
        Command::Demo(a) => demo::demo(a, out),
        Command::Keygen(a) => keys::keygen(a),
        Command::Manifest(ManifestCommand::Validate(a)) => manifest::validate(a),
        Command::Manifest(ManifestCommand::Init(a)) => manifest_init::init(a, json),
        Command::Check(a) => check::check(a),
        Command::Pack(a) => pack::pack(a, json),
        Command::Publish(a) => publish::publish(a, json),
        Command::Verify(a) => verify::verify(a, json),
        Command::Unpack(a) => unpack::unpack(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        Command::Tuf(a) => tuf::tuf(a),
        Command::Sign(a) => sign::sign(a),
        Command::Completions(a) => shell::completions(a, Cli::command()),
        Command::Man(a) => shell::man(a, Cli::command()),
    }
}

/// The subcommand path the arguments name (`pack`, `manifest validate`, `tuf refresh`): each
/// argument that names a subcommand of the one before, skipping flags and their values.
fn command_path(args: &[String]) -> String {
    let root = Cli::command();
    let mut cmd = &root;
    let mut path = Vec::new();
    for a in args.iter().skip(1) {
        if a == "--" {
            break;
        }
        if a.starts_with('-') {
            continue;
        }
        if let Some(sub) = cmd.find_subcommand(a) {
            path.push(sub.get_name().to_string());
            cmd = sub;
        }
    }
    path.join(" ")
}

/// Whether `--json` is among the arguments (read before parsing, for usage errors).
fn json_asked(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

fn main() -> ExitCode {
    // Paths need not be UTF-8: clap reads the arguments as the OS gives them (a flag whose
    // value must be text refuses one that is not, as a usage error); the command's name and
    // `--json` are looked for in a lossy copy.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = command_path(&args);
    // `ota tuf`'s contract (a standard TUF client's) is exit 1 for any failure, usage and I/O
    // included.
    let usage = if command == "tuf" || command.starts_with("tuf ") {
        1
    } else {
        2
    };
    let cli = match Cli::try_parse_from(&raw) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; everything else clap refuses is usage.
            if !e.use_stderr() {
                // Help that could not be written whole (a full disk, a closed pipe) is a
                // failure, as any command's unwritten answer is.
                let written = e
                    .print()
                    .and_then(|()| std::io::Write::flush(&mut std::io::stdout()));
                return match written {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("ota: error: stdout: the help was not written whole: {err}");
                        ExitCode::from(2)
                    }
                };
            }
            let rendered = e.render().to_string();
            // The first paragraph on one line: the error and, for missing arguments, which.
            let first = rendered
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ").to_string();
            let out = Out {
                json: json_asked(&args),
            };
            let _ = e.print();
            if out.json {
                let err = CliError::usage(first);
                let shaped = out::shaped(&command, usage, Some(&err), serde_json::Value::Null);
                let mut stdout = std::io::stdout().lock();
                let _ = std::io::Write::write_all(&mut stdout, format!("{shaped}\n").as_bytes());
            }
            return ExitCode::from(usage);
        }
    };
    let out = Out { json: cli.json };
    match run(&cli, out) {
        Ok(o) => ExitCode::from(out.outcome(&command, &o)),
        Err(mut e) => {
            e.code = e.code.min(usage);
            out.error(&command, &e);
            ExitCode::from(e.code)
        }
    }
}
