//! What `ota pack` ships: one file, or a directory as a reproducible tar, and the check that
//! it is exactly what a model manifest's `files[]` describe.
//!
//! A directory is walked in byte order of its relative paths; each regular file goes into a
//! tar with owner and group 0, no owner names, a fixed time and mode 0644 (0755 when
//! executable), so the same tree gives the same bytes on every machine. Directories are implied
//! by their files; symbolic links and other special files are refused.
//!
//! The check: with a directory, every `files[]` entry must be a file at its `path` with its
//! `size_bytes` and `sha256`, and the directory may hold nothing else. With one file, the
//! manifest must list exactly one file and the bytes must match it (a single-file artifact
//! carries no name, so the entry's `path` is where the device puts it).

use std::fs::File;
use std::path::{Path, PathBuf};

use ota_core::{ModelManifest, Status};

use crate::out::{CliError, bytes};
use crate::progress;
use crate::signals::Stop;

/// The regular files under `dir`, as (`/`-separated relative path, full path), sorted by
/// relative path.
pub fn files_in(dir: &Path) -> Result<Vec<(String, PathBuf)>, CliError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| CliError::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CliError::io(&d, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| CliError::io(&path, e))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let rel = relative(dir, &path)?;
                found.push((rel, path));
            } else {
                return Err(CliError::usage(format!(
                    "{}: not a regular file or directory (symbolic links and special files are not packed)",
                    path.display()
                )));
            }
        }
    }
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(found)
}

fn relative(root: &Path, path: &Path) -> Result<String, CliError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| CliError::usage(format!("{}: the name is not UTF-8", path.display())))
}

/// Checks `source` (a file or a directory) against every `files[]` entry of the manifest;
/// the error names the entry and the field that differs.
pub fn check(manifest: &ModelManifest, source: &Path, json: bool) -> Result<(), CliError> {
    let shown = source.display();
    if source.is_dir() {
        let on_disk = files_in(source)?;
        for (i, f) in manifest.files.iter().enumerate() {
            let Some((_, full)) = on_disk.iter().find(|(rel, _)| rel == f.path.as_str()) else {
                return Err(CliError::failure(
                    Some(Status::Invalid),
                    format!(
                        "--file {shown}: files[{i}] ({}): no such file in the directory",
                        f.path
                    ),
                ));
            };
            compare(
                i,
                f,
                full,
                &format!("--file {shown}: files[{i}] ({})", f.path),
                json,
            )?;
        }
        if let Some((rel, _)) = on_disk
            .iter()
            .find(|(rel, _)| !manifest.files.iter().any(|f| f.path.as_str() == rel))
        {
            return Err(CliError::failure(
                Some(Status::Invalid),
                format!(
                    "--file {shown}: {rel}: in the directory but not in the manifest's files[]"
                ),
            ));
        }
        return Ok(());
    }
    match manifest.files.as_slice() {
        [one] => compare(
            0,
            one,
            source,
            &format!("--file {shown}: files[0] ({})", one.path),
            json,
        ),
        many => Err(CliError::failure(
            Some(Status::Invalid),
            format!(
                "--file {shown}: the manifest lists {} files ({}); give the model's directory",
                many.len(),
                many.iter()
                    .enumerate()
                    .map(|(i, f)| format!("files[{i}] {}", f.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn compare(
    i: usize,
    entry: &ota_core::manifest::ModelFile,
    path: &Path,
    what: &str,
    json: bool,
) -> Result<(), CliError> {
    let size = std::fs::metadata(path)
        .map_err(|e| CliError::io(path, e))?
        .len();
    if size != entry.size_bytes {
        return Err(CliError::failure(
            Some(Status::DigestMismatch),
            format!(
                "{what}: the file is {size} bytes ({}), files[{i}].size_bytes is {}",
                bytes(size),
                entry.size_bytes
            ),
        ));
    }
    let sha = progress::hash_file(path, size, "checking", json)?.sha256;
    if sha != entry.sha256 {
        return Err(CliError::failure(
            Some(Status::DigestMismatch),
            format!(
                "{what}: the file's sha256 is {sha}, files[{i}].sha256 is {}",
                entry.sha256
            ),
        ));
    }
    Ok(())
}

/// Writes the reproducible tar of `dir` into `to`; given up between two files once `stop`
/// has heard a signal.
pub fn write_tar(dir: &Path, to: &File, stop: Option<&Stop>) -> Result<(), CliError> {
    let mut builder = tar::Builder::new(to);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    for (rel, full) in files_in(dir)? {
        if stop.is_some_and(Stop::stopped) {
            return Err(CliError::usage("interrupted by a signal"));
        }
        builder
            .append_path_with_name(&full, &rel)
            .map_err(|e| CliError::io(&full, e))?;
    }
    builder
        .into_inner()
        .and_then(|f| f.sync_all())
        .map_err(|e| CliError::io(dir, e))
}
