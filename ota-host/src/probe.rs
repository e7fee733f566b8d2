//! Health-probe runners: the I/O the core's [`ota_core::probe`] decisions leave out. They
//! spawn the allowlisted executable (killed at its timeout), make a loopback HTTP GET, or
//! stat a readiness file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ota_core::probe::{ProbeError, ProbeResult, ProbeSpec, interpreter, parse_http_url};

fn result(healthy: bool, detail: impl Into<String>) -> ProbeResult {
    ProbeResult {
        healthy,
        detail: detail.into(),
    }
}

/// Runs a probe that passed [`ProbeSpec::check`]. `swapped_at` is when the swap happened.
/// An executable that resolves (through symbolic links) to an interpreter or launcher is
/// refused like one named so (`/usr/local/bin/health -> /bin/busybox`).
pub fn run(spec: &ProbeSpec, allowlist: &[String], swapped_at: SystemTime) -> ProbeResult {
    if let Err(e) = spec.check(allowlist).and_then(|()| resolved(spec)) {
        return result(false, e.to_string());
    }
    match spec {
        ProbeSpec::Exec {
            path,
            args,
            timeout_ms,
        } => exec(path, args, Duration::from_millis(*timeout_ms)),
        ProbeSpec::Http {
            url, timeout_ms, ..
        } => http(url, Duration::from_millis(*timeout_ms)),
        ProbeSpec::File { path } => file(path, swapped_at),
        other => result(false, format!("no runner for the probe {other:?}")),
    }
}

/// Refuses an executable probe whose file, links resolved, is an interpreter or launcher. A
/// multi-call binary (`busybox`) behind a link runs the applet the link's own name says,
/// which [`ProbeSpec::check`] judged already.
fn resolved(spec: &ProbeSpec) -> Result<(), ProbeError> {
    let ProbeSpec::Exec { path, .. } = spec else {
        return Ok(());
    };
    let Ok(target) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let target = target.to_string_lossy();
    match interpreter(&target) {
        Some("busybox" | "toybox") | None => Ok(()),
        Some(name) => Err(ProbeError::Interpreter {
            path: format!("{path} (-> {target})"),
            name: name.to_string(),
        }),
    }
}

/// Runs the executable; kills it, with whatever it started, when the timeout passes.
pub fn exec(path: &str, args: &[String], timeout: Duration) -> ProbeResult {
    let mut command = Command::new(path);
    command.args(args);
    match crate::command::run(command, timeout, 0) {
        Err(e) => result(false, format!("cannot start {path}: {e}")),
        Ok(ran) => match ran.status {
            Some(status) if status.success() => result(true, "exit status 0"),
            Some(status) => result(false, format!("{path}: {status}")),
            None => result(
                false,
                format!("{path}: timed out after {} ms, killed", timeout.as_millis()),
            ),
        },
    }
}

/// A minimal HTTP/1.1 GET: healthy on a 2xx status line within the timeout.
pub fn http(url: &str, timeout: Duration) -> ProbeResult {
    let t = match parse_http_url(url) {
        Ok(t) => t,
        Err(e) => return result(false, e.to_string()),
    };
    let host = t.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match (host, t.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => Vec::new(),
    };
    if addrs.is_empty() {
        return result(false, format!("cannot resolve {}", t.host));
    }
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        result(
            false,
            format!("GET {url}: timed out after {} ms", timeout.as_millis()),
        )
    };
    let mut stream = match connect_any(&addrs, deadline) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return timed_out(),
        Err(e) => return result(false, format!("GET {url}: {e}")),
    };
    let _ = stream.set_write_timeout(Some(left(deadline).max(Duration::from_millis(1))));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: ota-probe\r\n\r\n",
        t.path, t.host
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return result(false, format!("GET {url}: {e}"));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        // Each read waits only for what is left of the timeout, so a server that answers
        // slowly, a few bytes at a time, cannot stretch the probe past it.
        let wait = left(deadline);
        if wait.is_zero() {
            return timed_out();
        }
        let _ = stream.set_read_timeout(Some(wait));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return timed_out();
            }
            Err(e) => return result(false, format!("GET {url}: {e}")),
        }
        if head.len() > 8192 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let code = status_code(line);
    match code {
        Some(c) if (200..300).contains(&c) => result(true, format!("HTTP {c}")),
        Some(c) => result(false, format!("GET {url}: HTTP {c}")),
        None => result(false, format!("GET {url}: no HTTP status line")),
    }
}

/// What is left until `deadline` (zero once it has passed).
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Connects to the first of `addrs` that accepts before `deadline`, in their order: a name
/// such as `localhost` resolves to `::1` and `127.0.0.1`, and the service may listen on
/// only one of them.
fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        let wait = left(deadline);
        if wait.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        match TcpStream::connect_timeout(addr, wait) {
            Ok(s) => return Ok(s),
            Err(e) => last = std::io::Error::new(e.kind(), format!("{addr}: {e}")),
        }
    }
    Err(last)
}

/// The status of an `HTTP/1.x DDD reason` line: exactly three digits, then a space or the
/// end of the line (`HTTP/1.1 2999` has none).
fn status_code(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let mut chars = rest.chars();
    if !chars.next()?.is_ascii_digit() || chars.next()? != ' ' {
        return None;
    }
    let rest = chars.as_str();
    let digits = rest.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match rest.get(3..)? {
        "" => {}
        after if after.starts_with(' ') => {}
        _ => return None,
    }
    digits.parse().ok()
}

/// Healthy when the file exists and was modified after the swap.
pub fn file(path: &str, swapped_at: SystemTime) -> ProbeResult {
    match std::fs::metadata(path).and_then(|m| m.modified()) {
        Err(e) => result(false, format!("{path}: {e}")),
        Ok(modified) if modified > swapped_at => result(true, format!("{path} is ready")),
        Ok(_) => result(false, format!("{path} is older than the swap")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on 127.0.0.1 that answers one GET with `status_line`; returns its URL.
    fn answering(status_line: &'static str) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(s, "{status_line}\r\ncontent-length: 0\r\n\r\n");
        });
        (url, server)
    }

    #[test]
    fn an_allowlisted_link_to_a_shell_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("health");
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
        let path = link.display().to_string();
        let spec = ProbeSpec::Exec {
            path: path.clone(),
            args: vec!["-c".into(), "exit 0".into()],
            timeout_ms: 2_000,
        };
        let r = run(&spec, &[path], SystemTime::now());
        assert!(!r.healthy, "{}", r.detail);
        assert!(r.detail.contains("interpreter"), "{}", r.detail);
    }

    #[test]
    fn a_status_that_is_not_exactly_three_digits_is_not_healthy() {
        for (line, healthy) in [
            ("HTTP/1.1 200 OK", true),
            ("HTTP/1.1 204", true),
            ("HTTP/1.1 2999 OK", false),
            ("HTTP/1.1 2999", false),
            ("HTTP/1.1 +20 OK", false),
            ("HTTP/1.1 20 OK", false),
            ("HTTP/1.1  200 OK", false),
            ("HTTP/1.1 503 Busy", false),
        ] {
            let (url, server) = answering(line);
            let r = http(&url, Duration::from_secs(5));
            server.join().unwrap();
            assert_eq!(r.healthy, healthy, "{line}: {}", r.detail);
        }
        assert_eq!(status_code("HTTP/1.1 2999"), None);
        assert_eq!(status_code("HTTP/1.0 299 x"), Some(299));
    }

    #[test]
    fn every_address_a_name_resolves_to_is_tried_before_the_probe_fails() {
        // A port nothing listens on (bound, then closed), then one a server listens on.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let s = connect_any(&[closed, live.local_addr().unwrap()], deadline).unwrap();
        assert_eq!(s.peer_addr().unwrap(), live.local_addr().unwrap());
        let e = connect_any(&[closed], deadline).unwrap_err();
        assert!(e.to_string().contains(&closed.to_string()), "{e}");
    }

    #[test]
    fn a_server_that_stalls_after_a_byte_times_the_probe_out_within_its_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            // A byte half way through the 600 ms, then nothing: the read after it may wait
            // only for the 300 ms left, not for a whole timeout again.
            std::thread::sleep(Duration::from_millis(300));
            let _ = s.write_all(b"H");
            std::thread::sleep(Duration::from_millis(1500));
        });
        let r = http(&url, Duration::from_millis(600));
        assert!(!r.healthy, "{}", r.detail);
        assert!(r.detail.contains("timed out"), "{}", r.detail);
        server.join().unwrap();
    }
}
