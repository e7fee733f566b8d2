//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, to put between device agents and the
//! control plane in tests.
//!
//! ```no_run
//! use ota_sim::proxy::{FaultProxy, Faults};
//! # let server: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
//! // Every kind of fault, each on 3 % of the exchanges, from seed 7.
//! let proxy = FaultProxy::start(server, Faults::each(0.03), 7).unwrap();
//! let base = proxy.url(); // "http://127.0.0.1:PORT": give this to the agents
//! // ... run the agents against `base` ...
//! let counts = proxy.counts(); // what was injected, kind by kind
//! assert!(counts.injected() > 0);
//! proxy.set_faults(Faults::NONE).unwrap(); // let the stragglers finish cleanly
//! drop(proxy); // stops: closes every connection, joins every thread
//! ```
//!
//! **How it works.** The proxy listens on an ephemeral port of 127.0.0.1. Each client
//! connection gets a thread and its own upstream connection, both kept alive between
//! exchanges (HTTP/1.1). The proxy reads a whole request (request line, headers, a body
//! delimited by `Content-Length` or chunked), forwards it, reads the whole response
//! (`Content-Length`, chunked — as axum sends JSON it streams —, or until the upstream
//! closes), and then, at the granularity of that response, injects at most one [`Faults`]
//! kind, drawn with its probability. Responses of type `text/event-stream` (the live event
//! stream) are relayed as they come, without faults.
//!
//! The kinds, and what the client and the server see:
//!
//! | kind | the server | the client |
//! |---|---|---|
//! | `drop` | got the request, or (half the time) not | the connection closes without an answer |
//! | `reset` | got the request | the head and half the body, then a TCP reset |
//! | `error_500` | nothing | `500` with a JSON error body; the connection stays open |
//! | `truncate` | got the request | the head and half the body (half the head when there is no body), then a clean close |
//! | `wrong_length` | got the request | the body with a wrong `Content-Length` (half or twice its length), then a close |
//! | `stall` | got the request | the head and half the body, a pause of `stall_for`, then the rest |
//! | `duplicate` | got the request | the response twice: the copy is what the next request on the connection reads |
//! | `reorder` | got the request | the previous response of the connection instead of this one (when there is one) |
//!
//! A fault that leaves the connection out of step (`drop`, `reset`, `truncate`,
//! `wrong_length`) closes it; the others keep it open.
//!
//! **Determinism.** The `n`-th accepted connection draws its faults from a generator seeded
//! from `seed` and `n`, in the order of its exchanges: one connection's faults are a function
//! of the seed. Across connections the order of acceptance, and so the total, depends on
//! thread scheduling; assert on what must hold whatever was injected, not on exact counts.
//!
//! **Bounds.** Heads are at most 64 KiB and bodies 64 MiB (more is answered `502`); an idle
//! client or upstream is dropped after 30 s; a stall is at most [`MAX_STALL`].

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Rng;

mod http;

use http::{Framing, Head, Message, bad, dechunk, framing, read_body, read_head};

/// The longest stall [`Faults::stall_for`] may ask for.
pub const MAX_STALL: Duration = Duration::from_secs(30);

const IDLE: Duration = Duration::from_secs(30);

/// The faults to inject: for each kind, the probability (in `[0, 1]`) that an exchange gets
/// it. At most one kind is injected per exchange, so the probabilities add up to at most 1.
/// See the [module documentation](self) for what each does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Close the client's connection without an answer (half the time before forwarding the
    /// request, half the time after the server acted on it).
    pub drop: f64,
    /// Send the head and half the body, then reset the connection (TCP RST).
    pub reset: f64,
    /// Answer `500 Internal Server Error` without forwarding the request.
    pub error_500: f64,
    /// Send the head and half the body (half the head when the body is empty), then close.
    pub truncate: f64,
    /// Send the body with a `Content-Length` of half or twice its length, then close.
    pub wrong_length: f64,
    /// Send the head and half the body, pause [`Faults::stall_for`], then send the rest.
    pub stall: f64,
    /// How long a stall lasts (at most [`MAX_STALL`]).
    pub stall_for: Duration,
    /// Send the response twice: the next request on the connection reads the copy.
    pub duplicate: f64,
    /// Answer with the connection's previous response instead of this one.
    pub reorder: f64,
}

impl Faults {
    /// No faults: a plain proxy.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        reset: 0.0,
        error_500: 0.0,
        truncate: 0.0,
        wrong_length: 0.0,
        stall: 0.0,
        stall_for: Duration::from_millis(200),
        duplicate: 0.0,
        reorder: 0.0,
    };

    /// Every kind with probability `p` (so `8 × p` of the exchanges get a fault), stalls of
    /// 200 ms.
    pub fn each(p: f64) -> Faults {
        Faults {
            drop: p,
            reset: p,
            error_500: p,
            truncate: p,
            wrong_length: p,
            stall: p,
            duplicate: p,
            reorder: p,
            ..Faults::NONE
        }
    }

    fn kinds(&self) -> [(Fault, &'static str, f64); 8] {
        [
            (Fault::Drop, "drop", self.drop),
            (Fault::Reset, "reset", self.reset),
            (Fault::Error500, "error_500", self.error_500),
            (Fault::Truncate, "truncate", self.truncate),
            (Fault::WrongLength, "wrong_length", self.wrong_length),
            (Fault::Stall, "stall", self.stall),
            (Fault::Duplicate, "duplicate", self.duplicate),
            (Fault::Reorder, "reorder", self.reorder),
        ]
    }

    /// Checks every probability and the stall's bound.
    pub fn check(&self) -> Result<(), ProxyError> {
        let mut sum = 0.0;
        for (_, field, p) in self.kinds() {
            if !(0.0..=1.0).contains(&p) {
                return Err(ProxyError::Probability { field, value: p });
            }
            sum += p;
        }
        if sum > 1.0 + 1e-9 {
            return Err(ProxyError::TooLikely { sum });
        }
        if self.stall_for > MAX_STALL {
            return Err(ProxyError::StallTooLong {
                ms: self.stall_for.as_millis(),
                max_ms: MAX_STALL.as_millis(),
            });
        }
        Ok(())
    }

    fn pick(&self, rng: &mut Rng) -> Option<Fault> {
        let u = rng.unit();
        let mut acc = 0.0;
        for (fault, _, p) in self.kinds() {
            acc += p;
            if u < acc {
                return Some(fault);
            }
        }
        None
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::NONE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Drop,
    Reset,
    Error500,
    Truncate,
    WrongLength,
    Stall,
    Duplicate,
    Reorder,
}

/// Why a proxy could not start, or faults were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A probability outside `[0, 1]`.
    #[error("{field}: {value} is not a probability in [0, 1]")]
    Probability {
        /// The field of [`Faults`].
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The probabilities add up to more than 1.
    #[error("faults: the probabilities add up to {sum}, more than 1")]
    TooLikely {
        /// Their sum.
        sum: f64,
    },
    /// A stall longer than [`MAX_STALL`].
    #[error("stall_for: {ms} ms is longer than the bound of {max_ms} ms")]
    StallTooLong {
        /// The stall asked for.
        ms: u128,
        /// The bound.
        max_ms: u128,
    },
    /// The listening socket could not be opened.
    #[error("listening on 127.0.0.1: {source}")]
    Listen {
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a proxy did so far: how many exchanges it saw and forwarded, and each kind of fault
/// it injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Requests read from clients.
    pub requests: u64,
    /// Requests the server answered (whatever the client then got).
    pub forwarded: u64,
    /// Connections dropped without an answer.
    pub dropped: u64,
    /// Connections reset mid-body.
    pub reset: u64,
    /// `500`s answered in the server's place.
    pub error_500: u64,
    /// Responses cut short.
    pub truncated: u64,
    /// Responses with a wrong `Content-Length`.
    pub wrong_length: u64,
    /// Responses stalled mid-body.
    pub stalled: u64,
    /// Responses sent twice.
    pub duplicated: u64,
    /// Requests answered with the previous response.
    pub reordered: u64,
}

impl FaultCounts {
    /// Faults injected, all kinds together.
    pub fn injected(&self) -> u64 {
        self.dropped
            + self.reset
            + self.error_500
            + self.truncated
            + self.wrong_length
            + self.stalled
            + self.duplicated
            + self.reordered
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    reset: AtomicU64,
    error_500: AtomicU64,
    truncated: AtomicU64,
    wrong_length: AtomicU64,
    stalled: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    faults: Mutex<Faults>,
    counters: Counters,
    /// Every open socket (client and upstream) by connection, to shut them down on stop.
    sockets: Mutex<HashMap<u64, Vec<TcpStream>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fault-injecting proxy; dropping it stops it (every connection is closed and
/// every thread joined).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on an ephemeral port of 127.0.0.1 that forwards to `upstream`,
    /// injecting `faults` drawn from `seed`. Fails when a probability is outside `[0, 1]`,
    /// they add up to more than 1, the stall is longer than [`MAX_STALL`], or the port cannot
    /// be opened.
    pub fn start(
        upstream: SocketAddr,
        faults: Faults,
        seed: u64,
    ) -> Result<FaultProxy, ProxyError> {
        faults.check()?;
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|source| ProxyError::Listen { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Listen { source })?;
        let shared = Arc::new(Shared {
            upstream,
            stop: AtomicBool::new(false),
            faults: Mutex::new(faults),
            counters: Counters::default(),
            sockets: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(&listener, &s, seed))
            .map_err(|source| ProxyError::Listen { source })?;
        Ok(FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address to connect to instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to give clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            connections: g(&c.connections),
            requests: g(&c.requests),
            forwarded: g(&c.forwarded),
            dropped: g(&c.dropped),
            reset: g(&c.reset),
            error_500: g(&c.error_500),
            truncated: g(&c.truncated),
            wrong_length: g(&c.wrong_length),
            stalled: g(&c.stalled),
            duplicated: g(&c.duplicated),
            reordered: g(&c.reordered),
        }
    }

    /// Changes the faults of the exchanges to come (`Faults::NONE` turns them off).
    pub fn set_faults(&self, faults: Faults) -> Result<(), ProxyError> {
        faults.check()?;
        *lock(&self.shared.faults) = faults;
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then close every connection so no thread stays blocked.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for socks in lock(&self.shared.sockets).values() {
            for s in socks {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, seed: u64) {
    let mut seeds = Rng::stream(seed, "fault-proxy");
    for (n, conn) in (0u64..).zip(listener.incoming()) {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        bump(&shared.counters.connections);
        let rng = Rng::new(seeds.next_u64());
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fault-proxy-{n}"))
            .spawn(move || {
                serve(n, client, &s, rng);
                lock(&s.sockets).remove(&n);
            });
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        if let Ok(t) = spawned {
            threads.push(t);
        }
    }
}

// ------------------------------------------------------------------------------------------
// One client connection.
// ------------------------------------------------------------------------------------------

struct Upstream {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

fn connect_upstream(n: u64, shared: &Shared) -> io::Result<Upstream> {
    let stream = TcpStream::connect_timeout(&shared.upstream, IDLE)?;
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let _ = stream.set_nodelay(true);
    lock(&shared.sockets)
        .entry(n)
        .or_default()
        .push(stream.try_clone()?);
    let reader = BufReader::new(stream.try_clone()?);
    Ok(Upstream { stream, reader })
}

/// Sends a request upstream and reads its response. A kept-alive connection the server
/// closed meanwhile (no byte of answer) is replaced once.
fn exchange(
    n: u64,
    shared: &Shared,
    up: &mut Option<Upstream>,
    request: &[u8],
    head_request: bool,
) -> io::Result<(Message, bool)> {
    for attempt in 0..2 {
        let fresh = up.is_none();
        if up.is_none() {
            *up = Some(connect_upstream(n, shared)?);
        }
        let Some(u) = up.as_mut() else {
            return Err(bad("no upstream"));
        };
        let sent = u.stream.write_all(request).and_then(|()| u.stream.flush());
        let head = match sent.and_then(|()| read_head(&mut u.reader)) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) if !fresh && attempt == 0 => {
                *up = None;
                continue;
            }
            Ok(None) => return Err(bad("the server closed without answering")),
            Err(e) => return Err(e),
        };
        let framing = framing(&head, false, head_request)?;
        if head
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            // A live stream: relayed as it comes, by the caller.
            return Ok((
                Message {
                    head,
                    body: Vec::new(),
                    framing,
                },
                true,
            ));
        }
        let body = read_body(&mut u.reader, framing)?;
        let close = framing == Framing::UntilClose || head.has_token("connection", "close");
        if close {
            *up = None;
        }
        return Ok((
            Message {
                head,
                body,
                framing,
            },
            false,
        ));
    }
    Err(bad("the server closed without answering"))
}

fn error_500() -> Message {
    let body = br#"{"code":"INTERNAL","message":"injected by the fault proxy"}"#.to_vec();
    Message {
        head: Head {
            start: "HTTP/1.1 500 Internal Server Error".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("content-length".into(), body.len().to_string()),
            ],
        },
        framing: Framing::Length(body.len()),
        body,
    }
}

/// Sleeps `d` in short slices, returning early when the proxy stops.
fn pause(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
}

fn serve(n: u64, client: TcpStream, shared: &Shared, mut rng: Rng) {
    let _ = client.set_read_timeout(Some(IDLE));
    let _ = client.set_write_timeout(Some(IDLE));
    let _ = client.set_nodelay(true);
    let (Ok(mut out), Ok(read_half), Ok(track)) =
        (client.try_clone(), client.try_clone(), client.try_clone())
    else {
        return;
    };
    lock(&shared.sockets).entry(n).or_default().push(track);
    let mut reader = BufReader::new(read_half);
    let mut up: Option<Upstream> = None;
    let mut previous: Option<Vec<u8>> = None;
    let c = &shared.counters;
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok(Some(head)) = read_head(&mut reader) else {
            return;
        };
        if head.has_token("expect", "100-continue")
            && out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let Ok(framing) = framing(&head, true, false) else {
            return;
        };
        let Ok(body) = read_body(&mut reader, framing) else {
            return;
        };
        bump(&c.requests);
        let close_after = head.has_token("connection", "close");
        let head_request = head.start.starts_with("HEAD ");
        let mut request = head.without("expect").bytes();
        request.extend_from_slice(&body);

        let faults = *lock(&shared.faults);
        let fault = faults.pick(&mut rng);
        if fault == Some(Fault::Error500) {
            bump(&c.error_500);
            let m = error_500().bytes();
            if out.write_all(&m).is_err() {
                return;
            }
            previous = Some(m);
            continue;
        }
        if fault == Some(Fault::Drop) && rng.chance(0.5) {
            bump(&c.dropped);
            return; // before the server saw it
        }
        let (response, streaming) = match exchange(n, shared, &mut up, &request, head_request) {
            Ok(r) => r,
            Err(_) => {
                let _ = out.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return;
            }
        };
        bump(&c.forwarded);
        if streaming {
            relay(&mut out, response, up.take());
            return;
        }
        let bytes = response.bytes();
        let sent = match fault {
            None | Some(Fault::Error500) => out.write_all(&bytes),
            Some(Fault::Drop) => {
                bump(&c.dropped);
                return; // after the server acted on it
            }
            Some(Fault::Reset) => {
                bump(&c.reset);
                let _ = out.write_all(&bytes[..response.cut()]);
                let _ = out.flush();
                // SO_LINGER 0: closing sends a TCP reset instead of a clean end.
                let _ = socket2::SockRef::from(&out).set_linger(Some(Duration::ZERO));
                lock(&shared.sockets).remove(&n);
                drop(reader);
                drop(out);
                drop(client);
                return;
            }
            Some(Fault::Truncate) => {
                bump(&c.truncated);
                let _ = out.write_all(&bytes[..response.cut()]);
                let _ = out.shutdown(Shutdown::Write);
                return;
            }
            Some(Fault::WrongLength) => {
                bump(&c.wrong_length);
                let body = if response.framing == Framing::Chunked {
                    dechunk(&response.body)
                } else {
                    response.body.clone()
                };
                let wrong = if rng.chance(0.5) {
                    body.len() / 2
                } else {
                    body.len() * 2 + 1
                };
                let mut m = response
                    .head
                    .without("content-length")
                    .without("transfer-encoding")
                    .with("content-length", wrong.to_string())
                    .bytes();
                m.extend_from_slice(&body);
                let _ = out.write_all(&m);
                let _ = out.shutdown(Shutdown::Write);
                return;
            }
            Some(Fault::Stall) => {
                bump(&c.stalled);
                let cut = response.cut();
                let first = out.write_all(&bytes[..cut]).and_then(|()| out.flush());
                pause(shared, faults.stall_for);
                first.and_then(|()| out.write_all(&bytes[cut..]))
            }
            Some(Fault::Duplicate) => {
                bump(&c.duplicated);
                out.write_all(&bytes).and_then(|()| out.write_all(&bytes))
            }
            Some(Fault::Reorder) => match previous.take() {
                Some(p) => {
                    bump(&c.reordered);
                    out.write_all(&p)
                }
                None => out.write_all(&bytes),
            },
        };
        previous = Some(bytes);
        if sent.is_err() || close_after || response.head.has_token("connection", "close") {
            return;
        }
        if response.framing == Framing::UntilClose {
            let _ = out.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Relays a live stream (server-sent events) untouched until either side ends it.
fn relay(out: &mut TcpStream, response: Message, up: Option<Upstream>) {
    let Some(mut u) = up else { return };
    if out.write_all(&response.head.bytes()).is_err() {
        return;
    }
    let _ = u.stream.set_read_timeout(None);
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match u.reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => {
                if out.write_all(&buf[..k]).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
