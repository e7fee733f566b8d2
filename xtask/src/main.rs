//! `cargo xtask install [OPTIONS]`: builds libota and installs it as a C library. See the
//! library documentation (`xtask/src/lib.rs`) for the installed files.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask install [OPTIONS]

Builds libota (cargo rustc -p ota-ffi) and installs the header, the shared and static
libraries, ota.pc and the CMake package.

Options:
  --prefix DIR             where to install (absolute; default /usr/local)
  --libdir DIR             library directory under the prefix (default lib)
  --includedir DIR         header directory under the prefix (default include)
  --destdir DIR            stage the files under DIR (for packagers); they still name --prefix
  --profile NAME           cargo profile (default release); --release is the same as the default
  --no-default-features    build without ota-ffi's features tuf and probe-runners
  --features LIST          ota-ffi features to build with (e.g. probe-runners)
  --target-dir DIR         cargo's target directory

The minimal firmware build: cargo xtask install --prefix DIR --no-default-features";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("install") => {}
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(other) => return Err(format!("unknown task {other:?}\n\n{USAGE}")),
    }
    let mut layout = xtask::Layout::new("/usr/local");
    let mut options = xtask::Options::default();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--prefix" => layout.prefix = PathBuf::from(value()?),
            "--libdir" => layout.libdir = PathBuf::from(value()?),
            "--includedir" => layout.includedir = PathBuf::from(value()?),
            "--destdir" => layout.destdir = Some(PathBuf::from(value()?)),
            "--profile" => options.profile = Some(value()?),
            "--release" => options.profile = Some("release".into()),
            "--no-default-features" => options.no_default_features = true,
            "--features" => options.features = Some(value()?),
            "--target-dir" => options.target_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    let built = xtask::build(&options)?;
    let installed = xtask::install(&built, &layout)?;
    println!(
        "installed libota {} ({}) into {}",
        built.version()?,
        built.soname,
        layout.prefix.display()
    );
    println!(
        "  pkg-config: PKG_CONFIG_PATH={} pkg-config --cflags --libs ota",
        installed.pkgconfig_dir.display()
    );
    println!(
        "  CMake:      cmake -DCMAKE_PREFIX_PATH={} ... ; find_package(ota)",
        layout.prefix.display()
    );
    Ok(())
}
