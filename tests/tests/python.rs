//! The Python tests under `tests/python/`, run with unittest against the `libota.so` built
//! for this test run and the ctypes module in `ota-ffi/python`.

use ota_tests::{fixture, libota_dir, tests_dir, workspace_dir};

#[test]
fn python_unittests() {
    let out =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args(["-m", "unittest", "discover", "-v", "-s"])
            .arg(tests_dir().join("python"))
            .env("OTA_LIBRARY", libota_dir().join("libota.so"))
            .env("OTA_FIXTURES", fixture(""))
            .env("PYTHONPATH", workspace_dir().join("ota-ffi/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("running python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python tests failed:\n{stderr}");
    assert!(stderr.contains("\nOK"), "{stderr}");
}
