//! Updates end to end against a real `ota-server` on loopback: the daemon registers with an
//! enrollment token, polls, fetches the chunks, swaps A/B directories (or A/B "partitions"
//! with a switch script), probes, and reports; a failing probe rolls back, and the next poll
//! tells the server the version the device really runs.

mod common;

use common::{FACTORY, Slots, World, active_payload, agent_toml, factory_dir_slots, tmp};
use ota_agent::{Config, Cycle, Daemon};

fn v(s: &str) -> ota_core::Version {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_slot_update_goes_from_poll_to_commit() {
    let dir = tmp("dir-update");
    let w = World::start(&dir, 1234).await;
    let (pkg, plain) = w.upload("2.0.0", 300_000).await;
    w.profile("prof-dir").await;
    let root = dir.join("app");
    let factory = factory_dir_slots(&root);
    let toml = agent_toml(
        &w.base,
        "dev-dir-1",
        "prof-dir",
        &dir.join("state"),
        &w.enrollment_token(),
        Slots::Directory(&root),
        "/bin/true",
        "",
    );
    let mut d = Daemon::open(Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    assert_eq!(d.running_version(), Some(&v(FACTORY)));
    // The first cycle registers (the credential is stored owner-only) and finds nothing.
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    let cred = dir.join("state/credential");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cred).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(d.poll_interval(), std::time::Duration::from_millis(1234));

    let rid = w.rollout(&pkg, "prof-dir").await;
    let c = d.cycle().await.unwrap();
    assert_eq!(
        c,
        Cycle::Updated {
            name: common::FW.parse().unwrap(),
            version: v("2.0.0"),
            previous: Some(v(FACTORY)),
        }
    );
    assert_eq!(d.running_version(), Some(&v("2.0.0")));
    // The new version is in b and runs; the factory version stays in a for a restore.
    assert_eq!(active_payload(&root), ("b".into(), plain));
    assert_eq!(std::fs::read(root.join("a/payload")).unwrap(), factory);
    assert_eq!(w.device_state(&rid, "dev-dir-1").await, "succeeded");
    assert_eq!(w.installed("dev-dir-1").await, "2.0.0");
    // Nothing more to do; a reopened daemon (a restart) agrees on what runs.
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    drop(d);
    let mut d = Daemon::open(Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    assert_eq!(d.running_version(), Some(&v("2.0.0")));
    assert_eq!(d.cycle().await.unwrap(), Cycle::Idle);
    w.running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many daemons run as tasks of one runtime: the daemon and its futures are `Send`.
#[test]
fn daemons_can_be_spawned_as_tasks() {
    fn send<T: Send + 'static>(_: T) {}
    send(async {
        let c = Config::from_toml("").unwrap();
        let d = Daemon::open(c).await.unwrap();
        d.run(std::future::pending()).await
    });
}
