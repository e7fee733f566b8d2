//! What the server does with its connections: a client that sends part of a request and
//! stops is cut off after the read timeout (a slow client cannot hold connections open for
//! ever), and SIGTERM stops the server gracefully: the request under way is answered, the
//! process exits 0, and its claim on the database is let go for the next one.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Srv, config, spawn_server, tmp, tmp_with_input};

/// Reads what the server sends on `s` until it closes the connection (at most 20 s).
fn until_closed(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_request_is_cut_off_after_the_read_timeout() {
    let (dir, _) = tmp_with_input("read-timeout");
    let mut cfg = config(&dir);
    cfg.read_timeout_ms = 300;
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    let host = s.base.strip_prefix("http://").unwrap().to_string();
    let (head_case, body_case) = tokio::task::spawn_blocking(move || {
        // A request head that never ends: the connection is closed.
        let mut a = TcpStream::connect(&host).unwrap();
        a.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let head_case = until_closed(&mut a);
        // A body that stops short of its length: 408, naming the body.
        let mut b = TcpStream::connect(&host).unwrap();
        let req = format!(
            "PUT /api/v1/ota/profiles/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"desc"
        );
        b.write_all(req.as_bytes()).unwrap();
        let body_case = until_closed(&mut b);
        (head_case, body_case)
    })
    .await
    .unwrap();
    assert!(!head_case.contains(" 200 "), "{head_case}");
    assert!(body_case.starts_with("HTTP/1.1 408"), "{body_case}");
    assert!(
        body_case.contains("DEADLINE_EXCEEDED") && body_case.contains("body: "),
        "{body_case}"
    );
    // Nothing was stored, and the server still answers.
    let (code, _) = s
        .get("/api/v1/ota/profiles/p", &s.token("acme", "admin"))
        .await;
    assert_eq!(code, 404);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_answers_the_request_under_way_exits_0_and_lets_go_of_the_database() {
    let dir = tmp("sigterm-server");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let (mut child, base) = spawn_server(&dir, "sigterm-secret", &[]);
    let host = base.strip_prefix("http://").unwrap().to_string();
    let admin = ota_server::auth::JwtKeys::from_secret(b"sigterm-secret")
        .unwrap()
        .token("alice", "acme", "admin", 3600);
    // A request under way when the signal comes: its body is sent after it.
    let mut s = TcpStream::connect(&host).unwrap();
    s.write_all(
        format!(
            "PUT /api/v1/ota/profiles/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"{}").unwrap();
    let answer = until_closed(&mut s);
    // Answered, and done, not cut off.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ota-server did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    // The next server on the same data directory starts at once, and has the profile.
    let (mut next, base) = spawn_server(&dir, "sigterm-secret", &[]);
    let mut s = TcpStream::connect(base.strip_prefix("http://").unwrap()).unwrap();
    s.write_all(
        format!(
            "GET /api/v1/ota/profiles/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let got = until_closed(&mut s);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    let _ = next.kill();
    let _ = next.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
