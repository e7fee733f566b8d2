//! The C clients under `tests/c/`: compiled with `-Wall -Wextra -Wpedantic -Werror` against
//! `include/ota.h`, run under valgrind with zero errors and no definite leaks.

use ota_tests::{compile_c, fixture, run_c};

#[test]
fn foundation_client() {
    let exe = compile_c("foundation");
    let out = run_c(&exe, &[fixture("").as_os_str()]);
    assert!(out.contains("foundation: all checks passed"), "{out}");
}
