//! `ota inspect`: what a package (or its envelope) contains, and who signed it.

use std::path::PathBuf;

use ota_core::sign::{self, PackageId};
use ota_core::{Limits, Package};
use serde_json::{Value, json};

use crate::input;
use crate::keys;
use crate::out::{self, CliError, Outcome};

/// `ota inspect FILE`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// A package statement, or the envelope `ota pack` wrote.
    file: PathBuf,
    /// Verify the signatures against these keys (PEM files or hex; repeat).
    #[arg(long = "trusted-key")]
    trusted_keys: Vec<String>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
}

/// Describes the package; with --trusted-key, exit 1 unless the signatures verify.
pub fn inspect(a: &InspectArgs) -> Result<Outcome, CliError> {
    let f = input::package_file(&a.file)?;
    let p = &f.package;
    let mut text = describe(p);
    let mut j =
        json!({"ok": true, "file": a.file, "package": serde_json::to_value(p).unwrap_or_default()});
    let Some(env) = &f.envelope else {
        text.push_str("\nsignatures    none: a bare statement, not an envelope");
        j["signatures"] = json!([]);
        return Ok(Outcome::ok(text, j));
    };
    let id = PackageId::of(&env.payload);
    text.push_str(&format!(
        "\npackage id    {id}\npayload type  {}",
        env.payload_type
    ));
    j["package_id"] = json!(id);
    j["signatures"] = json!(env.claimed_keyids());
    for k in env.claimed_keyids() {
        text.push_str(&format!("\nsignature     key id {k}"));
    }
    if a.trusted_keys.is_empty() {
        text.push_str("\n              (not verified: pass --trusted-key to check them)");
        j["verified"] = Value::Null;
        return Ok(Outcome::ok(text, j));
    }
    let trusted = keys::trusted(&a.trusted_keys)?;
    match sign::verify_envelope(env.clone(), &trusted, a.threshold, &Limits::DEFAULT) {
        Ok(v) => {
            let by: Vec<String> = v.signed_by().iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "\nverified      by {} (threshold {})",
                by.join(", "),
                a.threshold
            ));
            j["verified"] = json!(true);
            j["signed_by"] = json!(by);
            Ok(Outcome::ok(text, j))
        }
        Err(e) => {
            text.push_str(&format!("\nNOT VERIFIED  {e}"));
            j["ok"] = json!(false);
            j["verified"] = json!(false);
            j["status"] = json!(e.status().name());
            // One line naming the file, as every command's error does.
            j["error"] = json!(format!("{}: {e}", a.file.display()));
            Ok(Outcome::failed(text, j))
        }
    }
}

fn describe(p: &Package) -> String {
    let mut s = format!(
        "package       {} {} ({}, channel {})\nartifact      {}\nsha256        {}\nsize          {} ({} bytes)",
        p.name,
        p.version,
        p.kind.as_str(),
        p.channel.as_str(),
        p.artifact_uri.as_str(),
        p.sha256,
        out::bytes(p.size_bytes),
        p.size_bytes
    );
    if let Some(c) = &p.chunks {
        s.push_str(&format!("\nchunks        {} of 64 KiB", c.len()));
    }
    if let Some(seal) = &p.seal {
        s.push_str(&format!(
            "\nsealed        aes-256-cbc over gzip; plaintext {} bytes, sha256 {}",
            seal.plaintext_size, seal.plaintext_sha256
        ));
    }
    let c = &p.compatibility;
    if !c.device_types.is_empty() {
        s.push_str(&format!("\ndevice types  {}", join(&c.device_types)));
    }
    if !c.hardware_profiles.is_empty() {
        s.push_str(&format!("\nhardware      {}", join(&c.hardware_profiles)));
    }
    if let Some(m) = &p.manifest {
        s.push_str(&format!(
            "\nmodel         {} ({})",
            m.framework.as_str(),
            m.license.as_str()
        ));
        for t in &m.targets {
            s.push_str(&format!(
                "\n  target      {} {}",
                t.hardware_profile,
                t.arch.map_or("any arch", |a| a.as_str())
            ));
        }
    }
    if let Some(r) = &p.rollback {
        s.push_str(&format!(
            "\nrollback      from {} until {}: signed for downgrading devices that run {}",
            r.from, r.expires, r.from
        ));
    }
    if let Some(probe) = &p.probe {
        s.push_str(&format!(
            "\nprobe         {} (signed)",
            serde_json::to_string(probe).unwrap_or_default()
        ));
    }
    s
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
