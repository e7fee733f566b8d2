//! Reading packages: a package statement, or the DSSE envelope `ota pack` writes.

use std::path::Path;

use ota_core::sign::{self, Envelope, TrustedKeys, VerifiedPackage};
use ota_core::{Limits, Package};
use ota_host::table_file::TableFile;

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
    verified_whole(path, &trusted_keys(trusted)?, threshold)
}

/// [`verified`] once the keys are read.
fn verified_whole(
    path: &Path,
    keys: &TrustedKeys,
    threshold: usize,
) -> Result<VerifiedPackage, CliError> {
    let bytes = doc::load_bounded(path, Limits::DEFAULT.max_envelope_bytes())?.bytes;
    sign::verify(&bytes, keys, threshold, &Limits::DEFAULT).map_err(|e| failed(path, &e))
}

/// A verification's failure, naming the envelope's file.
fn failed(path: &Path, e: &sign::SignError) -> CliError {
    CliError::failure(Some(e.status()), format!("{}: {e}", path.display()))
}

/// [`verified`] without holding the envelope: a JSON envelope in a regular file is streamed
/// past the signature checks ([`sign::verify_reader`]) and its chunk table goes to a file
/// with no name in `table_dir`, so memory does not grow with the artifact. Anything else (a
/// YAML envelope, a byte-order mark, a pipe), or a `table_dir` where no file can be made (a
/// read-only one), is read whole, as [`verified`] does: what is verified is the same, only
/// the memory it takes differs.
pub fn verified_streamed(
    path: &Path,
    trusted: &[String],
    threshold: usize,
    table_dir: &Path,
) -> Result<VerifiedPackage, CliError> {
    use std::io::{Read, Seek};
    let keys = trusted_keys(trusted)?;
    let mut file = std::fs::File::open(path).map_err(|e| CliError::io(path, e))?;
    let mut head = Vec::new();
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if regular {
        (&mut file)
            .take(64)
            .read_to_end(&mut head)
            .and_then(|_| file.rewind())
            .map_err(|e| CliError::io(path, e))?;
    }
    if !regular || head.starts_with(doc::BOM) || doc::form(path, &head) != doc::Form::Json {
        return verified_whole(path, &keys, threshold);
    }
    let Ok(table) = TableFile::unnamed_in(table_dir) else {
        return verified_whole(path, &keys, threshold);
    };
    sign::verify_reader(file, &keys, threshold, &Limits::DEFAULT, Box::new(table))
        .map_err(|e| failed(path, &e))
}

/// The `--trusted-key`s given, at least one.
fn trusted_keys(trusted: &[String]) -> Result<TrustedKeys, CliError> {
    if trusted.is_empty() {
        return Err(CliError::usage("give at least one --trusted-key"));
    }
    keys::trusted(trusted)
}
