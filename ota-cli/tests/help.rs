//! `ota completions SHELL`, `ota man`, and an example in every command's `--help`.

mod common;

use common::{ota, s};

/// The subcommands listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(ToString::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_help_shows_an_example() {
    let mut pending = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        seen += 1;
        assert!(seen < 100, "bounded walk");
        let mut args = path.clone();
        args.push("--help".into());
        let r = ota(&args);
        r.expect(0);
        assert!(
            r.stdout.contains("Examples:\n  ota "),
            "`ota {} --help` has no example:\n{}",
            path.join(" "),
            r.stdout
        );
        for sub in subcommands(&r.stdout) {
            let mut p = path.clone();
            p.push(sub);
            pending.push(p);
        }
    }
    assert!(seen >= 15, "walked {seen} commands");
}

/// The long flags a help text lists under `Options:`.
fn flags(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches(',').to_string())
        })
        .collect()
}

#[test]
fn each_tuf_subcommand_shows_only_its_own_flags() {
    let help = |sub: &str| {
        let r = ota(&["tuf", sub, "--help"]);
        r.expect(0);
        flags(&r.stdout)
    };
    let client = [
        "--metadata-url",
        "--target-name",
        "--target-dir",
        "--target-base-url",
    ];
    for sub in [
        "create-repo",
        "add-target",
        "resign-timestamp",
        "rotate-root",
        "init",
    ] {
        let shown = help(sub);
        for f in client {
            assert!(
                !shown.contains(&f.to_string()),
                "`ota tuf {sub} --help` shows {f}: {shown:?}"
            );
        }
    }
    assert!(!help("init").contains(&"--now".to_string()));
    assert_eq!(
        help("download")
            .iter()
            .filter(|f| client.contains(&f.as_str()))
            .count(),
        client.len(),
        "download takes every client flag"
    );
    assert!(help("refresh").contains(&"--metadata-url".to_string()));
    assert!(!help("refresh").contains(&"--target-name".to_string()));
    assert!(help("create-repo").contains(&"--now".to_string()));
    // The standard client contract puts the flags before the subcommand: still accepted, and
    // one the subcommand does not take is refused by name.
    let r = ota(&[
        "tuf",
        "--target-name",
        "fw.bin",
        "--metadata-dir",
        "md",
        "init",
        "root.json",
    ]);
    r.expect(1);
    assert!(
        r.stderr
            .contains("--target-name is not a flag of `ota tuf init`"),
        "{}",
        r.stderr
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _ota"),
        ("zsh", "#compdef ota"),
        ("fish", "complete -c ota"),
        ("elvish", "edit:completion:arg-completer[ota]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = ota(&["completions", shell]);
        r.expect(0);
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..r.stdout.len().min(300)]
        );
        assert!(r.stdout.contains("pack"), "{shell} completes subcommands");
    }
    ota(&["completions", "tcsh"])
        .expect(2)
        .stderr_has(&["tcsh"]);
}

#[test]
fn bash_accepts_the_completion_script() {
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("ota.bash");
    std::fs::write(&script, ota(&["completions", "bash"]).stdout).unwrap();
    let Ok(out) = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
    else {
        println!("skipped: bash is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_pages_cover_every_command() {
    let r = ota(&["man"]);
    r.expect(0);
    assert!(r.stdout.contains(".TH ota 1"), "{}", &r.stdout[..200]);
    assert!(
        r.stdout.contains("completions"),
        "the page lists the commands"
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man1");
    let r = ota(&["man", "--out", &s(&dir), "--json"]);
    r.expect(0);
    let pages: Vec<String> = r.json()["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    for p in [
        "ota.1",
        "ota-pack.1",
        "ota-sign.1",
        "ota-manifest-validate.1",
        "ota-tuf.1",
    ] {
        assert!(pages.contains(&p.to_string()), "{p} in {pages:?}");
        assert!(dir.join(p).is_file(), "{p} written");
    }
    let pack = std::fs::read_to_string(dir.join("ota-pack.1")).unwrap();
    assert!(
        pack.contains("package\\-version") || pack.contains("package-version"),
        "ota-pack.1 documents its flags"
    );
}

/// Help that cannot be written whole (stdout a full disk) is a failure, exit 2, as any
/// command's unwritten answer is; it exited 0.
#[test]
fn help_that_cannot_be_written_exits_2() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ota"))
        .arg("--help")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdout"));
}
