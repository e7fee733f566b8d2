//! Helpers shared by the cross-crate tests: where the fixtures, the C clients and the Python
//! tests live.

use std::path::{Path, PathBuf};

#[path = "src/fleet.rs"]
pub mod fleet;

#[path = "src/device.rs"]
pub mod device;

#[path = "src/http.rs"]
pub mod http;

#[path = "src/counting.rs"]
pub mod counting;

/// Deterministic, poorly compressible bytes: shared with the benchmarks and the demo.
pub use ota_sim::noise;

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

/// The directory holding `libota.so` and `libota.a`, as built by cargo for this test run
/// (`target/<profile>/deps`, beside the test executable).
pub fn libota_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .expect("test executable directory")
        .to_path_buf();
    assert!(
        dir.join("libota.so").exists(),
        "libota.so is not in {}: build it with `cargo test --workspace`",
        dir.display()
    );
    link_soname(&dir);
    dir
}

/// The SONAME a shared library carries (`libota.so.0.1`), as `readelf -d` prints it.
pub fn soname_of(lib: &Path) -> Option<String> {
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(lib)
        .output()
        .expect("running readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("Library soname: [")? + "Library soname: [".len();
    let end = text[start..].find(']')?;
    Some(text[start..start + end].to_string())
}

/// libota.so carries a SONAME (`libota.so.0.1`), which is what a program linked with `-lota`
/// asks the loader for: cargo builds the file as `libota.so` only, so the link from the
/// SONAME to it is made beside it (as `cargo xtask install` makes it in an installed tree).
fn link_soname(dir: &Path) {
    let Some(soname) = soname_of(&dir.join("libota.so")) else {
        return;
    };
    let link = dir.join(&soname);
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new("libota.so")) {
        return;
    }
    // Another test may be making it at the same time: a link of our own, renamed over.
    let tmp = dir.join(format!("{soname}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink("libota.so", &tmp).expect("linking the SONAME to libota.so");
    std::fs::rename(&tmp, &link).expect("linking the SONAME to libota.so");
}

/// The system libraries the C clients link besides libota (what a static link of it needs,
/// and harmless for a shared one).
pub const C_SYSTEM_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm"];

/// Where the C clients are compiled to.
pub fn c_build_dir() -> PathBuf {
    let dir = libota_dir().parent().expect("target dir").join("c-clients");
    std::fs::create_dir_all(&dir).expect("creating the C build directory");
    dir
}

/// Compiles `tests/c/<name>.c` against `include/ota.h` and `libota.so` with every warning an
/// error, and returns the executable's path.
pub fn compile_c(name: &str) -> PathBuf {
    compile_c_with(name, &[], name)
}

/// Compiles with AddressSanitizer and LeakSanitizer (instead of valgrind, for large runs).
pub fn compile_c_asan(name: &str) -> PathBuf {
    compile_c_with(
        name,
        &["-fsanitize=address", "-fno-omit-frame-pointer"],
        &format!("{name}-asan"),
    )
}

fn compile_c_with(name: &str, extra: &[&str], exe: &str) -> PathBuf {
    let lib = libota_dir();
    let out = c_build_dir().join(exe);
    let status = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-g",
            "-O1",
            "-D_DEFAULT_SOURCE",
        ])
        .args(extra)
        .arg("-I")
        .arg(workspace_dir().join("include"))
        .arg(tests_dir().join("c").join(format!("{name}.c")))
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        // DT_RPATH, not DT_RUNPATH: searched before LD_LIBRARY_PATH, which `cargo test` points
        // at target/debug too, where an older libota.so from `cargo build` may lie.
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lota")
        .args(C_SYSTEM_LIBS)
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "compiling tests/c/{name}.c failed");
    out
}

/// Whether valgrind is installed (CI installs it; `OTA_NO_VALGRIND=1` skips it locally).
pub fn have_valgrind() -> bool {
    std::env::var_os("OTA_NO_VALGRIND").is_none()
        && std::process::Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Runs a compiled C client with `args`, under valgrind when available (any memory error or
/// definite leak fails the run), and asserts that it passes.
pub fn run_c(exe: &Path, args: &[&std::ffi::OsStr]) -> String {
    run_c_with(exe, args, have_valgrind())
}

/// Runs a client built by [`compile_c_asan`]: AddressSanitizer reports memory errors and
/// LeakSanitizer leaks, each failing the run.
pub fn run_c_asan(exe: &Path, args: &[&std::ffi::OsStr]) -> String {
    run_c_with(exe, args, false)
}

fn run_c_with(exe: &Path, args: &[&std::ffi::OsStr], valgrind: bool) -> String {
    let mut cmd = if valgrind {
        let mut c = std::process::Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
            "--track-origins=yes",
        ])
        .arg(exe);
        c
    } else {
        std::process::Command::new(exe)
    };
    let out = cmd
        .args(args)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=98",
        )
        .output()
        .expect("running the C client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        exe.display(),
        out.status
    );
    stdout
}

/// The fixed keys of the fixtures and tests: signing key `n` has secret `[n; 32]`.
pub fn signing_key(n: u8) -> ota_core::sign::SigningKey {
    ota_core::sign::SigningKey::from_secret([n; 32])
}

/// The fixed encryption key of the fixtures and tests.
pub fn seal_key() -> ota_core::seal::SealKey {
    ota_core::seal::SealKey::from_bytes([0x5e; 32])
}

/// Seals `plaintext` with [`seal_key`] and a fixed IV, and fills in `package` from it.
pub fn seal_into(package: &mut ota_core::Package, plaintext: &[u8]) -> Vec<u8> {
    let (bytes, sealed) =
        ota_core::seal::seal_bytes(&seal_key(), [0x1f; 16], plaintext).expect("sealing");
    package.set_sealed(&sealed);
    bytes
}

/// A signed rollback from `from`, expiring in 2100: what [`firmware_package`] carries to be a
/// rollback of `from`.
pub fn rollback_from(from: &str) -> ota_core::package::Rollback {
    ota_core::package::Rollback {
        from: from.parse().expect("version"),
        expires: "2100-01-01T00:00:00Z".parse().expect("time"),
    }
}

/// The seed 004 firmware package fixture.
pub fn firmware_package() -> ota_core::Package {
    ota_core::Package::from_json(&read_fixture("packages/valid/seed-004-firmware.json"))
        .expect("fixture")
}

/// A static HTTP file server on loopback for `root`, serving until the process ends; its base
/// URL. Paths with `..` and missing files are 404.
pub fn serve_dir(root: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let file = root.join(&path);
            let ok = !path.contains("..") && file.is_file();
            let body = if ok {
                std::fs::read(&file).unwrap()
            } else {
                b"not found".to_vec()
            };
            let status = if ok { "200 OK" } else { "404 Not Found" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// 2026-04-15 07:32:37 UTC in Unix ms: the time the TUF tests and fixtures are signed at.
#[cfg(feature = "tuf")]
pub const TUF_NOW: ota_core::UnixMs = ota_core::UnixMs(1_776_238_357_000);

/// A TUF role of the fixed keys `keys` (see [`signing_key`]) with `threshold`.
#[cfg(feature = "tuf")]
pub fn tuf_role(keys: &[u8], threshold: u64) -> ota_host::tuf::repo::Role {
    ota_host::tuf::repo::Role {
        keys: keys.iter().map(|k| signing_key(*k).public_key()).collect(),
        threshold,
    }
}

/// A TUF repository in `dir/repo` (one key per role: root 1, targets 3, snapshot 4,
/// timestamp 5) holding one sealed firmware package of about `size` bytes as target `name`:
/// the repository, its trusted root (`1.root.json`) and the target's bytes.
#[cfg(feature = "tuf")]
pub fn tuf_repo_with_target(
    dir: &Path,
    name: &str,
    size: usize,
) -> (ota_host::tuf::repo::Repo, Vec<u8>, Vec<u8>) {
    use ota_host::tuf::repo::{Expiries, Repo, Roles};
    let roles = Roles {
        root: tuf_role(&[1], 1),
        targets: tuf_role(&[3], 1),
        snapshot: tuf_role(&[4], 1),
        timestamp: tuf_role(&[5], 1),
    };
    let keys: Vec<_> = [1, 3, 4, 5].into_iter().map(signing_key).collect();
    let repo = Repo::create(dir.join("repo"), &roles, &keys, &Expiries::from(TUF_NOW)).unwrap();
    let mut package = firmware_package();
    let artifact = seal_into(&mut package, &noise(size, size as u64));
    let path = dir.join("artifact.enc");
    std::fs::write(&path, &artifact).unwrap();
    repo.add_package(name, &path, &package, &keys[1..], &Expiries::from(TUF_NOW))
        .unwrap();
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    (repo, root, artifact)
}
