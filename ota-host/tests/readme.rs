//! README.md's TUF Rust snippet is the marked part of `ota-host/examples/tuf.rs`, word for
//! word, and that example runs: publish to a repository, refresh, resolve, download.

#![cfg(feature = "tuf")]

#[path = "../../ota-core/tests/snippets/mod.rs"]
mod snippets;
#[path = "../examples/tuf.rs"]
mod tuf;

#[test]
fn the_readme_tuf_snippet_is_the_example_word_for_word() {
    snippets::assert_readme_shows(
        env!("CARGO_MANIFEST_DIR"),
        "TUF: the second route to a verified package",
        &["tuf"],
    );
}

#[test]
fn the_tuf_example_runs() {
    tuf::main().expect("the TUF example");
}
