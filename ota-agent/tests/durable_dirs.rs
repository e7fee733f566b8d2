//! A state directory the agent makes survives a power cut: each directory it creates is
//! synced into its parent, so the files it then writes and syncs there are not lost with the
//! directory's own entry. Checked on the system calls, under strace.

mod common;

use std::process::Command;

use common::{directory_agent, tmp};

#[test]
fn the_agent_syncs_each_directory_it_creates_into_its_parent() {
    let works = Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("OTA_REQUIRE_TOOLS").is_none(),
            "OTA_REQUIRE_TOOLS is set but strace is not installed (or cannot trace)"
        );
        eprintln!("strace cannot run here: skipped");
        return;
    }
    let home = tmp("durable-dirs");
    let (toml, _) = directory_agent(
        &home,
        "http://127.0.0.1:9",
        "dev-dd-1",
        "prof-dd",
        &home.join("enroll"),
        "/bin/true",
        "",
    );
    let state = home.join("state");
    let deep = home.join("new").join("deeper").join("state");
    let toml = toml.replace(
        &format!("state_dir = {state:?}"),
        &format!("state_dir = {deep:?}"),
    );
    assert!(toml.contains("deeper"), "{toml}");
    let config = home.join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let log = home.join("strace.log");
    // The server is not there: the run fails after the state directory is made.
    let _ = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=mkdir,mkdirat,fsync"])
        .arg("-o")
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_ota-agent"))
        .arg("--config")
        .arg(&config)
        .args(["--once", "--log", "error"])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for dir in [home.join("new"), home.join("new/deeper"), deep.clone()] {
        let made = lines
            .iter()
            .position(|l| {
                l.contains("mkdir")
                    && l.contains(&format!("{:?}", dir.display().to_string()))
                    && l.ends_with("= 0")
            })
            .unwrap_or_else(|| panic!("{} was not made:\n{log}", dir.display()));
        let parent = dir.parent().unwrap().display().to_string();
        assert!(
            lines[made..]
                .iter()
                .any(|l| l.contains("fsync(") && l.contains(&format!("<{parent}>"))),
            "{} was made but {parent} was not synced after:\n{log}",
            dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&home);
}
