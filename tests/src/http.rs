//! A static HTTP/1.1 server on loopback for a TUF repository directory, whose answers can be
//! slowed, cut, stalled, changed or replaced by a fixed status, to test the client's transport:
//! progress timeouts, resuming by range, and the errors it reports.
//!
//! Every answer closes its connection. A `Range: bytes=N-` request is answered `206` with a
//! `Content-Range` (unless [`Faults::ranges`] is off: then `200` and the whole file). The
//! faults apply to the files under `targets/`; metadata is answered at once.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server misbehaves.
#[derive(Debug, Clone)]
pub struct Faults {
    /// A target body goes out in writes of this many bytes...
    pub chunk: usize,
    /// ...with this pause after each (a trickle).
    pub pause: Duration,
    /// The first answer for a target closes the connection at this offset of the file.
    pub cut_at: Option<u64>,
    /// Every answer for a target stops at this offset of the file and sends nothing more until
    /// the server is dropped (or a minute passed): one that starts there sends nothing at all.
    pub stall_at: Option<u64>,
    /// Whether `Range` requests are honoured.
    pub ranges: bool,
    /// A ranged answer sends other bytes than the file's (a file changed between two tries).
    pub change_resumed: bool,
    /// Requests whose path starts with `.0` are answered with status `.1` (a status line such
    /// as `300 Multiple Choices`), the `Location` `.2` if any, and an empty body.
    pub fixed: Option<(String, String, Option<String>)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            chunk: 64 * 1024,
            pause: Duration::ZERO,
            cut_at: None,
            stall_at: None,
            ranges: true,
            change_resumed: false,
            fixed: None,
        }
    }
}

/// One request the server took: its path and its `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path, without the leading `/`.
    pub path: String,
    /// The `Range` header's value.
    pub range: Option<String>,
}

/// The server; stops (and unblocks every stalled answer) when dropped.
#[derive(Debug)]
pub struct RepoServer {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl RepoServer {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub fn start(root: PathBuf, faults: Faults) -> RepoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            root,
            faults,
            requests: requests.clone(),
            stop: stop.clone(),
            targets_answered: AtomicUsize::new(0),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || shared.answer(stream));
            }
        });
        RepoServer {
            base,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The requests taken so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    faults: Faults,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    targets_answered: AtomicUsize,
}

impl Shared {
    fn answer(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':')
                && name.eq_ignore_ascii_case("range")
            {
                range = Some(value.trim().to_string());
            }
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/')
            .to_string();
        self.requests.lock().unwrap().push(Request {
            path: path.clone(),
            range: range.clone(),
        });
        let mut out = stream;
        if let Some((prefix, status, location)) = &self.faults.fixed
            && path.starts_with(prefix.as_str())
        {
            let location = location
                .as_ref()
                .map(|l| format!("location: {l}\r\n"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "HTTP/1.1 {status}\r\n{location}content-length: 0\r\nconnection: close\r\n\r\n"
            );
            return;
        }
        let file = self.root.join(&path);
        if path.contains("..") || !file.is_file() {
            let _ = out.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
            );
            return;
        }
        let whole = std::fs::read(&file).unwrap();
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|_| self.faults.ranges)
            .map(|n| n.min(whole.len()));
        let body: Vec<u8> = match start {
            Some(n) if self.faults.change_resumed => whole[n..].iter().map(|b| !b).collect(),
            Some(n) => whole[n..].to_vec(),
            None => whole.clone(),
        };
        let head = match start {
            Some(n) => format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {n}-{}/{}\r\n",
                whole.len().saturating_sub(1),
                whole.len()
            ),
            None => "HTTP/1.1 200 OK\r\naccept-ranges: bytes\r\n".to_string(),
        };
        if out
            .write_all(
                format!(
                    "{head}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .is_err()
        {
            return;
        }
        if !path.starts_with("targets/") {
            let _ = out.write_all(&body);
            return;
        }
        let first = self.targets_answered.fetch_add(1, Ordering::SeqCst) == 0;
        let cut = self.faults.cut_at.filter(|_| first);
        // The offset in the file of the next byte to send.
        let mut at = start.unwrap_or(0) as u64;
        for piece in body.chunks(self.faults.chunk.max(1)) {
            let end = at + piece.len() as u64;
            if let Some(stop) = self.faults.stall_at.filter(|&s| end > s) {
                let _ = out.write_all(&piece[..stop.saturating_sub(at) as usize]);
                self.stall();
                return;
            }
            if let Some(stop) = cut.filter(|&c| end > c) {
                let _ = out.write_all(&piece[..stop.saturating_sub(at) as usize]);
                return; // dropping the stream closes the connection mid-body
            }
            if out.write_all(piece).is_err() {
                return;
            }
            at = end;
            if !self.faults.pause.is_zero() {
                std::thread::sleep(self.faults.pause);
            }
        }
    }

    /// Holds the connection open, sending nothing, until the server stops (at most a minute).
    fn stall(&self) {
        let until = Instant::now() + Duration::from_secs(60);
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
