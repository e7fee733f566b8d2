//! README.md's Rust snippets and the examples they are cut from: the one reading of both, for
//! every crate whose examples README.md shows (`ota-core`'s, and through `#[path]`,
//! `ota-host`'s).

use std::path::Path;

/// The part of the example at `path` between `// README: NAME` and `// README: end`,
/// dedented.
pub fn marked(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text
        .find("// README: ")
        .unwrap_or_else(|| panic!("{}: no `// README: NAME` marker", path.display()));
    let body = &text[start..];
    let body = &body[body.find('\n').expect("a line") + 1..];
    let end = body
        .find("// README: end")
        .unwrap_or_else(|| panic!("{}: no `// README: end` marker", path.display()));
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

/// The ```rust blocks of README.md's section `## HEADING`, in order. `crate_dir` is the
/// crate's directory (`CARGO_MANIFEST_DIR`), beside README.md's.
pub fn rust_blocks(crate_dir: &str, heading: &str) -> Vec<String> {
    blocks(crate_dir, heading, "rust")
}

/// The code blocks of README.md's section `## HEADING` in language `lang` (```` ```LANG ````),
/// in order.
pub fn blocks(crate_dir: &str, heading: &str, lang: &str) -> Vec<String> {
    let path = Path::new(crate_dir).join("../README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = text
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has a \"{heading}\" section"));
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or("").trim().to_string())
        .collect()
}

/// Fails unless README.md's section `heading` holds, in order, exactly the marked parts of
/// `examples` (files of `crate_dir`'s `examples/`, without `.rs`).
pub fn assert_readme_shows(crate_dir: &str, heading: &str, examples: &[&str]) {
    let snippets = rust_blocks(crate_dir, heading);
    assert_eq!(
        snippets.len(),
        examples.len(),
        "README.md's \"{heading}\" has one Rust snippet per example of {examples:?}"
    );
    for (snippet, example) in snippets.iter().zip(examples) {
        let path = Path::new(crate_dir).join(format!("examples/{example}.rs"));
        let code = marked(&path);
        assert_eq!(
            snippet,
            &code,
            "README.md's snippet differs from the marked part of {}; copy it over:\n{code}",
            path.display()
        );
    }
}
