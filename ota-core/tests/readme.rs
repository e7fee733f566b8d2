//! README.md's Rust snippets are the marked parts of `ota-core/examples/`, word for word, and
//! those examples run: a renamed method or a changed shape fails here, not in a reader's hands.

#[path = "../examples/control_plane.rs"]
mod control_plane;
#[path = "../examples/device.rs"]
mod device;
#[path = "../examples/publisher.rs"]
mod publisher;

mod snippets;

#[test]
fn the_readme_rust_snippets_are_the_examples_word_for_word() {
    snippets::assert_readme_shows(
        env!("CARGO_MANIFEST_DIR"),
        "Use it from Rust",
        &["publisher", "device", "control_plane"],
    );
}

#[test]
fn the_examples_run() {
    publisher::main().expect("the publisher example");
    device::main().expect("the device example");
    control_plane::main().expect("the control-plane example");
}

/// README.md's `.cargo/config.toml` lines (Ed25519 on AVX-512 IFMA) are this repository's own,
/// word for word: what a project copies is what this one builds and measures with.
#[test]
fn the_readme_cargo_config_lines_are_the_repository_s_own() {
    let blocks = snippets::blocks(env!("CARGO_MANIFEST_DIR"), "Use it from Rust", "toml");
    assert_eq!(blocks.len(), 1, "one TOML block in \"Use it from Rust\"");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cargo/config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(
        config.contains(&blocks[0]),
        "{} does not hold README.md's lines:\n{}",
        path.display(),
        blocks[0]
    );
}
