//! The TUF client's HTTP transport against a real server on loopback that trickles, cuts,
//! stalls, changes and redirects (`ota_tests::http::RepoServer`): a download may take longer
//! than the progress timeout as long as bytes keep coming; an interrupted download resumes by
//! range, its resumed bytes verified with the rest; a stall fails with a timeout error that says
//! so; an unfollowed `3xx` names its status and `Location`; and a sink that refuses the bytes is
//! an I/O error, not a fetch error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ota_core::Status;
use ota_host::tuf::client::{Client, Transport, Trusted};
use ota_tests::TUF_NOW as NOW;
use ota_tests::http::{Faults, RepoServer, Request};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ota-tuf-transport-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A repository in `dir` with target `fw.enc` of about `size` bytes, served with `faults`; the
/// server, the refreshed client with progress timeout `progress`, and the target's bytes.
fn serve(
    dir: &Path,
    size: usize,
    faults: Faults,
    progress: Duration,
) -> (RepoServer, Trusted, Vec<u8>) {
    let (_repo, root, artifact) = ota_tests::tuf_repo_with_target(dir, "fw.enc", size);
    let server = RepoServer::start(dir.join("repo"), faults);
    let base = server.url();
    let trusted = Client::new(
        root,
        &format!("{base}/metadata"),
        &format!("{base}/targets"),
    )
    .unwrap()
    .transport(Transport {
        progress_timeout: progress,
        ..Transport::default()
    })
    .refresh(NOW)
    .unwrap();
    (server, trusted, artifact)
}

/// The requests for the target, in order.
fn target_requests(server: &RepoServer) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("targets/"))
        .collect()
}

#[test]
fn a_target_download_longer_than_the_progress_timeout_completes_while_bytes_keep_coming() {
    let dir = tmp("trickle");
    let progress = Duration::from_secs(2);
    // About 240 KiB in 4 KiB writes 75 ms apart: at least 4.5 s in all, more than twice the
    // progress timeout, which a timeout on the whole transfer would not allow.
    let faults = Faults {
        chunk: 4096,
        pause: Duration::from_millis(75),
        ..Faults::default()
    };
    let (server, trusted, artifact) = serve(&dir, 240_000, faults, progress);
    let started = Instant::now();
    let mut got = Vec::new();
    assert_eq!(
        trusted.download("fw.enc", &mut got).unwrap(),
        artifact.len() as u64
    );
    assert_eq!(got, artifact);
    // What the test is about: the transfer outlasted the progress timeout (a lower bound the
    // server's pauses guarantee).
    assert!(started.elapsed() > progress * 2, "{:?}", started.elapsed());
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_interrupted_target_download_resumes_by_range_and_completes() {
    let dir = tmp("cut");
    let faults = Faults {
        cut_at: Some(100_000),
        ..Faults::default()
    };
    let (server, trusted, artifact) = serve(&dir, 300_000, faults, Duration::from_secs(10));
    let mut got = Vec::new();
    assert_eq!(
        trusted.download("fw.enc", &mut got).unwrap(),
        artifact.len() as u64
    );
    assert_eq!(got, artifact);
    let ranges: Vec<Option<String>> = target_requests(&server)
        .into_iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, [None, Some("bytes=100000-".to_string())]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_interrupted_download_from_a_server_without_ranges_starts_over_and_completes() {
    let dir = tmp("norange");
    let faults = Faults {
        cut_at: Some(100_000),
        ranges: false,
        ..Faults::default()
    };
    let (server, trusted, artifact) = serve(&dir, 300_000, faults, Duration::from_secs(10));
    let mut got = Vec::new();
    trusted.download("fw.enc", &mut got).unwrap();
    // The server answered the range with the whole file; the bytes had already were skipped.
    assert_eq!(got, artifact);
    assert_eq!(target_requests(&server).len(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_resumed_download_whose_bytes_changed_is_refused() {
    let dir = tmp("changed");
    let faults = Faults {
        cut_at: Some(100_000),
        change_resumed: true,
        ..Faults::default()
    };
    let (_server, trusted, _) = serve(&dir, 300_000, faults, Duration::from_secs(10));
    let e = trusted.download("fw.enc", &mut Vec::new()).unwrap_err();
    assert_eq!(e.status(), Status::TufTargetMismatch, "{e}");
    assert!(e.to_string().contains("fw.enc"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_server_stalling_longer_than_the_progress_timeout_fails_with_a_timeout_error() {
    let dir = tmp("stall");
    let faults = Faults {
        stall_at: Some(50_000),
        ..Faults::default()
    };
    let (server, trusted, _) = serve(&dir, 200_000, faults, Duration::from_millis(500));
    let mut got = Vec::new();
    let e = trusted.download("fw.enc", &mut got).unwrap_err();
    assert_eq!(e.status(), Status::TufFetch, "{e}");
    let text = e.to_string();
    for part in [
        "target fw.enc",
        "no progress for 0.5 s (the progress timeout)",
        "4 tries in a row failed, 50000 bytes read",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert!(!text.contains("decoding"), "{text}");
    assert_eq!(got.len(), 50_000);
    // The first try read up to the stall; each later one asked for the rest by range.
    let ranges: Vec<Option<String>> = target_requests(&server)
        .into_iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1..]
            .iter()
            .all(|r| r.as_deref() == Some("bytes=50000-")),
        "{ranges:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unfollowed_redirect_is_a_fetch_error_naming_its_status_and_location() {
    let dir = tmp("redirect");
    let (_repo, root, _) = ota_tests::tuf_repo_with_target(&dir, "fw.enc", 1000);
    for (status, location, says) in [
        (
            "300 Multiple Choices",
            Some("http://mirror.invalid/timestamp.json".to_string()),
            "HTTP 300 Multiple Choices, not followed (Location: http://mirror.invalid/timestamp.json)",
        ),
        (
            "302 Found",
            None,
            "HTTP 302 Found, not followed (no Location)",
        ),
    ] {
        let faults = Faults {
            fixed: Some(("metadata/timestamp.json".into(), status.into(), location)),
            ..Faults::default()
        };
        let server = RepoServer::start(dir.join("repo"), faults);
        let base = server.url();
        let client = Client::new(
            root.clone(),
            &format!("{base}/metadata"),
            &format!("{base}/targets"),
        )
        .unwrap();
        let e = client.refresh(NOW).unwrap_err();
        assert_eq!(e.status(), Status::TufFetch, "{e}");
        assert!(e.to_string().contains(says), "{says:?} in {e}");
        assert!(e.to_string().contains("timestamp.json"), "{e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A writer that takes `room` bytes, then refuses.
struct Full {
    room: usize,
}

impl std::io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.room {
            return Err(std::io::Error::other("no space left"));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_target_whose_bytes_cannot_be_written_fails_with_an_io_error() {
    let dir = tmp("write");
    let (server, trusted, _) = serve(&dir, 200_000, Faults::default(), Duration::from_secs(10));
    let e = trusted
        .download("fw.enc", &mut Full { room: 1000 })
        .unwrap_err();
    assert_eq!(e.status(), Status::Io, "{e}");
    assert_eq!(e.to_string(), "writing target fw.enc: no space left");
    // Not a transport failure: the download stopped at once, without another try.
    assert_eq!(target_requests(&server).len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
