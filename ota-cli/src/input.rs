//! Reading packages: a package statement, or the DSSE envelope `ota pack` writes.

use std::path::Path;

use ota_core::sign::{self, Envelope, VerifiedPackage};
use ota_core::{Limits, Package};

use crate::doc;
use crate::keys;
use crate::out::CliError;

/// A package file: the statement, and the envelope it came in, if any (not verified).
pub struct PackageFile {
    /// The statement.
    pub package: Package,
    /// The envelope, when the file was one.
    pub envelope: Option<Envelope>,
}

/// Whether the bytes look like a DSSE envelope rather than a bare statement.
fn is_envelope(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
        .is_ok_and(|m| m.contains_key("payloadType"))
}

/// Reads a package statement or an envelope, without verifying any signature.
pub fn package_file(path: &Path) -> Result<PackageFile, CliError> {
    let doc = doc::load_bounded(path, Limits::DEFAULT.max_envelope_bytes())?;
    if is_envelope(&doc.bytes) {
        let envelope =
            Envelope::from_json(&doc.bytes, &Limits::DEFAULT).map_err(|e| doc.error(path, &e))?;
        let package =
            Package::from_json_with_limits(&envelope.payload, &Limits::DEFAULT).map_err(|e| {
                CliError::failure(
                    Some(e.status()),
                    format!("{}: payload: {e}", path.display()),
                )
            })?;
        Ok(PackageFile {
            package,
            envelope: Some(envelope),
        })
    } else {
        let package = Package::from_json(&doc.bytes).map_err(|e| doc.error(path, &e))?;
        Ok(PackageFile {
            package,
            envelope: None,
        })
    }
}

/// Verifies the envelope in `path` against the trusted keys.
pub fn verified(
    path: &Path,
    trusted: &[String],
    threshold: usize,
) -> Result<VerifiedPackage, CliError> {
    if trusted.is_empty() {
        return Err(CliError::usage("give at least one --trusted-key"));
    }
    let keys = keys::trusted(trusted)?;
    let bytes = doc::load_bounded(path, Limits::DEFAULT.max_envelope_bytes())?.bytes;
    sign::verify(&bytes, &keys, threshold, &Limits::DEFAULT)
        .map_err(|e| CliError::failure(Some(e.status()), format!("{}: {e}", path.display())))
}
