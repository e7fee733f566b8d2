//! The C clients under `tests/c/`: compiled with `-Wall -Wextra -Wpedantic -Werror` against
//! `include/ota.h`, run under valgrind with zero errors and no definite leaks.

use ota_tests::{compile_c, fixture, run_c};

#[test]
fn foundation_client() {
    let exe = compile_c("foundation");
    let out = run_c(&exe, &[fixture("").as_os_str()]);
    assert!(out.contains("foundation: all checks passed"), "{out}");
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let dir = ota_tests::c_build_dir().join(format!("tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn publisher_client_under_valgrind() {
    let exe = compile_c("publisher");
    let tmp = tmp_dir("publisher");
    let out = run_c(
        &exe,
        &[fixture("").as_os_str(), tmp.as_os_str(), "3".as_ref()],
    );
    assert!(out.contains("publisher: all checks passed"), "{out}");
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn publisher_client_seals_and_opens_100_mb_under_asan() {
    let exe = ota_tests::compile_c_asan("publisher");
    let tmp = tmp_dir("publisher-asan");
    let out = ota_tests::run_c_asan(
        &exe,
        &[fixture("").as_os_str(), tmp.as_os_str(), "100".as_ref()],
    );
    assert!(out.contains("publisher: all checks passed"), "{out}");
    std::fs::remove_dir_all(tmp).unwrap();
}
