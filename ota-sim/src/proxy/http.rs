//! HTTP/1.1 messages, as the proxy reads them: just enough to find where each one ends (a
//! head, then a body delimited by `Content-Length`, chunked, or read until the close).

use std::io::{self, BufRead, Read};

/// The longest head read.
const MAX_HEAD: usize = 64 << 10;
/// The longest body read (more is answered `502`).
pub(super) const MAX_BODY: usize = 64 << 20;
/// A message head: its first line and headers.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub(super) start: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub(super) fn without(&self, name: &str) -> Head {
        Head {
            start: self.start.clone(),
            headers: self
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
                .cloned()
                .collect(),
        }
    }

    pub(super) fn with(mut self, name: &str, value: String) -> Head {
        self.headers.push((name.to_string(), value));
        self
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// A response's status code.
    pub(super) fn status(&self) -> u16 {
        self.start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

pub(super) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads a head; `None` on a clean end of stream before its first byte.
pub(super) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut total = 0;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return if lines.is_empty() && total == 0 {
                Ok(None)
            } else {
                Err(bad("the stream ended inside a head"))
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("a head longer than 64 KiB"));
        }
        let text = String::from_utf8(line).map_err(|_| bad("a head that is not UTF-8"))?;
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if lines.is_empty() {
                continue; // blank lines before a request line are allowed
            }
            break;
        }
        lines.push(text.to_string());
    }
    let start = lines.remove(0);
    let headers = lines
        .into_iter()
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| bad("a header without a colon"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Some(Head { start, headers }))
}

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

pub(super) fn framing(head: &Head, request: bool, head_request: bool) -> io::Result<Framing> {
    if !request {
        let status = head.status();
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Framing::None);
        }
    }
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    if let Some(v) = head.get("content-length") {
        let n: usize = v.parse().map_err(|_| bad("a bad content-length"))?;
        if n > MAX_BODY {
            return Err(bad("a body longer than 64 MiB"));
        }
        return Ok(Framing::Length(n));
    }
    Ok(if request {
        Framing::None
    } else {
        Framing::UntilClose
    })
}

/// Reads a body as it is on the wire (chunk framing included).
pub(super) fn read_body(r: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            out.resize(n, 0);
            r.read_exact(&mut out)?;
        }
        Framing::UntilClose => {
            r.take(MAX_BODY as u64 + 1).read_to_end(&mut out)?;
            if out.len() > MAX_BODY {
                return Err(bad("a body longer than 64 MiB"));
            }
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            r.by_ref().take(4096).read_until(b'\n', &mut line)?;
            if !line.ends_with(b"\n") {
                return Err(bad("a cut chunk-size line"));
            }
            out.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let size = text.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("a bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = Vec::new();
                    r.by_ref().take(4096).read_until(b'\n', &mut t)?;
                    if !t.ends_with(b"\n") {
                        return Err(bad("cut trailers"));
                    }
                    out.extend_from_slice(&t);
                    if t == b"\r\n" || t == b"\n" {
                        return Ok(out);
                    }
                }
            }
            if out.len() + size > MAX_BODY {
                return Err(bad("a body longer than 64 MiB"));
            }
            let at = out.len();
            out.resize(at + size + 2, 0);
            r.read_exact(&mut out[at..])?;
        },
    }
    Ok(out)
}

/// The payload of a chunked body.
pub(super) fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(eol) = rest.iter().position(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        rest = &rest[eol + 1..];
        if size == 0 || size > rest.len() {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// A whole message: its head and its body as on the wire.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) head: Head,
    pub(super) body: Vec<u8>,
    pub(super) framing: Framing,
}

impl Message {
    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Where to cut it: half the body after the head, or half the head when there is no body.
    pub(super) fn cut(&self) -> usize {
        let head = self.head.bytes().len();
        if self.body.is_empty() {
            head / 2
        } else {
            head + self.body.len() / 2
        }
    }
}
