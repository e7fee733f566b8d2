//! One daemon per state directory: a second one (the README's `--once` run beside a running
//! service, say) is refused before it touches anything, since it would delete the first
//! one's files as they are written and write the same slot at once.

mod common;

use common::{directory_agent, open, tmp};
use ota_agent::{Config, Daemon, DaemonError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_state_directory_is_refused_and_touches_nothing() {
    let home = tmp("exclusive");
    let (toml, _) = directory_agent(
        &home,
        "http://127.0.0.1:9",
        "dev-ex-1",
        "prof-ex",
        &home.join("enroll"),
        "/bin/true",
        "",
    );
    let first = open(&toml).await;
    // A file the first daemon is replacing right now.
    let writing = home.join("state/.record.json.a1b2c3.partial");
    std::fs::write(&writing, b"half").unwrap();
    let second = Daemon::open(Config::from_toml(&toml).unwrap()).await;
    let Err(e @ DaemonError::Busy { .. }) = second else {
        panic!("a second daemon opened the state directory in use");
    };
    assert!(
        e.to_string().starts_with("state_dir: ") && e.to_string().contains("agent.lock"),
        "{e}"
    );
    assert!(
        writing.exists(),
        "the refused daemon removed the first one's file"
    );
    // Once the first one is gone, the directory is free again.
    drop(first);
    let again = Daemon::open(Config::from_toml(&toml).unwrap()).await;
    assert!(again.is_ok(), "{:?}", again.err());
    assert!(!writing.exists(), "a leftover of a dead daemon is cleared");
    let _ = std::fs::remove_dir_all(&home);
}
