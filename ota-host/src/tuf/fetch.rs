//! Reading a repository: a path under a base URL, from a local directory (`file://`) or over
//! HTTP(S), streamed to a sink piece by piece (nothing is kept here between pieces).
//!
//! Over HTTP a try fails when it makes no progress for [`Transport::progress_timeout`] (no
//! answer, or no body bytes, for that long), never for its total time: a large target on a slow
//! link takes as long as it takes. A try that fails part-way (the connection broke, or stalled)
//! is resumed from the next byte with `Range: bytes=N-`; a server that ignores the range is
//! read from its start again, the bytes already handed over skipped. The fetch gives up when
//! [`Transport::tries`] tries in a row fail, a try that brought bytes starting the count again.
//! What the bytes must be is the caller's to check (the updater checks metadata, the target
//! verifier checks targets as they stream, resumed bytes alike).
//!
//! Redirects are followed (at most 10); any other `3xx` fails, naming the status and its
//! `Location`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, LOCATION, RANGE};
use url::Url;

/// How HTTP fetches are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// A try fails when it makes no progress for this long: connecting and getting the answer's
    /// head, or between two pieces of its body. Not a bound on the whole transfer. Default 30 s.
    pub progress_timeout: Duration,
    /// How many tries in a row may fail before the fetch does (a try that brought bytes starts
    /// the count again). Default 4.
    pub tries: u32,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            progress_timeout: Duration::from_secs(30),
            tries: 4,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug)]
pub(super) struct FetchError {
    /// The file is not there (HTTP 403, 404 or 410, or no such local file).
    pub(super) not_found: bool,
    /// What failed.
    pub(super) detail: String,
}

/// What stopped a fetch: the source, or the sink's own error.
#[derive(Debug)]
pub(super) enum Stopped<E> {
    /// The source failed.
    Fetch(FetchError),
    /// The sink refused a piece.
    Sink(E),
}

/// What the sink wants after a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// The next piece.
    More,
    /// Nothing more: the fetch ends there.
    Enough,
}

/// A sink: takes each piece in order.
pub(super) type Sink<'a, E> = dyn FnMut(&[u8]) -> Result<Flow, E> + 'a;

/// How much a local read takes at once.
const FILE_READ: usize = 64 * 1024;

/// The pause after the first try that failed without progress; each next one is half as long
/// again, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Fetches from files and HTTP; the blocking calls run on a current-thread runtime, with one
/// HTTP client (and its connection pool) for the fetcher's life.
pub(super) struct Fetcher {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    transport: Transport,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// How one try ended, when it did not reach the end.
enum TryFailed<E> {
    /// Worth another try (resumed where it stopped).
    Again(String),
    /// Final.
    Fatal(FetchError),
    /// The sink refused a piece.
    Sink(E),
}

fn fatal<E>(detail: String) -> TryFailed<E> {
    TryFailed::Fatal(FetchError {
        not_found: false,
        detail,
    })
}

impl Fetcher {
    pub(super) fn new(transport: Transport) -> Result<Fetcher, super::TufError> {
        let http = reqwest::Client::builder()
            .connect_timeout(transport.progress_timeout)
            .build()
            .map_err(|e| super::TufError::Fetch {
                detail: format!("starting the HTTP client: {}", chain(&e)),
            })?;
        Ok(Fetcher {
            rt: super::runtime()?,
            http,
            transport,
        })
    }

    /// Streams `url_path` (relative, percent-encoded) under `base` to `sink`, until its end or
    /// until the sink has had enough. Returns how many bytes the sink took.
    pub(super) fn fetch<E>(
        &self,
        base: &Url,
        url_path: &str,
        sink: &mut Sink<'_, E>,
    ) -> Result<u64, Stopped<E>> {
        let fail = |detail: String| {
            Stopped::Fetch(FetchError {
                not_found: false,
                detail,
            })
        };
        if base.scheme() == "file" {
            let path = local_path(base, url_path).map_err(fail)?;
            let file = std::fs::File::open(&path).map_err(|e| {
                Stopped::Fetch(FetchError {
                    not_found: e.kind() == std::io::ErrorKind::NotFound,
                    detail: format!("{}: {e}", path.display()),
                })
            })?;
            return read_file(file, sink).map_err(|e| match e {
                Stopped::Fetch(f) => fail(format!("{}: {}", path.display(), f.detail)),
                sink => sink,
            });
        }
        let url = base
            .join(url_path)
            .map_err(|e| fail(format!("{base}{url_path}: {e}")))?;
        self.rt.block_on(self.fetch_http(&url, sink))
    }

    /// Reads `url_path` whole, but never more than `max + 1` bytes (so an oversized file is
    /// seen as such, and an endless one ends).
    pub(super) fn get(&self, base: &Url, url_path: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let cap = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut sink = |piece: &[u8]| -> Result<Flow, std::convert::Infallible> {
            let room = cap - out.len();
            out.extend_from_slice(&piece[..piece.len().min(room)]);
            Ok(if out.len() >= cap {
                Flow::Enough
            } else {
                Flow::More
            })
        };
        match self.fetch(base, url_path, &mut sink) {
            Ok(_) => Ok(out),
            Err(Stopped::Fetch(e)) => Err(e),
            Err(Stopped::Sink(never)) => match never {},
        }
    }

    /// The tries of one HTTP fetch, each resumed where the last one stopped.
    async fn fetch_http<E>(&self, url: &Url, sink: &mut Sink<'_, E>) -> Result<u64, Stopped<E>> {
        let mut got = 0u64;
        let mut failed = 0u32;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let before = got;
            let detail = match self.try_http(url, &mut got, sink).await {
                Ok(()) => return Ok(got),
                Err(TryFailed::Sink(e)) => return Err(Stopped::Sink(e)),
                Err(TryFailed::Fatal(mut e)) => {
                    e.detail = format!("{url}: {}", e.detail);
                    return Err(Stopped::Fetch(e));
                }
                Err(TryFailed::Again(detail)) => detail,
            };
            if got > before {
                failed = 0;
                backoff = FIRST_BACKOFF;
            }
            failed += 1;
            if failed >= self.transport.tries.max(1) {
                let tries = match failed {
                    1 => "1 try".to_string(),
                    n => format!("{n} tries in a row"),
                };
                return Err(Stopped::Fetch(FetchError {
                    not_found: false,
                    detail: format!("{url}: {detail} ({tries} failed, {got} bytes read)"),
                }));
            }
            if got == before {
                tokio::time::sleep(backoff).await;
                backoff = backoff.mul_f32(1.5).min(MAX_BACKOFF);
            }
        }
    }

    /// One try: a GET from byte `got` on, each new byte handed to the sink and counted.
    async fn try_http<E>(
        &self,
        url: &Url,
        got: &mut u64,
        sink: &mut Sink<'_, E>,
    ) -> Result<(), TryFailed<E>> {
        let progress = self.transport.progress_timeout;
        let stalled = |what: &str| {
            TryFailed::Again(format!(
                "no progress for {} (the progress timeout) {what}",
                seconds(progress)
            ))
        };
        let mut request = self.http.get(url.clone());
        if *got > 0 {
            request = request.header(RANGE, format!("bytes={got}-"));
        }
        let mut response = match tokio::time::timeout(progress, request.send()).await {
            Err(_) => return Err(stalled("waiting for the answer")),
            Ok(Err(e)) if e.is_redirect() => return Err(fatal(chain(&e))),
            Ok(Err(e)) => return Err(TryFailed::Again(chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        // The bytes of the answer to skip: those the sink has had already.
        let mut skip = match status {
            StatusCode::OK => *got,
            StatusCode::PARTIAL_CONTENT if *got > 0 => {
                let range = header(&response, CONTENT_RANGE);
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if start != Some(*got) {
                    return Err(fatal(format!(
                        "asked for the bytes from {got} on, the server answered 206 with Content-Range {}",
                        range.as_deref().unwrap_or("(none)")
                    )));
                }
                0
            }
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Err(TryFailed::Fatal(FetchError {
                    not_found: *got == 0,
                    detail: format!("HTTP {status}"),
                }));
            }
            s if s.is_redirection() => {
                let location = header(&response, LOCATION)
                    .map(|l| format!("Location: {l}"))
                    .unwrap_or_else(|| "no Location".into());
                return Err(fatal(format!("HTTP {status}, not followed ({location})")));
            }
            s if s.is_server_error()
                || s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS =>
            {
                return Err(TryFailed::Again(format!("HTTP {status}")));
            }
            s => return Err(fatal(format!("HTTP {s}"))),
        };
        loop {
            let chunk = match tokio::time::timeout(progress, response.chunk()).await {
                Err(_) => return Err(stalled(&format!("after byte {got}"))),
                Ok(Err(e)) => {
                    return Err(TryFailed::Again(format!(
                        "the answer broke off after byte {got}: {}",
                        chain(&e)
                    )));
                }
                Ok(Ok(None)) if skip > 0 => {
                    return Err(TryFailed::Again(format!(
                        "the server's answer ended {skip} bytes before byte {got}"
                    )));
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let drop = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
            skip -= drop as u64;
            let piece = &chunk[drop..];
            if piece.is_empty() {
                continue;
            }
            *got += piece.len() as u64;
            if sink(piece).map_err(TryFailed::Sink)? == Flow::Enough {
                return Ok(());
            }
        }
    }
}

/// A local file to the sink, in pieces of one reused buffer.
fn read_file<E>(mut file: std::fs::File, sink: &mut Sink<'_, E>) -> Result<u64, Stopped<E>> {
    let mut buf = vec![0u8; FILE_READ];
    let mut got = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Stopped::Fetch(FetchError {
                    not_found: false,
                    detail: e.to_string(),
                }));
            }
        };
        got += n as u64;
        if sink(&buf[..n]).map_err(Stopped::Sink)? == Flow::Enough {
            return Ok(got);
        }
    }
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// An error with every cause under it: `request failed: connection closed before message
/// completed`, not only the first line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A duration for people: `1.5 s`, `30 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// The local file `url_path` names under a `file://` base: each part percent-decoded alone,
/// and refused if it would leave the directory (a decoded `/`, `\`, `.`, `..` or empty part).
fn local_path(base: &Url, url_path: &str) -> Result<PathBuf, String> {
    let mut path = base
        .to_file_path()
        .map_err(|()| format!("{base}: not a local directory"))?;
    for part in url_path.split('/') {
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map_err(|e| format!("{url_path}: {e}"))?;
        if decoded.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.contains('\\')
            || decoded.contains('\0')
        {
            return Err(format!("{url_path}: not a path inside the repository"));
        }
        path.push(&*decoded);
    }
    Ok(path)
}
