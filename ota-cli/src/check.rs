//! `ota check`: the compatibility verdict for one device or a fleet.

use std::path::PathBuf;

use ota_core::{DeviceProfile, Limits, compat};
use serde_json::json;

use crate::doc;
use crate::fleet;
use crate::input;
use crate::out::{CliError, Outcome};

/// `ota check --package P (--device D | --fleet F)`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["device", "fleet"])))]
pub struct CheckArgs {
    /// The package: a statement, or the envelope `ota pack` wrote (not verified here).
    #[arg(long)]
    package: PathBuf,
    /// One device profile (JSON or YAML).
    #[arg(long)]
    device: Option<PathBuf>,
    /// Many device profiles: a JSON array, JSON Lines, or a YAML sequence (read as a stream,
    /// within the limits: 2 GiB in all, 1 MiB per profile).
    #[arg(long)]
    fleet: Option<PathBuf>,
}

/// Exit 0 when the package fits the device (or at least one device of the fleet), 1 otherwise.
pub fn check(a: &CheckArgs) -> Result<Outcome, CliError> {
    let pkg = input::package_file(&a.package)?.package;
    let what = format!("{} {}", pkg.name, pkg.version);
    if let Some(path) = &a.device {
        let device = doc::parse(path, DeviceProfile::from_json)?;
        let report = compat::check(&pkg, &device);
        let mut text = if report.compatible {
            format!("{what} fits {}", device.device_id)
        } else {
            format!("{what} does not fit {}:", device.device_id)
        };
        for r in &report.rejections {
            text.push_str(&format!("\n  {r}"));
        }
        let json = serde_json::to_value(&report).unwrap_or_default();
        return Ok(if report.compatible {
            Outcome::ok(text, json)
        } else {
            Outcome::failed(text, json)
        });
    }
    let path = a
        .fleet
        .as_ref()
        .ok_or_else(|| CliError::usage("give --device or --fleet"))?;
    let report = fleet::check(path, &pkg, &Limits::DEFAULT)?;
    let mut text = format!(
        "{what}: {} of {} device(s) eligible, {} rejected",
        report.eligible.len(),
        report.total,
        report.rejected
    );
    for (reason, n) in &report.reasons {
        text.push_str(&format!("\n  {reason:<28} {n}"));
    }
    let json = json!({
        "ok": !report.eligible.is_empty(),
        "total": report.total,
        "eligible": report.eligible.len(),
        "rejected": report.rejected,
        "reasons": report.reasons,
    });
    let outcome = if report.eligible.is_empty() {
        Outcome::failed(text, json)
    } else {
        Outcome::ok(text, json)
    };
    // The list is on disk, copied into the output in place.
    Ok(outcome.streamed("eligible_devices", Box::new(report.eligible)))
}
