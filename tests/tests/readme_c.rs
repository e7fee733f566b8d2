//! Every C snippet of README.md (each ```` ```c ```` block is a whole file) compiles against
//! `include/ota.h` with every warning an error, and links against this run's libota with no
//! undefined symbol: a snippet cannot call a function the library does not export.

use std::process::Command;

/// The ```` ```c ```` blocks of README.md, in order.
fn snippets() -> Vec<String> {
    let readme = std::fs::read_to_string(ota_tests::workspace_dir().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("\n```c\n") {
        let body = &rest[i + "\n```c\n".len()..];
        let end = body.find("\n```").expect("an unterminated ```c block");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

#[test]
fn every_c_snippet_of_the_readme_compiles_and_links() {
    let snippets = snippets();
    assert!(snippets.len() >= 4, "found {} C snippets", snippets.len());
    let lib = ota_tests::libota_dir();
    let dir = ota_tests::c_build_dir().join(format!("readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, code) in snippets.iter().enumerate() {
        let src = dir.join(format!("snippet-{i}.c"));
        std::fs::write(&src, code).unwrap();
        let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Werror",
                "-fPIC",
                "-shared",
            ])
            .arg("-I")
            .arg(ota_tests::workspace_dir().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(dir.join(format!("snippet-{i}.so")))
            .arg("-L")
            .arg(&lib)
            .arg("-Wl,--no-undefined")
            .arg("-lota")
            .args(ota_tests::C_SYSTEM_LIBS)
            .output()
            .expect("running the C compiler");
        assert!(
            out.status.success(),
            "README.md's C snippet {} does not compile:\n{code}\n{}",
            i + 1,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
