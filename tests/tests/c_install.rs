//! libota installed as a C library is (`cargo xtask install`): a shared library with a
//! SONAME and its links, a static library, the header with this build's version and feature
//! macros, `ota.pc` and a CMake package. A C program (`examples/c-verify`) is built against
//! the installed tree with `pkg-config --cflags --libs ota` (its Makefile) and with CMake's
//! `find_package(ota)` (its CMakeLists.txt), then run.
//!
//! The default build is the one this test run made (installed as `cargo xtask install` would
//! install it); the minimal firmware build (no TUF, no probe runners) is built by the
//! installer itself, in its own target directory, and must compile and link with the same
//! `ota.h`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = ota_tests::c_build_dir().join(format!("install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd`, asserting success; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether `tool --version` runs; CI installs every tool (`OTA_REQUIRE_TOOLS=1` fails
/// without it).
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
        "{tool} is not installed"
    );
    ok
}

/// The build this test run made, as `cargo xtask install` finds a build.
fn this_build() -> xtask::Built {
    let lib = ota_tests::libota_dir();
    xtask::Built {
        cdylib: lib.join("libota.so"),
        staticlib: lib.join("libota.a"),
        build_header: ota::BUILD_HEADER.to_string(),
        soname: ota::SONAME.to_string(),
        native_static_libs: ota_tests::C_SYSTEM_LIBS
            .iter()
            .map(|l| l.to_string())
            .collect(),
    }
}

/// The dynamic section of an ELF file, as `readelf -d` prints it.
fn dynamic(path: &Path) -> String {
    run(Command::new("readelf").arg("-d").arg(path))
}

/// Writes a signed firmware and its trusted key; returns (key file, envelope file, package).
fn fixture(dir: &Path) -> (PathBuf, PathBuf, ota_core::VerifiedPackage) {
    let v = ota_tests::fleet::firmware("2.0.0", false);
    let key = dir.join("trusted.hex");
    let env = dir.join("envelope.json");
    std::fs::write(&key, ota_tests::signing_key(1).public_key().to_hex()).unwrap();
    std::fs::write(&env, v.envelope_json().unwrap()).unwrap();
    (key, env, v)
}

/// What `verify` must print for `v`, built with the given features.
fn check_output(out: &str, v: &ota_core::VerifiedPackage, tuf: bool, runners: bool) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let version = ota_core::VERSION;
    let first = format!(
        "ota {version} (built against {version}), tuf: {}, probe runners: {}",
        yes(tuf),
        yes(runners)
    );
    assert!(out.starts_with(&first), "{out}");
    assert_eq!(out.contains("probe runner: linked"), runners, "{out}");
    let p = v.package();
    for line in [
        format!("id: {}", v.id()),
        format!("name: {}", p.name),
        format!("version: {}", p.version),
        format!("sha256: {}", p.sha256.to_hex()),
        format!("size: {}", p.size_bytes),
        format!("chunks: {}", v.chunks().len()),
        "report: success".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
}

/// Builds examples/c-verify against the tree under `prefix` with its Makefile (pkg-config)
/// and its CMakeLists.txt (find_package), shared and, when `static_too`, static; runs each.
fn build_and_run_the_example(prefix: &Path, work: &Path, built: &xtask::Built, static_too: bool) {
    let (key, env, v) = fixture(work);
    let example = ota_tests::workspace_dir().join("examples/c-verify");
    let pkgconfig = prefix.join("lib/pkgconfig");
    let libdir = prefix.join("lib");
    let (tuf, runners) = (built.has("OTA_HAS_TUF"), built.has("OTA_HAS_PROBE_RUNNERS"));

    // pkg-config answers for the installed tree.
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "ota"])
        .env("PKG_CONFIG_PATH", &pkgconfig));
    assert!(
        flags.contains(&format!("-I{}", prefix.join("include").display()))
            && flags.contains(&format!("-L{}", libdir.display()))
            && flags.contains("-lota"),
        "{flags}"
    );

    let mut kinds = vec![false];
    if static_too {
        kinds.push(true);
    }
    for is_static in kinds {
        let tag = if is_static { "static" } else { "shared" };
        // pkg-config, through the example's Makefile.
        let out_dir = work.join(format!("make-{tag}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let mut make = Command::new("make");
        make.arg("-f")
            .arg(example.join("Makefile"))
            .arg(format!("O={}", out_dir.display()))
            .env("PKG_CONFIG_PATH", &pkgconfig);
        if is_static {
            make.arg("STATIC=1");
        }
        run(&mut make);
        let exe = out_dir.join("verify");
        let needed = dynamic(&exe);
        assert_eq!(
            needed.contains(&format!("[{}]", built.soname)),
            !is_static,
            "{needed}"
        );
        let out = run(Command::new(&exe)
            .arg(&key)
            .arg(&env)
            .env("LD_LIBRARY_PATH", &libdir));
        check_output(&out, &v, tuf, runners);

        // CMake's find_package(ota).
        let build = work.join(format!("cmake-{tag}"));
        run(Command::new("cmake")
            .arg("-S")
            .arg(&example)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!(
                "-DOTA_STATIC={}",
                if is_static { "ON" } else { "OFF" }
            )));
        run(Command::new("cmake").arg("--build").arg(&build));
        let exe = build.join("verify");
        assert_eq!(
            dynamic(&exe).contains(&format!("[{}]", built.soname)),
            !is_static
        );
        // CMake links the imported shared library with a run path to it.
        let out = run(Command::new(&exe).arg(&key).arg(&env));
        check_output(&out, &v, tuf, runners);
    }
}

/// The installed files, their links, and the SONAME.
fn check_tree(prefix: &Path, built: &xtask::Built) {
    let version = built.version().unwrap();
    let lib = prefix.join("lib");
    let real = lib.join(format!("libota.so.{version}"));
    assert!(real.is_file());
    assert_eq!(
        std::fs::read_link(lib.join(&built.soname)).unwrap(),
        PathBuf::from(format!("libota.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libota.so")).unwrap(),
        PathBuf::from(&built.soname)
    );
    assert!(
        dynamic(&real).contains(&format!("Library soname: [{}]", built.soname)),
        "no SONAME {} in {}",
        built.soname,
        real.display()
    );
    assert!(lib.join("libota.a").is_file());
    assert_eq!(
        std::fs::read_to_string(prefix.join("include/ota_build.h")).unwrap(),
        built.build_header
    );
    assert_eq!(
        std::fs::read(prefix.join("include/ota.h")).unwrap(),
        std::fs::read(ota_tests::workspace_dir().join("include/ota.h")).unwrap(),
        "the installed ota.h is the checked-in one, whatever the features"
    );
    for f in [
        "lib/pkgconfig/ota.pc",
        "lib/cmake/ota/otaConfig.cmake",
        "lib/cmake/ota/otaConfigVersion.cmake",
    ] {
        assert!(prefix.join(f).is_file(), "{f} is missing");
    }
}

#[test]
fn the_default_build_installs_and_a_c_program_builds_with_pkg_config_and_cmake() {
    if !(have("pkg-config") && have("cmake") && have("make") && have("readelf")) {
        return;
    }
    let work = tmp("default");
    let prefix = work.join("prefix");
    let built = this_build();
    xtask::install(&built, &xtask::Layout::new(&prefix)).unwrap();
    check_tree(&prefix, &built);
    assert!(built.has("OTA_HAS_TUF") && built.has("OTA_HAS_PROBE_RUNNERS"));
    build_and_run_the_example(&prefix, &work, &built, false);
    std::fs::remove_dir_all(work).unwrap();
}

#[test]
fn the_minimal_firmware_build_installs_and_links_with_the_same_header() {
    if !(have("pkg-config") && have("cmake") && have("make") && have("readelf")) {
        return;
    }
    let work = tmp("minimal");
    let prefix = work.join("prefix");
    // Its own target directory: the workspace's holds this run's libota, which other tests
    // are using.
    let target = ota_tests::libota_dir()
        .join("../../ota-minimal")
        .canonicalize()
        .unwrap_or_else(|_| ota_tests::libota_dir().join("../../ota-minimal"));
    let built = xtask::build(&xtask::Options {
        profile: Some("dev".into()),
        no_default_features: true,
        features: None,
        target_dir: Some(target),
        log: Some(work.join("cargo.log")),
    })
    .unwrap();
    assert!(!built.has("OTA_HAS_TUF") && !built.has("OTA_HAS_PROBE_RUNNERS"));
    assert!(
        built.build_header.contains("#define OTA_HAS_TUF 0"),
        "{}",
        built.build_header
    );
    xtask::install(&built, &xtask::Layout::new(&prefix)).unwrap();
    check_tree(&prefix, &built);
    // The minimal library exports no TUF or probe-runner symbol.
    let symbols = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(prefix.join(format!("lib/{}", built.soname))));
    assert!(symbols.contains("ota_agent_new"), "{symbols}");
    assert!(!symbols.contains("ota_tuf_") && !symbols.contains("ota_probe_run"));
    build_and_run_the_example(&prefix, &work, &built, true);
    std::fs::remove_dir_all(work).unwrap();
}

#[test]
fn the_cmake_package_refuses_an_incompatible_version() {
    if !(have("cmake") && have("make")) {
        return;
    }
    let work = tmp("cmake-version");
    let prefix = work.join("prefix");
    xtask::install(&this_build(), &xtask::Layout::new(&prefix)).unwrap();
    let project = work.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let configure = |request: &str| {
        std::fs::write(
            project.join("CMakeLists.txt"),
            format!(
                "cmake_minimum_required(VERSION 3.16)\nproject(p LANGUAGES C)\nfind_package(ota {request} REQUIRED)\n"
            ),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(work.join("build"));
        Command::new("cmake")
            .arg("-S")
            .arg(&project)
            .arg("-B")
            .arg(work.join("build"))
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .output()
            .unwrap()
            .status
            .success()
    };
    let v: Vec<u32> = ota_core::VERSION
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(configure(&format!("{}.{}", v[0], v[1])), "the same ABI");
    assert!(
        !configure(&format!("{}.{}", v[0] + 1, 0)),
        "a newer major version"
    );
    if v[0] == 0 {
        assert!(
            !configure(&format!("0.{}", v[1] + 1)),
            "0.x: a newer minor version is another ABI"
        );
    }
    std::fs::remove_dir_all(work).unwrap();
}

#[test]
fn install_refuses_a_relative_prefix_and_a_libdir_outside_it() {
    let built = this_build();
    let e = xtask::install(&built, &xtask::Layout::new("relative/prefix")).unwrap_err();
    assert!(e.contains("--prefix must be absolute"), "{e}");
    let mut layout = xtask::Layout::new(tmp("bad-libdir"));
    layout.libdir = "../lib".into();
    let e = xtask::install(&built, &layout).unwrap_err();
    assert!(e.contains("--libdir must be relative to the prefix"), "{e}");
}
