//! Laying a built `libota` out under a prefix, as a C library is installed.

use std::path::{Path, PathBuf};

use crate::compile::{Built, workspace_dir};
use crate::metadata;

/// Where to install.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The prefix the installed files name (`/usr/local`): absolute.
    pub prefix: PathBuf,
    /// The library directory, relative to the prefix (`lib`, `lib/x86_64-linux-gnu`).
    pub libdir: PathBuf,
    /// The header directory, relative to the prefix (`include`).
    pub includedir: PathBuf,
    /// Staging root for packagers: files go to `DESTDIR/PREFIX/...` while naming `PREFIX`.
    pub destdir: Option<PathBuf>,
}

impl Layout {
    /// `lib` and `include` under `prefix`.
    pub fn new(prefix: impl Into<PathBuf>) -> Layout {
        Layout {
            prefix: prefix.into(),
            libdir: "lib".into(),
            includedir: "include".into(),
            destdir: None,
        }
    }

    /// Where a path under the prefix is written (under `destdir` when set).
    fn staged(&self, rel: &Path) -> PathBuf {
        let full = self.prefix.join(rel);
        match &self.destdir {
            Some(d) => d.join(full.strip_prefix("/").unwrap_or(&full)),
            None => full,
        }
    }
}

/// The installed files, as written (under `destdir` when set).
#[derive(Debug, Clone)]
pub struct Installed {
    /// The header directory.
    pub includedir: PathBuf,
    /// The library directory.
    pub libdir: PathBuf,
    /// `libota.so.X.Y.Z`.
    pub shared: PathBuf,
    /// `ota.pc`'s directory, for `PKG_CONFIG_PATH`.
    pub pkgconfig_dir: PathBuf,
    /// `otaConfig.cmake`'s directory, for `ota_DIR` (or the prefix for
    /// `CMAKE_PREFIX_PATH`).
    pub cmake_dir: PathBuf,
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(io(path))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    // A fresh file, never writing through an existing one that a running program may map.
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(io(link))
}

/// Installs `built` under `layout`: the header and `ota_build.h`, `libota.so.X.Y.Z` with its
/// SONAME link and `libota.so`, `libota.a`, `ota.pc`, and the CMake package.
pub fn install(built: &Built, layout: &Layout) -> Result<Installed, String> {
    if !layout.prefix.is_absolute() {
        return Err(format!(
            "--prefix must be absolute, found {}",
            layout.prefix.display()
        ));
    }
    for (what, rel) in [
        ("--libdir", &layout.libdir),
        ("--includedir", &layout.includedir),
    ] {
        if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "{what} must be relative to the prefix, found {}",
                rel.display()
            ));
        }
    }
    let version = built.version()?;
    let includedir = layout.staged(&layout.includedir);
    let libdir = layout.staged(&layout.libdir);
    let pkgconfig_dir = libdir.join("pkgconfig");
    let cmake_dir = libdir.join("cmake/ota");
    for d in [&includedir, &libdir, &pkgconfig_dir, &cmake_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }

    copy(
        &workspace_dir().join("include/ota.h"),
        &includedir.join("ota.h"),
    )?;
    write(&includedir.join("ota_build.h"), &built.build_header)?;

    let real = format!("libota.so.{version}");
    let shared = libdir.join(&real);
    copy(&built.cdylib, &shared)?;
    symlink(&real, &libdir.join(&built.soname))?;
    symlink(&built.soname, &libdir.join("libota.so"))?;
    copy(&built.staticlib, &libdir.join("libota.a"))?;

    let m = metadata::Metadata {
        prefix: &layout.prefix,
        libdir: &layout.libdir,
        includedir: &layout.includedir,
        version: &version,
        soname: &built.soname,
        shared_file: &real,
        native_static_libs: &built.native_static_libs,
        has_tuf: built.has("OTA_HAS_TUF"),
        has_probe_runners: built.has("OTA_HAS_PROBE_RUNNERS"),
    };
    write(&pkgconfig_dir.join("ota.pc"), &m.pkg_config())?;
    write(&cmake_dir.join("otaConfig.cmake"), &m.cmake_config())?;
    write(
        &cmake_dir.join("otaConfigVersion.cmake"),
        &m.cmake_config_version(),
    )?;
    Ok(Installed {
        includedir,
        libdir,
        shared,
        pkgconfig_dir,
        cmake_dir,
    })
}
