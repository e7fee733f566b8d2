//! The `ota-agent` binary: `ota-agent --config /etc/ota-agent/agent.toml [--once]`.
//! SIGTERM and SIGINT stop it at the next safe point.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ota_agent::{Config, Daemon};

/// The ota device daemon: polls the control plane, downloads and verifies updates, swaps
/// slots, probes health, and rolls back on failure.
#[derive(Debug, Parser)]
#[command(name = "ota-agent", version)]
struct Cli {
    /// The TOML configuration.
    #[arg(
        long,
        short,
        env = "OTA_AGENT_CONFIG",
        default_value = "/etc/ota-agent/agent.toml"
    )]
    config: PathBuf,
    /// Run one poll-and-update cycle, print what it did, and exit (0 on success).
    #[arg(long)]
    once: bool,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "OTA_LOG", default_value = "info")]
    log: String,
}

/// Installs the SIGTERM and SIGINT handlers now (inside the runtime, before anything else
/// starts), and answers a future that resolves when either arrives.
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ota-agent: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = shutdown();
        let config = match Config::load(&cli.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ota-agent: {}: {e}", cli.config.display());
                return ExitCode::from(2);
            }
        };
        let mut daemon = match Daemon::open(config).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("ota-agent: {e}");
                return ExitCode::FAILURE;
            }
        };
        if cli.once {
            match daemon.cycle_until(shutdown).await {
                Ok(c) => {
                    println!("{c}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ota-agent: {e}");
                    ExitCode::FAILURE
                }
            }
        } else {
            match daemon.run(shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ota-agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    })
}
