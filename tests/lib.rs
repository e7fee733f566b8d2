//! Helpers shared by the cross-crate tests: where the fixtures, the C clients and the Python
//! tests live.

use std::path::{Path, PathBuf};

/// The `tests/` directory of the workspace.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    tests_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A fixture file's path, relative to `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    tests_dir().join("fixtures").join(rel)
}

/// A fixture's bytes.
pub fn read_fixture(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The files of a fixture directory, sorted, as (file name, bytes).
pub fn fixture_dir(rel: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixture(rel);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("fixture"))
        })
        .collect();
    out.sort();
    out
}
