//! The proxy against a tiny HTTP/1.1 server on 127.0.0.1.

use std::io::BufRead as _;

use super::*;

/// A tiny HTTP/1.1 server on 127.0.0.1 (keep-alive): `GET /n` answers `response n` with a
/// `Content-Length`, `GET /chunked` a chunked body, `POST /echo` the request's body,
/// `GET /empty` a 204. It counts the requests it answered.
struct Upstream {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
}

fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                while let Ok(Some(head)) = read_head(&mut r) {
                    let body = read_body(&mut r, framing(&head, true, false).unwrap()).unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let path = head.start.split_whitespace().nth(1).unwrap().to_string();
                    let reply = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n".to_vec(),
                        "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                        "/echo" => {
                            let mut m = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
                            m.extend_from_slice(&body);
                            m
                        }
                        p => {
                            let b = format!("response {}", &p[1..]);
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{b}", b.len()).into_bytes()
                        }
                    };
                    if out.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Upstream { addr, served }
}

/// A client connection that reads whole responses.
struct Client {
    out: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            out: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: &[u8]) {
        let mut m = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        self.out.write_all(&m).unwrap();
    }

    /// The next whole response: (status, payload), or the error that ended it.
    fn response(&mut self) -> io::Result<(u16, Vec<u8>)> {
        let head = read_head(&mut self.r)?.ok_or_else(|| bad("closed"))?;
        let f = framing(&head, false, false)?;
        let body = read_body(&mut self.r, f)?;
        let body = if f == Framing::Chunked {
            dechunk(&body)
        } else {
            body
        };
        Ok((head.status(), body))
    }

    fn get(&mut self, path: &str) -> io::Result<(u16, Vec<u8>)> {
        self.send("GET", path, b"");
        self.response()
    }

    /// Everything until the end of the stream, or the error that ended it.
    fn rest(&mut self) -> (Vec<u8>, Option<io::ErrorKind>) {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return (all, None),
                Ok(k) => all.extend_from_slice(&buf[..k]),
                Err(e) => return (all, Some(e.kind())),
            }
        }
    }
}

fn only(f: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults::NONE;
    f(&mut faults);
    faults
}

#[test]
fn without_faults_it_forwards_every_exchange_on_a_kept_alive_connection() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, Faults::NONE, 1).unwrap();
    let mut c = Client::new(proxy.addr());
    for i in 0..5 {
        assert_eq!(
            c.get(&format!("/{i}")).unwrap(),
            (200, format!("response {i}").into_bytes())
        );
    }
    assert_eq!(c.get("/chunked").unwrap(), (200, b"{\"a\": 1}".to_vec()));
    assert_eq!(c.get("/empty").unwrap(), (204, vec![]));
    c.send("POST", "/echo", b"a report");
    assert_eq!(c.response().unwrap(), (200, b"a report".to_vec()));
    let counts = proxy.counts();
    assert_eq!(
        (counts.connections, counts.requests, counts.forwarded),
        (1, 8, 8)
    );
    assert_eq!(counts.injected(), 0);
    assert_eq!(up.served.load(Ordering::SeqCst), 8);
}

#[test]
fn a_500_is_answered_in_the_servers_place_and_keeps_the_connection() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.error_500 = 1.0), 1).unwrap();
    let mut c = Client::new(proxy.addr());
    for _ in 0..3 {
        let (status, body) = c.get("/1").unwrap();
        assert_eq!(status, 500);
        assert!(String::from_utf8_lossy(&body).contains("fault proxy"));
    }
    assert_eq!(proxy.counts().error_500, 3);
    assert_eq!(
        up.served.load(Ordering::SeqCst),
        0,
        "the server never saw them"
    );
}

#[test]
fn a_dropped_connection_ends_without_an_answer() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.drop = 1.0), 3).unwrap();
    for _ in 0..6 {
        let mut c = Client::new(proxy.addr());
        c.send("GET", "/1", b"");
        let (bytes, _) = c.rest();
        assert!(bytes.is_empty(), "{bytes:?}");
    }
    assert_eq!(proxy.counts().dropped, 6);
}

#[test]
fn a_reset_cuts_the_body_and_resets_the_connection() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.reset = 1.0), 1).unwrap();
    let mut c = Client::new(proxy.addr());
    c.send("GET", "/123456789", b"");
    let (bytes, error) = c.rest();
    let full = b"response 123456789";
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(!text.ends_with("response 123456789"), "{text}");
    assert!(bytes.len() < full.len() + 40, "{text}");
    assert_eq!(error, Some(io::ErrorKind::ConnectionReset), "{text}");
    assert_eq!(proxy.counts().reset, 1);
}

#[test]
fn a_truncated_body_ends_early_with_a_clean_close() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.truncate = 1.0), 1).unwrap();
    let mut c = Client::new(proxy.addr());
    let got = c.get("/123456789");
    assert_eq!(got.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    let mut c = Client::new(proxy.addr());
    c.send("GET", "/empty", b"");
    let (bytes, error) = c.rest();
    assert_eq!(error, None);
    assert!(!bytes.ends_with(b"\r\n\r\n"), "half a head: {bytes:?}");
    assert_eq!(proxy.counts().truncated, 2);
}

#[test]
fn a_wrong_content_length_does_not_match_the_body_sent() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.wrong_length = 1.0), 5).unwrap();
    for path in ["/123456789", "/chunked", "/abc"] {
        let mut c = Client::new(proxy.addr());
        c.send("GET", path, b"");
        let (bytes, _) = c.rest();
        let text = String::from_utf8_lossy(&bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("transfer-encoding"), "{head}");
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(declared, body.len(), "{text}");
    }
    assert_eq!(proxy.counts().wrong_length, 3);
}

#[test]
fn a_stalled_response_arrives_whole() {
    let up = upstream();
    let faults = only(|f| {
        f.stall = 1.0;
        f.stall_for = Duration::from_millis(50);
    });
    let proxy = FaultProxy::start(up.addr, faults, 1).unwrap();
    let mut c = Client::new(proxy.addr());
    assert_eq!(c.get("/7").unwrap(), (200, b"response 7".to_vec()));
    assert_eq!(c.get("/chunked").unwrap(), (200, b"{\"a\": 1}".to_vec()));
    assert_eq!(proxy.counts().stalled, 2);
}

#[test]
fn a_duplicated_response_answers_the_next_request_too() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, only(|f| f.duplicate = 1.0), 1).unwrap();
    let mut c = Client::new(proxy.addr());
    assert_eq!(c.get("/1").unwrap(), (200, b"response 1".to_vec()));
    // The copy of the first response is what the second request reads.
    assert_eq!(c.get("/2").unwrap(), (200, b"response 1".to_vec()));
    assert_eq!(c.response().unwrap(), (200, b"response 2".to_vec()));
    assert_eq!(proxy.counts().duplicated, 2);
    assert_eq!(up.served.load(Ordering::SeqCst), 2);
}

#[test]
fn a_reordered_exchange_gets_the_previous_response_after_the_server_acted() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, Faults::NONE, 1).unwrap();
    let mut c = Client::new(proxy.addr());
    assert_eq!(c.get("/1").unwrap(), (200, b"response 1".to_vec()));
    proxy.set_faults(only(|f| f.reorder = 1.0)).unwrap();
    assert_eq!(c.get("/2").unwrap(), (200, b"response 1".to_vec()));
    assert_eq!(c.get("/3").unwrap(), (200, b"response 2".to_vec()));
    assert_eq!(proxy.counts().reordered, 2);
    assert_eq!(
        up.served.load(Ordering::SeqCst),
        3,
        "the server saw every request"
    );
}

#[test]
fn the_same_seed_injects_the_same_faults_on_a_connection() {
    let up = upstream();
    let statuses = |seed| {
        let proxy = FaultProxy::start(up.addr, only(|f| f.error_500 = 0.5), seed).unwrap();
        let mut c = Client::new(proxy.addr());
        (0..32)
            .map(|i| c.get(&format!("/{i}")).unwrap().0)
            .collect::<Vec<u16>>()
    };
    let a = statuses(11);
    assert_eq!(a, statuses(11));
    assert_ne!(a, statuses(12));
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[test]
fn a_live_event_stream_is_relayed_as_it_comes_without_faults() {
    // An upstream that sends one event, waits until the client saw it, then another.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut out = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);
        read_head(&mut r).unwrap().unwrap();
        out.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n").unwrap();
        seen_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        out.write_all(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n").unwrap();
    });
    let proxy = FaultProxy::start(addr, only(|f| f.duplicate = 1.0), 1).unwrap();
    let mut c = Client::new(proxy.addr());
    c.send("GET", "/events", b"");
    let head = read_head(&mut c.r).unwrap().unwrap();
    assert_eq!(head.status(), 200);
    let mut line = String::new();
    c.r.read_line(&mut line).unwrap(); // the chunk size
    line.clear();
    c.r.read_line(&mut line).unwrap();
    assert_eq!(
        line, "data: 1\n",
        "the first event arrives before the stream ends"
    );
    seen_tx.send(()).unwrap();
    let (rest, _) = c.rest();
    assert_eq!(
        rest, b"\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n",
        "relayed once, untouched"
    );
    server.join().unwrap();
    assert_eq!(proxy.counts().duplicated, 0);
}

#[test]
fn bad_faults_are_refused_naming_the_field() {
    let up = upstream();
    let err = FaultProxy::start(up.addr, only(|f| f.truncate = 1.5), 1).unwrap_err();
    assert!(
        matches!(
            err,
            ProxyError::Probability {
                field: "truncate",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "truncate: 1.5 is not a probability in [0, 1]"
    );
    let err = FaultProxy::start(up.addr, Faults::each(0.2), 1).unwrap_err();
    assert!(matches!(err, ProxyError::TooLikely { .. }), "{err}");
    let err =
        FaultProxy::start(up.addr, only(|f| f.stall_for = Duration::from_secs(60)), 1).unwrap_err();
    assert!(matches!(err, ProxyError::StallTooLong { .. }), "{err}");
    let proxy = FaultProxy::start(up.addr, Faults::NONE, 1).unwrap();
    let err = proxy.set_faults(only(|f| f.drop = -0.1)).unwrap_err();
    assert!(
        matches!(err, ProxyError::Probability { field: "drop", .. }),
        "{err}"
    );
}

#[test]
fn dropping_the_proxy_closes_its_connections_and_its_port() {
    let up = upstream();
    let proxy = FaultProxy::start(up.addr, Faults::NONE, 1).unwrap();
    let addr = proxy.addr();
    let mut c = Client::new(addr);
    assert_eq!(c.get("/1").unwrap().0, 200);
    drop(proxy);
    let (bytes, _) = c.rest();
    assert!(bytes.is_empty());
    assert!(TcpStream::connect(addr).is_err(), "the port still accepts");
}
