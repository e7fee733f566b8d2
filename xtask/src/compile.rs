//! Building `libota` with cargo, and finding what it built in cargo's JSON messages.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to build `libota`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The cargo profile (`dev`, `release`, ...); `release` when `None`.
    pub profile: Option<String>,
    /// Build without ota-ffi's default features (`tuf`, `probe-runners`).
    pub no_default_features: bool,
    /// The features to build with, comma-separated.
    pub features: Option<String>,
    /// The target directory; cargo's own choice when `None`.
    pub target_dir: Option<PathBuf>,
    /// Where cargo's progress and diagnostics go: this file, or the terminal when `None`.
    pub log: Option<PathBuf>,
}

/// What a build of `libota` produced: everything [`crate::install`] needs.
#[derive(Debug, Clone)]
pub struct Built {
    /// `libota.so`.
    pub cdylib: PathBuf,
    /// `libota.a`.
    pub staticlib: PathBuf,
    /// The text of this build's `ota_build.h` (version and feature macros).
    pub build_header: String,
    /// The SONAME the shared library carries (`libota.so.0.1`).
    pub soname: String,
    /// The system libraries a static link needs (`-lpthread`, `-ldl`, ...), as rustc printed
    /// them.
    pub native_static_libs: Vec<String>,
}

impl Built {
    /// The version, as `ota_build.h` states it (`0.1.0`).
    pub fn version(&self) -> Result<String, String> {
        macro_value(&self.build_header, "OTA_VERSION_STRING")
            .map(|v| v.trim_matches('"').to_string())
    }

    /// Whether a feature macro (`OTA_HAS_TUF`) is 1 in this build.
    pub fn has(&self, feature_macro: &str) -> bool {
        macro_value(&self.build_header, feature_macro).is_ok_and(|v| v == "1")
    }
}

/// The value of `#define NAME VALUE` in a header.
fn macro_value(header: &str, name: &str) -> Result<String, String> {
    header
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().to_string())
        })
        .ok_or_else(|| format!("ota_build.h defines no {name}"))
}

/// The workspace root (this crate's parent directory).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds ota-ffi's library with cargo (`cargo rustc --lib`, so rustc prints the system
/// libraries a static link needs) and returns what it built.
pub fn build(options: &Options) -> Result<Built, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("rustc")
        .arg("--manifest-path")
        .arg(workspace_dir().join("ota-ffi/Cargo.toml"))
        .args(["--lib", "--message-format=json"])
        .args(["--profile", options.profile.as_deref().unwrap_or("release")]);
    if options.no_default_features {
        cmd.arg("--no-default-features");
    }
    if let Some(f) = &options.features {
        cmd.args(["--features", f]);
    }
    if let Some(dir) = &options.target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    cmd.args(["--", "--print", "native-static-libs"]);
    eprintln!("building libota: {cmd:?}");
    if let Some(log) = &options.log {
        let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stderr(f);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from cargo")?;
    let mut found = Found::default();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
        found.read(&line);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo: {e}"))?;
    if !status.success() {
        let log = options.log.as_ref().map_or(String::new(), |l| {
            format!(": {}", std::fs::read_to_string(l).unwrap_or_default())
        });
        return Err(format!("cargo failed ({status}){log}"));
    }
    found.into_built()
}

/// What cargo's messages said so far.
#[derive(Default)]
struct Found {
    cdylib: Option<PathBuf>,
    staticlib: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    native_static_libs: Option<Vec<String>>,
}

impl Found {
    fn read(&mut self, line: &str) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let ours = msg["package_id"]
            .as_str()
            .is_some_and(|id| id.contains("ota-ffi"));
        match msg["reason"].as_str() {
            Some("compiler-artifact") if ours && msg["target"]["name"] == "ota" => {
                for f in msg["filenames"].as_array().into_iter().flatten() {
                    let Some(f) = f.as_str() else { continue };
                    if f.ends_with(".so") || f.ends_with(".dylib") {
                        self.cdylib = Some(f.into());
                    } else if f.ends_with(".a") {
                        self.staticlib = Some(f.into());
                    }
                }
            }
            Some("build-script-executed") if ours => {
                self.out_dir = msg["out_dir"].as_str().map(PathBuf::from);
            }
            Some("compiler-message") => {
                if let Some(rendered) = msg["message"]["rendered"].as_str()
                    && !rendered.starts_with("note: ")
                {
                    eprint!("{rendered}");
                }
                if !ours {
                    return;
                }
                let text = msg["message"]["message"].as_str().unwrap_or_default();
                if let Some(libs) = text.strip_prefix("native-static-libs:") {
                    self.native_static_libs =
                        Some(libs.split_whitespace().map(str::to_string).collect());
                }
            }
            _ => {}
        }
    }

    fn into_built(self) -> Result<Built, String> {
        let out_dir = self
            .out_dir
            .ok_or("cargo did not report ota-ffi's build script")?;
        let read = |name: &str| {
            std::fs::read_to_string(out_dir.join(name))
                .map_err(|e| format!("reading {}: {e}", out_dir.join(name).display()))
        };
        Ok(Built {
            cdylib: self.cdylib.ok_or("cargo built no libota.so")?,
            staticlib: self.staticlib.ok_or("cargo built no libota.a")?,
            build_header: read("ota_build.h")?,
            soname: read("soname")?.trim().to_string(),
            native_static_libs: self
                .native_static_libs
                .ok_or("rustc printed no native-static-libs")?,
        })
    }
}
