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
