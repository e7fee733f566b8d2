//! `ota manifest validate`.

use std::path::PathBuf;

use ota_core::ModelManifest;
use serde_json::json;

use crate::doc;
use crate::out::{CliError, Outcome};

/// `ota manifest validate FILE`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The model manifest (JSON or YAML).
    file: PathBuf,
}

/// Validates a model manifest and lists every fault.
pub fn validate(a: &ValidateArgs) -> Result<Outcome, CliError> {
    let doc = doc::load(&a.file)?;
    let file = a.file.display().to_string();
    match ModelManifest::from_json(&doc.bytes) {
        Ok(m) => Ok(Outcome::ok(
            format!(
                "{file}: valid: {} {} ({}, {} target(s), {} file(s))",
                m.name,
                m.version,
                m.framework.as_str(),
                m.targets.len(),
                m.files.len()
            ),
            json!({"ok": true, "file": file, "name": m.name, "version": m.version.to_string(),
                   "framework": m.framework.as_str(), "targets": m.targets.len()}),
        )),
        Err(e) => {
            let faults = e.faults();
            let mut text = format!(
                "{file}: {} fault(s) ({})\n",
                faults.len(),
                e.status().name()
            );
            for f in &faults {
                text.push_str(&format!(
                    "  {file}: {}: {}\n",
                    f.path,
                    doc.message(&f.message)
                ));
            }
            Ok(Outcome::failed(
                text,
                json!({"ok": false, "file": file, "status": e.status().name(),
                       "faults": faults.iter().map(|f| json!({"path": f.path, "message": doc.message(&f.message)})).collect::<Vec<_>>()}),
            ))
        }
    }
}
