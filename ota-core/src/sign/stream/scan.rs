//! The first pass of [`super::verify_reader`]: the envelope's JSON object read field by
//! field. `payloadType` and `signatures` are parsed; the base64 `payload` is only checked and
//! measured (its byte range, the length it decodes to, its alphabet, its padding and the
//! unused bits of its last symbol), so the later passes meet no surprise unless the source
//! changed.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use super::{envelope_fault, next_peek, read_error, unescape};
use crate::dsse::Signature;
use crate::json::{JsonFault, ParseError};
use crate::sign::SignError;

/// What the first pass found.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) payload_type: String,
    pub(super) signatures: Vec<Signature>,
    /// The payload string's bytes, between its quotes.
    pub(super) payload: std::ops::Range<u64>,
    pub(super) decoded_len: u64,
    /// Written in base64's URL-safe alphabet (which [`crate::dsse::Envelope`] also reads).
    pub(super) url_safe: bool,
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
pub(super) fn scan<R: Read + Seek>(source: R, max: usize) -> Result<Layout, SignError> {
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
