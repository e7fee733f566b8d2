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
use crate::dsse::Pae;
use crate::json::{self, JsonFault, ParseError};
use crate::limits::Limits;
use crate::package::Package;
#[cfg(test)]
use crate::status::Status;
use crate::verified::{PackageId, Provenance, VerifiedPackage};

mod scan;

use scan::{Layout, scan};

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
    let mut checks = Checks::start(&layout.signatures, trusted, head.as_bytes());
    let mut signed = payload(&mut source, &layout, Some(&mut checks))?;
    let copied = io::copy(&mut signed, &mut io::sink());
    // The first error the tee kept comes first: it has the source's or decoder's own error.
    let signed = signed.into_inner().finish()?;
    copied.map_err(stream_error)?;
    let signed_by = checks.finish(threshold)?;

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
    if again != signed {
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
        PackageId::of_digest(&signed),
        signed_by,
        Provenance::DsseStreamed {
            payload_type: layout.payload_type,
            signatures: layout.signatures,
        },
    )
}

/// The decoded payload, read again from its range in `source`, through a [`Tee`].
fn payload<'a, 'c, R: Read + Seek>(
    source: &'a mut R,
    layout: &Layout,
    checks: Option<&'c mut Checks>,
) -> Result<BufReader<Tee<'c, impl Read + 'a>>, SignError> {
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
struct Tee<'c, R> {
    inner: R,
    checks: Option<&'c mut Checks>,
    sha256: Sha256,
    count: u64,
    expected: u64,
    /// The first error of the source or the decoder: the parser reports it as a syntax
    /// error, but it is the envelope's (or the storage's), not the statement's.
    failed: Option<io::Error>,
}

impl<R> Tee<'_, R> {
    /// The SHA-256 of what the pass read, once everything was read: its first error, or a
    /// length other than the one measured in the first pass, fails it.
    fn finish(self) -> Result<Sha256Digest, SignError> {
        if let Some(e) = self.failed {
            return Err(stream_error(e));
        }
        if self.count != self.expected {
            return Err(changed(&format!(
                "its payload decodes to {} bytes, {} were measured",
                self.count, self.expected
            )));
        }
        Ok(Sha256Digest::from_bytes(self.sha256.finalize().into()))
    }
}

impl<R: Read> Read for Tee<'_, R> {
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

#[cfg(test)]
mod tests;
