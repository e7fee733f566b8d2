//! Verifying an envelope read from storage, never held whole ([`verify_reader`]): the
//! device's memory stays the same whatever the size of the statement and its chunk table.
//!
//! DSSE signs `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, so the payload's
//! length must be known before its first byte is hashed. Three passes over the envelope:
//! 1. [`scan`] reads its object: `payloadType` and `signatures` (small) are parsed, and the
//!    base64 `payload` is only checked and measured (its byte range, its decoded length, its
//!    alphabet);
//! 2. the payload is read again from its range, unescaped and decoded as it streams, and
//!    every byte goes to each trusted key's signature check and to the SHA-256 that names the
//!    package;
//! 3. only if the signatures hold, it is read a third time into the statement's parser,
//!    whose chunk table goes to the host's [`TableStore`] rather than to memory, and its
//!    SHA-256 must be the one the signatures covered.
//!
//! So a forged envelope is never parsed or stored (it costs no more memory or storage
//! writes than a valid one), and a source that changed between the passes is refused:
//! nothing unsigned is accepted. (A source that changes between the second pass and the
//! third gets its new bytes parsed, and stored, before they are refused.) Errors are those
//! of [`super::verify`], of the same kinds in the same order.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use sha2::{Digest as _, Sha256};

use super::{Checks, PAYLOAD_TYPE, SignError, TrustedKeys};
use crate::chunk::{TableStore, into_store};
use crate::digest::Sha256Digest;
use crate::dsse::{Pae, Signature};
use crate::json::{self, JsonFault, ParseError};
use crate::limits::Limits;
use crate::package::Package;
#[cfg(test)]
use crate::status::Status;
use crate::verified::{PackageId, Provenance, VerifiedPackage};

/// Verifies the envelope `source` holds, as [`super::verify`] does, without holding it: the
/// statement's chunk table is written to `store` and read back from there, checked, as chunks
/// are verified. Beside the statement's own fields and the signatures, memory is a few
/// buffers whatever the envelope's size; nothing is parsed, and nothing written to `store`,
/// until the signatures hold.
pub fn verify_reader<R: Read + Seek>(
    mut source: R,
    trusted: &TrustedKeys,
    threshold: usize,
    limits: &Limits,
    store: Box<dyn TableStore>,
) -> Result<VerifiedPackage, SignError> {
    let max_envelope = limits.max_envelope_bytes();
    let size = source.seek(SeekFrom::End(0)).map_err(read_error)?;
    if size > max_envelope as u64 {
        return Err(SignError::Envelope(ParseError::TooLarge {
            what: "envelope",
            size: usize::try_from(size).unwrap_or(usize::MAX),
            max: max_envelope,
        }));
    }
    source.rewind().map_err(read_error)?;
    let layout = scan(&mut source, max_envelope)?;
    if threshold == 0 {
        return Err(SignError::InvalidThreshold);
    }
    if layout.payload_type != PAYLOAD_TYPE {
        return Err(SignError::PayloadType {
            found: layout.payload_type,
        });
    }
    // Pass 2: the signatures, and the SHA-256 that names the package.
    let head = Pae::head(&layout.payload_type, layout.decoded_len);
    let checks = Checks::start(&layout.signatures, trusted, head.as_bytes());
    let mut signed = payload(&mut source, &layout, Some(checks))?;
    let copied = io::copy(&mut signed, &mut io::sink());
    // The first error the tee kept comes first: it has the source's or decoder's own error.
    let signed = signed.into_inner().finish()?;
    copied.map_err(stream_error)?;
    // (The checks are always there in this pass; without them nothing would count as signed.)
    let none_signed = SignError::ThresholdNotMet {
        needed: threshold,
        found: 0,
    };
    let signed_by = signed
        .checks
        .map_or(Err(none_signed), |c| c.finish(threshold))?;

    // Pass 3: the statement, parsed from the same bytes (their SHA-256 must be the one the
    // signatures covered), its chunk table into the store.
    let max = limits.max_package_bytes;
    if layout.decoded_len > max as u64 {
        return Err(SignError::Statement(ParseError::TooLarge {
            what: "package",
            size: usize::try_from(layout.decoded_len).unwrap_or(usize::MAX),
            max,
        }));
    }
    let mut again = payload(&mut source, &layout, None)?;
    let (parsed, store_failed) = into_store(store, || {
        json::parse_reader::<Package, _>("package", &mut again, max)
    });
    let copied = io::copy(&mut again, &mut io::sink());
    let again = again.into_inner().finish()?;
    copied.map_err(stream_error)?;
    if again.sha256 != signed.sha256 {
        return Err(changed(
            "its payload is not the one whose signatures were checked",
        ));
    }
    if let Some(message) = store_failed {
        return Err(SignError::Read {
            message: format!("writing the chunk table to its store: {message}"),
        });
    }
    let package = parsed.map_err(SignError::Statement)?;
    VerifiedPackage::new(
        package,
        PackageId::of_digest(&signed.sha256),
        signed_by,
        Provenance::DsseStreamed {
            payload_type: layout.payload_type,
            signatures: layout.signatures,
        },
    )
}

/// The decoded payload, read again from its range in `source`, through a [`Tee`].
fn payload<'a, R: Read + Seek>(
    source: &'a mut R,
    layout: &Layout,
    checks: Option<Checks>,
) -> Result<BufReader<Tee<impl Read + 'a>>, SignError> {
    source
        .seek(SeekFrom::Start(layout.payload.start))
        .map_err(read_error)?;
    let raw = BufReader::with_capacity(
        16 << 10,
        source.take(layout.payload.end - layout.payload.start),
    );
    let engine = if layout.url_safe {
        &URL_SAFE
    } else {
        &STANDARD
    };
    Ok(BufReader::with_capacity(
        16 << 10,
        Tee {
            inner: base64::read::DecoderReader::new(Unescape { inner: raw }, engine),
            checks,
            sha256: Sha256::new(),
            count: 0,
            expected: layout.decoded_len,
            failed: None,
        },
    ))
}

fn changed(what: &str) -> SignError {
    SignError::Read {
        message: format!("the envelope changed while it was read: {what}"),
    }
}

/// What a pass over the payload saw.
struct Seen {
    checks: Option<Checks>,
    sha256: Sha256Digest,
}

fn read_error(e: io::Error) -> SignError {
    SignError::Read {
        message: format!("reading the envelope: {e}"),
    }
}

/// An error of the second or third pass: base64 the decoder refuses (the first pass checked
/// it, so the source changed since), or the source failing.
fn stream_error(e: io::Error) -> SignError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<base64::DecodeError>())
    {
        envelope_fault("payload", JsonFault::InvalidValue, "not valid base64")
    } else {
        read_error(e)
    }
}

fn envelope_fault(path: &str, fault: JsonFault, message: impl Into<String>) -> SignError {
    SignError::Envelope(ParseError::Json {
        what: "envelope",
        fault,
        path: path.into(),
        message: message.into(),
    })
}

/// Feeds every decoded byte to the signature checks (in the pass that checks them) and to
/// a SHA-256, and counts them against the length the signed header committed to.
struct Tee<R> {
    inner: R,
    checks: Option<Checks>,
    sha256: Sha256,
    count: u64,
    expected: u64,
    /// The first error of the source or the decoder: the parser reports it as a syntax
    /// error, but it is the envelope's (or the storage's), not the statement's.
    failed: Option<io::Error>,
}

impl<R> Tee<R> {
    /// The pass's result, once everything was read: its first error, or a length other than
    /// the one measured in the first pass, fails it.
    fn finish(self) -> Result<Seen, SignError> {
        if let Some(e) = self.failed {
            return Err(stream_error(e));
        }
        if self.count != self.expected {
            return Err(changed(&format!(
                "its payload decodes to {} bytes, {} were measured",
                self.count, self.expected
            )));
        }
        Ok(Seen {
            checks: self.checks,
            sha256: Sha256Digest::from_bytes(self.sha256.finalize().into()),
        })
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.inner.read(buf).and_then(|n| {
            if self.count + n as u64 > self.expected {
                Err(io::Error::other(
                    "the envelope changed while it was read: its payload grew",
                ))
            } else {
                Ok(n)
            }
        });
        let n = match got {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                return Err(copy);
            }
        };
        self.count += n as u64;
        if let Some(c) = &mut self.checks {
            c.update(&buf[..n]);
        }
        self.sha256.update(&buf[..n]);
        Ok(n)
    }
}

/// The payload's characters with JSON's escapes undone. The first pass checked them; a
/// character that is not base64 (the source changed since) fails the decoder.
struct Unescape<R> {
    inner: R,
}

impl<R: BufRead> Read for Unescape<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let Some(b) = next(&mut self.inner)? else {
                break;
            };
            buf[n] = if b == b'\\' {
                unescape(&mut self.inner)?.unwrap_or(b'!')
            } else {
                b
            };
            n += 1;
        }
        Ok(n)
    }
}

/// The next byte, not taken; an interrupted read is tried again.
fn next_peek<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    loop {
        match r.fill_buf() {
            Ok(buf) => return Ok(buf.first().copied()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The next byte, taken.
fn next<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    let b = next_peek(r)?;
    if b.is_some() {
        r.consume(1);
    }
    Ok(b)
}

/// The ASCII character an escape stands for, after its backslash; `None` for one that is
/// not ASCII (never base64).
fn unescape<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    let eof = || io::Error::from(io::ErrorKind::UnexpectedEof);
    Ok(match next(r)?.ok_or_else(eof)? {
        b'u' => {
            let mut code = 0u32;
            for _ in 0..4 {
                let d = next(r)?.ok_or_else(eof)?;
                code = code * 16 + (d as char).to_digit(16).ok_or_else(eof)?;
            }
            u8::try_from(code).ok().filter(u8::is_ascii)
        }
        b'b' => Some(8),
        b'f' => Some(12),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        c @ (b'"' | b'\\' | b'/') => Some(c),
        _ => None,
    })
}

/// What the first pass found.
#[derive(Debug)]
struct Layout {
    payload_type: String,
    signatures: Vec<Signature>,
    /// The payload string's bytes, between its quotes.
    payload: std::ops::Range<u64>,
    decoded_len: u64,
    /// Written in base64's URL-safe alphabet (which [`crate::dsse::Envelope`] also reads).
    url_safe: bool,
}

/// A JSON reader over the envelope that counts its position and stops at `max` bytes.
struct Scanner<R> {
    r: BufReader<R>,
    pos: u64,
    max: u64,
}

impl<R: Read + Seek> Scanner<R> {
    fn peek(&mut self) -> Result<Option<u8>, SignError> {
        next_peek(&mut self.r).map_err(read_error)
    }

    fn byte(&mut self) -> Result<u8, SignError> {
        let b = self
            .peek()?
            .ok_or_else(|| syntax(".", "the envelope ends early"))?;
        self.r.consume(1);
        self.pos += 1;
        if self.pos > self.max {
            // The whole size, for the message, where the source can tell it.
            let size = self.r.get_mut().seek(SeekFrom::End(0)).unwrap_or(self.pos);
            return Err(SignError::Envelope(ParseError::TooLarge {
                what: "envelope",
                size: usize::try_from(size).unwrap_or(usize::MAX),
                max: usize::try_from(self.max).unwrap_or(usize::MAX),
            }));
        }
        Ok(b)
    }

    /// Skips white space; the next byte, not taken.
    fn skip_ws(&mut self) -> Result<Option<u8>, SignError> {
        while let Some(b) = self.peek()? {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(Some(b));
            }
            self.byte()?;
        }
        Ok(None)
    }

    fn expect(&mut self, want: u8, path: &str) -> Result<(), SignError> {
        match self.skip_ws()? {
            Some(b) if b == want => self.byte().map(drop),
            Some(b) => Err(syntax(
                path,
                format!("expected `{}`, found `{}`", want as char, b as char),
            )),
            None => Err(syntax(path, "the envelope ends early")),
        }
    }

    /// Appends one JSON value's text to `out`, up to `max` bytes, checking only its
    /// nesting and strings (serde parses it after).
    fn value(&mut self, out: &mut Vec<u8>, max: usize, path: &str) -> Result<(), SignError> {
        let mut depth = 0usize;
        let mut in_string = false;
        self.skip_ws()?;
        loop {
            let b = self.byte()?;
            if out.len() >= max {
                return Err(invalid(path, format!("longer than {max} bytes")));
            }
            out.push(b);
            if in_string {
                match b {
                    b'\\' => out.push(self.byte()?),
                    b'"' => in_string = false,
                    _ => {}
                }
                if !in_string && depth == 0 {
                    return Ok(());
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| syntax(path, "unbalanced brackets"))?;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ if depth == 0 => {
                    // A scalar: it ends before a delimiter.
                    if matches!(
                        self.peek()?,
                        None | Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                    ) {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads the payload string after its opening quote: checks each character is base64
    /// and measures what it decodes to.
    fn payload(&mut self) -> Result<(u64, bool), SignError> {
        let bad = || invalid("payload", "not valid base64");
        let (mut chars, mut pad, mut std_only, mut url_only) = (0u64, 0u64, false, false);
        // The value of the last symbol before the padding: its unused bits must be zero, as
        // base64's decoder requires (checked here, so the second pass meets no surprise).
        let mut last = 0u8;
        loop {
            let c = match self.byte()? {
                b'"' => break,
                b'\\' => unescape(&mut ByteSource(self))
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => syntax("payload", "a broken escape"),
                        _ => read_error(e),
                    })?
                    .ok_or_else(bad)?,
                c if c < 0x20 => return Err(syntax("payload", "a control character in a string")),
                c => c,
            };
            last = match c {
                b'=' => {
                    pad += 1;
                    chars += 1;
                    continue;
                }
                _ if pad > 0 => return Err(bad()),
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => {
                    std_only |= c == b'+';
                    url_only |= c == b'-';
                    62
                }
                b'/' | b'_' => {
                    std_only |= c == b'/';
                    url_only |= c == b'_';
                    63
                }
                _ => return Err(bad()),
            };
            chars += 1;
        }
        let unused = match pad {
            0 => 0,
            1 => 0b11,
            2 => 0b1111,
            _ => return Err(bad()),
        };
        if chars % 4 != 0 || (std_only && url_only) || last & unused != 0 {
            return Err(bad());
        }
        Ok((chars / 4 * 3 - pad, url_only))
    }
}

/// The scanner as a [`BufRead`] for [`unescape`], counting what it takes.
struct ByteSource<'a, R>(&'a mut Scanner<R>);

impl<R: Read + Seek> Read for ByteSource<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.0.byte() {
            Ok(b) => {
                buf[0] = b;
                Ok(1)
            }
            Err(_) => Ok(0),
        }
    }
}

impl<R: Read + Seek> BufRead for ByteSource<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.r.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        for _ in 0..n {
            let _ = self.0.byte();
        }
    }
}

fn syntax(path: &str, message: impl Into<String>) -> SignError {
    envelope_fault(path, JsonFault::Syntax, message)
}

fn invalid(path: &str, message: impl Into<String>) -> SignError {
    envelope_fault(path, JsonFault::InvalidValue, message)
}

/// The first pass: the envelope's fields, the payload measured, not held.
fn scan<R: Read + Seek>(source: R, max: usize) -> Result<Layout, SignError> {
    let mut s = Scanner {
        r: BufReader::with_capacity(16 << 10, source),
        pos: 0,
        max: max as u64,
    };
    s.expect(b'{', ".")?;
    let (mut payload_type, mut signatures, mut payload) = (None, None, None);
    let mut first = true;
    loop {
        match s.skip_ws()? {
            Some(b'}') if first => {
                s.byte()?;
                break;
            }
            _ if first => {}
            Some(b',') => {
                s.byte()?;
            }
            Some(b'}') => {
                s.byte()?;
                break;
            }
            _ => return Err(syntax(".", "expected `,` or `}` after a field")),
        }
        first = false;
        let mut key = Vec::new();
        if s.skip_ws()? != Some(b'"') {
            return Err(syntax(".", "expected a field name"));
        }
        s.value(&mut key, 256, ".")?;
        let key: String = serde_json::from_slice(&key).map_err(|e| syntax(".", e.to_string()))?;
        s.expect(b':', &key)?;
        let duplicate = || syntax(&key, format!("duplicate field `{key}`"));
        match key.as_str() {
            "payload" => {
                s.expect(b'"', "payload")?;
                let start = s.pos;
                let (len, url) = s.payload()?;
                if payload.replace((start..s.pos - 1, len, url)).is_some() {
                    return Err(duplicate());
                }
            }
            "payloadType" | "signatures" => {
                let mut raw = Vec::new();
                // As large as the envelope may be: `verify` takes as many signatures (those
                // of unknown keys are ignored, but they are read).
                s.value(&mut raw, max, &key)?;
                let mut de = serde_json::Deserializer::from_slice(&raw);
                let fault = |e: serde_path_to_error::Error<serde_json::Error>| {
                    let p = e.path().to_string();
                    let path = match p.as_str() {
                        "." => key.clone(),
                        p if p.starts_with('[') => format!("{key}{p}"),
                        p => format!("{key}.{p}"),
                    };
                    invalid(&path, e.into_inner().to_string())
                };
                if key == "payloadType" {
                    let v: String = serde_path_to_error::deserialize(&mut de).map_err(fault)?;
                    if payload_type.replace(v).is_some() {
                        return Err(duplicate());
                    }
                } else {
                    let v: Vec<Signature> =
                        serde_path_to_error::deserialize(&mut de).map_err(fault)?;
                    if signatures.replace(v).is_some() {
                        return Err(duplicate());
                    }
                }
            }
            other => {
                return Err(envelope_fault(
                    other,
                    JsonFault::UnknownField,
                    format!(
                        "unknown field `{other}`, expected one of `payloadType`, `payload`, `signatures`"
                    ),
                ));
            }
        }
    }
    if s.skip_ws()?.is_some() {
        return Err(syntax(".", "trailing characters after the envelope"));
    }
    let missing =
        |f: &str| envelope_fault(f, JsonFault::MissingField, format!("missing field `{f}`"));
    // Missing fields in the order serde names them for `Envelope`.
    let payload_type = payload_type.ok_or_else(|| missing("payloadType"))?;
    let (payload, decoded_len, url_safe) = payload.ok_or_else(|| missing("payload"))?;
    Ok(Layout {
        payload_type,
        signatures: signatures.ok_or_else(|| missing("signatures"))?,
        payload,
        decoded_len,
        url_safe,
    })
}

#[cfg(test)]
mod tests;
