//! File output that is never left half-written.

use std::io::BufWriter;
use std::path::Path;

use ota_core::Status;

use crate::error::Failure;

/// Writes `path` through a temporary file beside it, renamed over `path` only when `fill`
/// succeeds; on any failure the temporary file is removed and `path` is untouched.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| {
        Failure::new(Status::Io, format!("{what} {}: {e}", path.display()))
    };
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let file =
            std::fs::File::create(&tmp).map_err(|e| io("creating a temporary file for", e))?;
        let mut out = BufWriter::new(file);
        fill(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| io("writing", e.into_error()))?;
        file.sync_all().map_err(|e| io("syncing", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("renaming into", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
