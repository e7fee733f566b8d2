//! A server that ignores ranges or lies about lengths is refused before a byte of it reaches
//! staging, and a chunk that fails its digest is fetched again. The server here is a tiny
//! loopback HTTP/1.1 server of the test's own, serving a real signed assignment and the real
//! sealed artifact, wrong only in the way each case names.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{active_payload, directory_agent, firmware, open, publisher, tmp};
use ota_agent::{Cycle, Daemon, DaemonError};
use ota_core::Limits;
use ota_core::assignment::Assignment;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lie {
    /// Answers 200 with the whole artifact.
    IgnoresRanges,
    /// Answers 206 with the right `Content-Range`, and 100 bytes more than asked.
    LongerBody,
    /// Answers 206 with another range than asked.
    WrongRange,
    /// Flips a byte of chunk 0 the first time it is asked for.
    FlipsOnce,
}

struct Tiny {
    base: String,
    /// Requests per chunk offset.
    asked: Arc<Mutex<HashMap<u64, u32>>>,
}

fn answer(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| *k == "content-length") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn serve(lie: Lie, assignment: String, artifact: Vec<u8>) -> Tiny {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let asked: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let seen = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut range = None;
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
                }
                if let Some(v) = lower.strip_prefix("content-length: ") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = r.read_exact(&mut body);
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let size = artifact.len() as u64;
            if path.ends_with("/ota") {
                answer(
                    &mut s,
                    "200 OK",
                    &[("content-type", "application/json".into())],
                    assignment.as_bytes(),
                );
            } else if path.contains("/ota/chunk") {
                let (a, b) = range.unwrap();
                let n = {
                    let mut m = seen.lock().unwrap();
                    let n = m.entry(a).or_default();
                    *n += 1;
                    *n
                };
                let mut bytes = artifact[a as usize..=b as usize].to_vec();
                let range = format!("bytes {a}-{b}/{size}");
                match lie {
                    Lie::IgnoresRanges => answer(&mut s, "200 OK", &[], &artifact),
                    Lie::LongerBody => {
                        bytes.extend_from_slice(&[0; 100]);
                        answer(
                            &mut s,
                            "206 Partial Content",
                            &[("content-range", range)],
                            &bytes,
                        )
                    }
                    Lie::WrongRange => answer(
                        &mut s,
                        "206 Partial Content",
                        &[("content-range", format!("bytes {a}-{}/{size}", a + 99))],
                        &bytes[..100],
                    ),
                    Lie::FlipsOnce => {
                        if a == 0 && n == 1 {
                            bytes[1000] ^= 0x40;
                        }
                        answer(
                            &mut s,
                            "206 Partial Content",
                            &[("content-range", range)],
                            &bytes,
                        )
                    }
                }
            } else if path.ends_with("/ota/report") {
                answer(
                    &mut s,
                    "200 OK",
                    &[("content-type", "application/json".into())],
                    b"{}",
                );
            } else {
                answer(&mut s, "404 Not Found", &[], b"{}");
            }
        }
    });
    Tiny { base, asked }
}

/// A daemon with a credential already, against a tiny server telling `lie`.
async fn daemon(dir: &Path, lie: Lie) -> (Daemon, Tiny, Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let (body, _, artifact, plain) = firmware(dir, "2.0.0", 300_000);
    let envelope = body["envelope"].to_string();
    let trusted = [publisher().public_key()].into_iter().collect();
    let verified =
        ota_core::sign::verify(envelope.as_bytes(), &trusted, 1, &Limits::DEFAULT).unwrap();
    let assignment = Assignment::new(&verified, common::seal_key(), None, None)
        .unwrap()
        .to_json();
    let tiny = serve(lie, assignment, artifact);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("credential"), "otad_test").unwrap();
    let enroll = dir.join("no-token");
    let (toml, factory) = directory_agent(
        dir,
        &tiny.base,
        "dev-tiny",
        "prof-tiny",
        &enroll,
        "/bin/true",
        "",
    );
    let d = open(&toml).await;
    (d, tiny, factory, plain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_ranges_is_refused() {
    let dir = tmp("ignores-ranges");
    let (mut d, _tiny, factory, _) = daemon(&dir, Lie::IgnoresRanges).await;
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(e, DaemonError::RangeIgnored { status: 200, .. }),
        "{e}"
    );
    // Nothing was installed; the download waits for a server that keeps to ranges.
    assert_eq!(active_payload(&dir.join("app")), ("a".into(), factory));
    assert_eq!(d.state(), ota_core::agent::AgentState::Downloading);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_sends_more_than_its_range_is_refused() {
    let dir = tmp("longer-body");
    let (mut d, _tiny, factory, _) = daemon(&dir, Lie::LongerBody).await;
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(e, DaemonError::LengthMismatch { what: "content-length", found, expected, .. } if found == expected + 100),
        "{e}"
    );
    assert_eq!(active_payload(&dir.join("app")), ("a".into(), factory));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_another_range_is_refused() {
    let dir = tmp("wrong-range");
    let (mut d, _tiny, factory, _) = daemon(&dir, Lie::WrongRange).await;
    let e = d.cycle().await.unwrap_err();
    assert!(
        matches!(
            e,
            DaemonError::LengthMismatch {
                what: "content-range",
                found: 100,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(active_payload(&dir.join("app")), ("a".into(), factory));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_fails_its_digest_is_fetched_again() {
    let dir = tmp("flips-once");
    let (mut d, tiny, _, plain) = daemon(&dir, Lie::FlipsOnce).await;
    let c = d.cycle().await.unwrap();
    assert!(matches!(c, Cycle::Updated { .. }), "{c:?}");
    assert_eq!(active_payload(&dir.join("app")), ("b".into(), plain));
    let asked = tiny.asked.lock().unwrap().clone();
    assert_eq!(asked.get(&0), Some(&2), "{asked:?}");
    assert!(asked.iter().all(|(o, n)| *o == 0 || *n == 1), "{asked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A registration answer whose credential is not a token (a number; text with a line break
/// that would forge a header) is refused naming `credential`, and nothing is saved: before,
/// the first was taken for "registered already" and the second saved, failing every request
/// after it with an HTTP builder error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_answer_with_a_credential_that_is_no_token_is_refused() {
    for (case, credential) in [("number", "5"), ("header", "\"ab\\r\\nX: y\"")] {
        let dir = tmp(&format!("tiny-credential-{case}"));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = format!("{{\"credential\": {credential}}}");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut s) = stream else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length: ") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let _ = r.read_exact(&mut vec![0; length]);
                answer(
                    &mut s,
                    "201 Created",
                    &[("content-type", "application/json".into())],
                    body.as_bytes(),
                );
            }
        });
        let enroll = dir.join("token");
        std::fs::write(&enroll, "enrollment-token").unwrap();
        let (toml, _) = directory_agent(
            &dir,
            &base,
            "dev-cred",
            "prof-cred",
            &enroll,
            "/bin/true",
            "",
        );
        let mut d = open(&toml).await;
        let e = d.cycle().await.unwrap_err();
        assert!(
            matches!(
                e,
                DaemonError::Protocol {
                    what: "registration",
                    ..
                }
            ) && e.to_string().contains("credential: "),
            "{case}: {e}"
        );
        assert!(!dir.join("state/credential").exists(), "{case}: saved");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
