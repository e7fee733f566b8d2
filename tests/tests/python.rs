//! The Python tests under `tests/python/`, run with unittest: against the ctypes package in
//! `ota-ffi/python` with the `libota.so` built for this test run; against the same package
//! installed with pip into a fresh virtual environment; and `mypy --strict` over the package
//! and `examples/python`.
//!
//! The install runs offline (`--no-build-isolation --no-index`): the build backend is this
//! interpreter's setuptools (>= 70.1, from `tests/python/requirements.txt`), seen from the
//! environment through `--system-site-packages` with the suite's other dependencies, and the
//! wheel carries this run's `libota.so` (`OTA_PREBUILT_LIBOTA`); a second install, from the
//! checkout itself with nothing prebuilt, has the package's setup.py build libota with cargo.
//! A missing setuptools or mypy skips its test with the reason printed, unless
//! `OTA_REQUIRE_TOOLS=1` (CI) makes it a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ota_tests::{fixture, libota_dir, tests_dir, workspace_dir};

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ota-python-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether a test that needs `what` should run: true when it is there; otherwise prints why
/// it is skipped and returns false, or panics under `OTA_REQUIRE_TOOLS=1`.
fn tool_present(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    if std::env::var("OTA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "{what} is missing and OTA_REQUIRE_TOOLS=1: pip install --require-hashes -r tests/python/requirements.txt"
        );
    }
    eprintln!(
        "skipped: {what} is missing (pip install --require-hashes -r tests/python/requirements.txt)"
    );
    false
}

fn python_succeeds(code: &str) -> bool {
    Command::new(python())
        .args(["-c", code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the unittest suite of `tests/python` with `python` and the environment `cmd` has.
fn run_suite(mut cmd: Command) -> Output {
    cmd.args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(tests_dir().join("python"))
        .env("OTA_FIXTURES", fixture(""))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python")
}

fn assert_suite_passed(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python tests failed:\n{stderr}");
    assert!(stderr.contains("\nOK"), "{stderr}");
}

#[test]
fn python_unittests() {
    let mut cmd = Command::new(python());
    cmd.env("OTA_LIBRARY", libota_dir().join("libota.so"))
        .env("PYTHONPATH", workspace_dir().join("ota-ffi/python"));
    assert_suite_passed(&run_suite(cmd));
}

/// Copies the package's sources (not a built library, caches or build output) to `to`.
fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("ota")).unwrap();
    for name in ["pyproject.toml", "setup.py", "README.md"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(from.join("ota")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".py") || name == "py.typed" {
            std::fs::copy(&path, to.join("ota").join(&name)).unwrap();
        }
    }
}

#[test]
fn the_package_installed_with_pip_into_a_fresh_venv_passes_the_suite() {
    if !setuptools_present() {
        return;
    }
    let dir = Scratch::new("venv");
    let src = dir.path().join("src");
    copy_package(&workspace_dir().join("ota-ffi/python"), &src);
    let venv = dir.path().join("venv");
    let venv_python = make_venv(&venv);
    let mut install = pip_install(&venv_python, &src);
    install.env("OTA_PREBUILT_LIBOTA", libota_dir().join("libota.so"));
    assert_installed(install);
    let mut cmd = Command::new(&venv_python);
    cmd.env_remove("OTA_LIBRARY")
        .env_remove("PYTHONPATH")
        .env("OTA_EXPECT_INSTALLED_IN", &venv);
    let out = run_suite(cmd);
    assert_suite_passed(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("test_the_package_is_the_installed_copy")
            && !stderr.contains("skipped 'not an installed"),
        "{stderr}"
    );
}

/// A virtual environment at `venv` that sees this interpreter's packages; its python.
fn make_venv(venv: &Path) -> PathBuf {
    let made = Command::new(python())
        .args(["-m", "venv", "--system-site-packages", "--without-pip"])
        .arg(venv)
        .output()
        .expect("python -m venv");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    venv.join("bin/python")
}

/// `pip install SRC` into the environment of `venv_python`, offline.
fn pip_install(venv_python: &Path, src: &Path) -> Command {
    let mut cmd = Command::new(venv_python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--no-build-isolation",
        "--no-index",
        "--no-deps",
    ])
    .args(["--disable-pip-version-check", "--no-input", "--quiet"])
    .arg(src)
    .env_remove("PYTHONPATH")
    .env_remove("OTA_PREBUILT_LIBOTA");
    cmd
}

fn assert_installed(mut install: Command) {
    let out = install.output().expect("pip install");
    assert!(
        out.status.success(),
        "pip install failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn setuptools_present() -> bool {
    tool_present(
        python_succeeds(
            // Versions from the installed metadata: importing pip before setuptools trips
            // setuptools' distutils hack on some interpreters.
            "import sys, importlib.metadata as m; m.version('pip'); \
             sys.exit(tuple(map(int, m.version('setuptools').split('.')[:2])) < (70, 1))",
        ),
        "pip, or setuptools >= 70.1 (to build the wheel offline),",
    )
}

/// `pip install ota-ffi/python` as a user runs it in a checkout, with nothing prebuilt: the
/// package's setup.py builds libota with cargo and the wheel carries it. It builds the firmware
/// build (`OTA_CARGO_FEATURES=""`: no TUF client, no probe runners) in the target directory the
/// C install test's minimal build uses (`target/ota-minimal`), so only ota-ffi itself is
/// compiled again: the default build's TUF client (tough, reqwest, aws-lc) took minutes more
/// to compile in a directory of its own, and the workspace's holds the libota other tests load.
/// The installed package then loads without the optional functions and says which feature a
/// call lacks.
#[test]
fn pip_install_of_the_checkout_builds_libota_with_cargo() {
    if !setuptools_present() {
        return;
    }
    let dir = Scratch::new("venv-cargo");
    let venv = dir.path().join("venv");
    let venv_python = make_venv(&venv);
    let mut install = pip_install(&venv_python, &workspace_dir().join("ota-ffi/python"));
    install
        .env("OTA_CARGO_PROFILE", "dev")
        .env("OTA_CARGO_FEATURES", "")
        .env("CARGO_TARGET_DIR", libota_dir().join("../../ota-minimal"));
    assert_installed(install);
    // The installed copy loads the libota it carries, and works.
    let out = Command::new(&venv_python)
        .args([
            "-c",
            r#"
import os, sys, ota
from ota import _lib
here = os.path.realpath(sys.prefix) + os.sep
assert os.path.realpath(ota.__file__).startswith(here), ota.__file__
assert os.path.realpath(_lib.path).startswith(here), _lib.path
k = ota.SigningKey.generate()
print(ota.version(), k.key_id)
# The firmware build: what it lacks says so when called, and nothing else is missing.
assert ota.features() == frozenset(), ota.features()
for name, call in (
    ("ota_tuf_client_new", lambda: ota.TufClient("{}", "http://127.0.0.1:9/m", "http://127.0.0.1:9/t")),
    ("ota_probe_run", lambda: ota.probe_run({"kind": "file", "path": "/"}, [], 0)),
):
    try:
        call()
        raise AssertionError(name + " raised nothing")
    except NotImplementedError as e:
        assert name in str(e) and "feature" in str(e), e
"#,
        ])
        .current_dir(dir.path())
        .env_remove("OTA_LIBRARY")
        .env_remove("PYTHONPATH")
        .output()
        .expect("running the installed package");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mypy_strict_passes_on_the_package_and_the_examples() {
    if !tool_present(python_succeeds("import mypy"), "mypy") {
        return;
    }
    let root = workspace_dir();
    let cache = Scratch::new("mypy-cache");
    let out = Command::new(python())
        .args(["-m", "mypy", "--strict", "--config-file"])
        .arg(root.join("ota-ffi/python/pyproject.toml"))
        .arg("--cache-dir")
        .arg(cache.path())
        .arg(root.join("ota-ffi/python/ota"))
        .arg(root.join("examples/python"))
        .env("MYPYPATH", root.join("ota-ffi/python"))
        .output()
        .expect("running mypy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mypy --strict failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Success: no issues found"), "{stdout}");
}
