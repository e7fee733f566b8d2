//! README.md's Rust snippets are the marked parts of `ota-core/examples/`, word for word, and
//! those examples run: a renamed method or a changed shape fails here, not in a reader's hands.

#[path = "../examples/control_plane.rs"]
mod control_plane;
#[path = "../examples/device.rs"]
mod device;
#[path = "../examples/publisher.rs"]
mod publisher;

/// The part of an example between `// README: NAME` and `// README: end`, dedented.
fn marked(example: &str) -> String {
    let path = format!("{}/examples/{example}.rs", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = text
        .find("// README: ")
        .unwrap_or_else(|| panic!("{path}: no `// README: NAME` marker"));
    let body = &text[start..];
    let body = &body[body.find('\n').expect("a line") + 1..];
    let end = body
        .find("// README: end")
        .unwrap_or_else(|| panic!("{path}: no `// README: end` marker"));
    let body = &body[..end];
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    body.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The ```rust blocks of README.md's "Use it from Rust" section, in order.
fn readme_snippets() -> Vec<String> {
    let path = format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = text
        .split("## Use it from Rust")
        .nth(1)
        .expect("README.md has a \"Use it from Rust\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or("").trim().to_string())
        .collect()
}

#[test]
fn the_readme_rust_snippets_are_the_examples_word_for_word() {
    let snippets = readme_snippets();
    let examples = ["publisher", "device", "control_plane"];
    assert_eq!(
        snippets.len(),
        examples.len(),
        "README.md's \"Use it from Rust\" has one snippet per example"
    );
    for (snippet, example) in snippets.iter().zip(examples) {
        let code = marked(example);
        assert_eq!(
            snippet, &code,
            "README.md's snippet differs from the marked part of ota-core/examples/{example}.rs; \
             copy it over:\n{code}"
        );
    }
}

#[test]
fn the_examples_run() {
    publisher::main().expect("the publisher example");
    device::main().expect("the device example");
    control_plane::main().expect("the control-plane example");
}
