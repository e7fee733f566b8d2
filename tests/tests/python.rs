//! The Python tests under `tests/python/`, run with unittest: against the ctypes package in
//! `ota-ffi/python` with the `libota.so` built for this test run; against the same package
//! installed with pip into a fresh virtual environment; and `mypy --strict` over the package
//! and `examples/python`.
//!
//! The install runs offline (`--no-build-isolation --no-index`): the build backend is this
//! interpreter's setuptools (>= 70.1, from `tests/python/requirements.txt`), seen from the
//! environment through `--system-site-packages` with the suite's other dependencies, and the
//! wheel carries this run's `libota.so` (`OTA_PREBUILT_LIBOTA`) instead of a second cargo build.
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
    if !tool_present(
        python_succeeds(
            // Versions from the installed metadata: importing pip before setuptools trips
            // setuptools' distutils hack on some interpreters.
            "import sys, importlib.metadata as m; m.version('pip'); \
             sys.exit(tuple(map(int, m.version('setuptools').split('.')[:2])) < (70, 1))",
        ),
        "pip, or setuptools >= 70.1 (to build the wheel offline),",
    ) {
        return;
    }
    let dir = Scratch::new("venv");
    let src = dir.path().join("src");
    copy_package(&workspace_dir().join("ota-ffi/python"), &src);
    let venv = dir.path().join("venv");
    let made = Command::new(python())
        .args(["-m", "venv", "--system-site-packages", "--without-pip"])
        .arg(&venv)
        .output()
        .expect("python -m venv");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let venv_python = venv.join("bin/python");
    let install = Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-build-isolation",
            "--no-index",
            "--no-deps",
        ])
        .args(["--disable-pip-version-check", "--no-input", "--quiet"])
        .arg(&src)
        .env("OTA_PREBUILT_LIBOTA", libota_dir().join("libota.so"))
        .env_remove("PYTHONPATH")
        .output()
        .expect("pip install");
    assert!(
        install.status.success(),
        "pip install failed:\n{}{}",
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
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
