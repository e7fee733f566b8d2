//! Repeated TUF downloads keep nothing: the live heap of this process (counted by its own
//! allocator, so the count does not depend on timing or on the C library's allocator) is the
//! same after a hundred downloads of a 1 MiB target as before them, from a directory and over
//! HTTP. A client that kept a part of each target it fetched (as one once kept 1 MiB of every
//! file until the repository was freed) grows it by a hundred times that.
//!
//! This binary holds this one test, so that no other test allocates while it counts.

use std::sync::atomic::Ordering;

use ota_host::tuf::client::Client;
use ota_tests::TUF_NOW as NOW;
use ota_tests::counting::{Counting, LIVE};
use ota_tests::http::{Faults, RepoServer};

#[global_allocator]
static COUNTING: Counting = Counting;

const TARGET: usize = 1 << 20;
const DOWNLOADS: usize = 100;

#[test]
fn repeated_downloads_keep_nothing_of_the_targets() {
    let dir = std::env::temp_dir().join(format!("ota-tuf-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (repo, root, artifact) = ota_tests::tuf_repo_with_target(&dir, "fw.enc", TARGET);
    let server = RepoServer::start(dir.join("repo"), Faults::default());
    let http = (
        format!("{}/metadata", server.url()),
        format!("{}/targets", server.url()),
    );
    let local = (
        repo.metadata_dir().to_str().unwrap().to_string(),
        repo.targets_dir().to_str().unwrap().to_string(),
    );
    for (what, (metadata, targets)) in [("a directory", local), ("HTTP", http)] {
        let trusted = Client::new(root.clone(), &metadata, &targets)
            .unwrap()
            .refresh(NOW)
            .unwrap();
        let mut sink = std::io::sink();
        // The first downloads fill what is made once (the connection pool, the runtime's).
        for _ in 0..5 {
            trusted.download("fw.enc", &mut sink).unwrap();
        }
        let before = LIVE.load(Ordering::SeqCst);
        for _ in 0..DOWNLOADS {
            assert_eq!(
                trusted.download("fw.enc", &mut sink).unwrap(),
                artifact.len() as u64
            );
        }
        let grown = LIVE.load(Ordering::SeqCst) - before;
        // Generous: a server thread may still hold its copy of the file (2 MiB) for a moment;
        // keeping even a tenth of each target would be 10 MiB.
        assert!(
            grown < 4 << 20,
            "{what}: the live heap grew by {grown} bytes over {DOWNLOADS} downloads of {} bytes",
            artifact.len()
        );
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}
