//! Inflating a sealed artifact's gzip stream in segments, apart, so a device with several
//! cores can inflate on all of them.
//!
//! The sealer starts a *segment* every [`crate::deflate::SEGMENT`] bytes of plaintext: a block
//! compressed without a dictionary, so nothing in it refers to the plaintext before it
//! ([`crate::deflate`]), and it records where each segment starts in the gzip stream: the
//! signed `seal.segments` of the package ([`Segments`]). To any other decoder the stream is
//! one ordinary gzip member.
//!
//! Three sans-IO pieces, which a host runs on its threads (`ota_host::pipeline`):
//! - [`Segmenter`] cuts the decrypted gzip stream, fed in order, into [`Segment`]s at the
//!   signed offsets, and keeps the gzip trailer;
//! - [`inflate`] inflates one segment on its own: it must give exactly its plaintext size,
//!   consume exactly its bytes, and end (but the last) at a block boundary with no bits
//!   pending, which a final empty block appended then proves ([`END_PROBE`]); only the last
//!   may end the deflate stream;
//! - [`Joiner`] takes the segments' plaintext back in order, writes it out, and at the end
//!   checks gzip's CRC-32 and length over the joined plaintext and its declared size.
//!
//! The segments' plaintext joined is exactly what one decoder reading the whole stream makes
//! of it, so every device opens a package to the same bytes, whatever its number of cores,
//! and so does `gzip -d`: a decoder that starts a segment afresh is where one reading from
//! the start would be (at a block boundary, no bits pending: the probe above), and it has no
//! window, so a segment that refers to bytes before its start fails to inflate
//! ("distance too far back") instead of giving other bytes. Then, as in
//! [`crate::open::Inflate`], a declared plaintext digest is not recomputed (it is when none
//! was declared): the signed chunk table fixes every byte of the gzip stream, and gzip's
//! CRC-32 and length confirm that the joined output is what was compressed. Recomputing it
//! would cost a SHA-256 of every plaintext byte on the one thread that joins, measured as
//! the bottleneck of the whole path (`benches/benches/device.rs`).
//!
//! Memory is a few segments, whatever the artifact's size: a segment's compressed bytes are
//! bounded by [`max_compressed`], and the host bounds how many are in flight.

use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Sha256Digest;
use crate::open::{Expected, Opened};
use crate::seal::SealError;

/// The gzip header the sealer writes, and every segmented stream starts with: no optional
/// fields, mtime 0, OS 255 (unknown), so equal inputs give equal bytes.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// The largest segment a package may declare: 4 MiB of plaintext (a device holds a few).
pub const MAX_SEGMENT: u64 = 4 << 20;

/// The smallest: 64 KiB.
pub const MIN_SEGMENT: u64 = 64 << 10;

/// `seal.segments` of a signed package: where each segment of the gzip stream starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segments {
    /// The plaintext in every segment but the last (which may be shorter): 1 MiB as sealed.
    pub plaintext_size: u64,
    /// Where each segment after the first starts, in bytes from the start of the gzip stream
    /// (the decrypted artifact, its 10-byte header included), increasing. The first starts
    /// at 0, with the header.
    pub offsets: Vec<u64>,
}

/// The most compressed bytes a segment of `plaintext` bytes may take: deflate's worst case
/// (stored blocks, 5 bytes per 16 KiB and a sync flush per block) with room to spare, plus
/// the gzip header and the end of the stream.
pub fn max_compressed(plaintext: u64) -> u64 {
    plaintext
        .saturating_add(plaintext / 64)
        .saturating_add(1024)
}

impl Segments {
    /// Why these segments cannot be those of `plaintext_size` bytes of plaintext sealed into
    /// an artifact of `artifact_size` bytes, if they cannot: the member at fault
    /// (`plaintext_size` or `offsets`) and what is wrong.
    pub fn fault(&self, plaintext_size: u64, artifact_size: u64) -> Option<(&'static str, String)> {
        let seg = self.plaintext_size;
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&seg) {
            return Some((
                "plaintext_size",
                format!("a segment holds {MIN_SEGMENT} to {MAX_SEGMENT} bytes, found {seg}"),
            ));
        }
        let count = plaintext_size.div_ceil(seg).max(1);
        if self.offsets.len() as u64 != count - 1 {
            return Some((
                "offsets",
                format!(
                    "{plaintext_size} bytes of plaintext in segments of {seg} make {count}, \
                     so {} offsets; found {}",
                    count - 1,
                    self.offsets.len()
                ),
            ));
        }
        // The gzip stream is the artifact less its 16-byte IV and at least a byte of padding.
        let stream = artifact_size.saturating_sub(17);
        let mut start = 0u64;
        for (i, &offset) in self.offsets.iter().enumerate() {
            if offset <= start || offset - start > max_compressed(seg) || offset >= stream {
                return Some((
                    "offsets",
                    format!(
                        "offsets[{i}] is {offset}: each offset follows the one before by 1 to \
                         {} bytes and lies inside the {stream}-byte gzip stream",
                        max_compressed(seg)
                    ),
                ));
            }
            start = offset;
        }
        None
    }
}

/// One segment of the gzip stream, cut by [`Segmenter`], for [`inflate`].
#[derive(Debug)]
pub struct Segment {
    /// Its number, from 0.
    pub index: usize,
    /// Its compressed bytes (for segment 0, the gzip header first).
    pub data: Vec<u8>,
    /// Where its plaintext starts in the whole plaintext.
    pub start: u64,
    /// The plaintext it must inflate to, in bytes: exactly, but for the last, which may
    /// give less (the whole is then shorter than declared, which [`Joiner::finish`] says).
    pub plaintext: usize,
    /// Whether it is the last, which ends the deflate stream.
    pub last: bool,
}

/// Cuts a segmented gzip stream, fed in order, into its [`Segment`]s. It does no I/O and
/// holds one segment.
pub struct Segmenter {
    offsets: Vec<u64>,
    segment: u64,
    plaintext_size: u64,
    /// Bytes of the stream seen so far.
    at: u64,
    index: usize,
    buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
}

impl Segmenter {
    /// A segmenter for a stream with these segments and plaintext size, checked first with
    /// [`Segments::fault`]: segments that are not make it fail, never panic, but a segment
    /// may then be as large as its claimed plaintext.
    pub fn new(segments: &Segments, plaintext_size: u64) -> Self {
        Segmenter {
            offsets: segments.offsets.clone(),
            segment: segments.plaintext_size,
            plaintext_size,
            at: 0,
            index: 0,
            buf: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Gives back a segment's buffer to be filled again, so a steady stream allocates none.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 4 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// The plaintext of segment `index`.
    fn plaintext(&self, index: usize) -> usize {
        let start = self.segment.saturating_mul(index as u64);
        let n = self.plaintext_size.saturating_sub(start).min(self.segment);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Takes the next bytes of the gzip stream, passing each segment to `emit` as soon as
    /// the next one starts; the first error `emit` returns stops it and is returned.
    pub fn push(
        &mut self,
        mut gz: &[u8],
        mut emit: impl FnMut(Segment) -> Result<(), SealError>,
    ) -> Result<(), SealError> {
        while !gz.is_empty() {
            let end = self.offsets.get(self.index).copied().unwrap_or(u64::MAX);
            if end < self.at {
                // Offsets that do not increase (unchecked segments): nothing to cut.
                return Err(SealError::DecryptionFailed);
            }
            let take = usize::try_from(end - self.at).map_or(gz.len(), |n| n.min(gz.len()));
            if self.buf.is_empty() && self.buf.capacity() == 0 {
                self.buf = self.spare.pop().unwrap_or_default();
            }
            self.buf.extend_from_slice(&gz[..take]);
            self.at += take as u64;
            gz = &gz[take..];
            if self.buf.len() as u64 > max_compressed(self.segment).saturating_add(8) {
                // Only the last segment's end is not signed; its bytes are bounded too.
                return Err(SealError::DecryptionFailed);
            }
            if self.at == end {
                let segment = Segment {
                    index: self.index,
                    start: self.segment.saturating_mul(self.index as u64),
                    data: std::mem::take(&mut self.buf),
                    plaintext: self.plaintext(self.index),
                    last: false,
                };
                self.index += 1;
                emit(segment)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: the last segment, and gzip's trailer (CRC-32 and length) that
    /// followed it.
    pub fn finish(mut self) -> Result<(Segment, [u8; 8]), SealError> {
        if self.index != self.offsets.len() || self.buf.len() < 8 {
            return Err(SealError::DecryptionFailed);
        }
        let mut trailer = [0u8; 8];
        trailer.copy_from_slice(&self.buf[self.buf.len() - 8..]);
        self.buf.truncate(self.buf.len() - 8);
        let segment = Segment {
            index: self.index,
            start: self.segment.saturating_mul(self.index as u64),
            plaintext: self.plaintext(self.index),
            data: self.buf,
            last: true,
        };
        Ok((segment, trailer))
    }
}

/// What [`inflate`] appends to a segment but the last to prove it ended at a block boundary
/// with no bits pending: a final empty block with fixed codes (header bits 1, 1, 0, then the
/// 7-bit end of block). Only from that state do these 16 bits end the stream with no output:
/// inside a stored block they are data, inside a Huffman block they are symbols, and after
/// pending bits the final header cannot start at the probe's first bit, the only place its
/// bits spell one.
pub const END_PROBE: [u8; 2] = [0x03, 0x00];

/// How much the output grows at a time, so a segment that claims more plaintext than it has
/// reserves no more than it gives.
const GROW: usize = 256 << 10;

/// Inflates one segment on its own into `out` (cleared first): exactly its plaintext (the
/// last: at most), from exactly its bytes, a segment but the last ending at a block boundary
/// ([`END_PROBE`]); only the last segment may end the deflate stream, and it must. A segment
/// that does not is [`SealError::DecryptionFailed`], as for a stream that does not inflate;
/// a last segment that gives more than its plaintext is [`SealError::PlaintextTooLarge`],
/// bounded where its plaintext would end (a decompression bomb).
pub fn inflate(segment: &Segment, out: &mut Vec<u8>) -> Result<(), SealError> {
    let input = if segment.index == 0 {
        segment
            .data
            .strip_prefix(&GZIP_HEADER[..])
            .ok_or(SealError::DecryptionFailed)?
    } else {
        &segment.data[..]
    };
    out.clear();
    // Room for one byte more than declared, to see a segment that gives too much.
    let room = segment.plaintext.saturating_add(1);
    let mut d = flate2::Decompress::new(false);
    loop {
        if out.len() == out.capacity() {
            out.reserve_exact((room - out.len()).min(GROW));
        }
        let consumed = d.total_in() as usize;
        let written = out.len();
        let status = d
            .decompress_vec(&input[consumed..], out, flate2::FlushDecompress::None)
            .map_err(|_| SealError::DecryptionFailed)?;
        if out.len() > segment.plaintext {
            return Err(match segment.last {
                true => SealError::PlaintextTooLarge {
                    max: segment.start.saturating_add(segment.plaintext as u64),
                },
                false => SealError::DecryptionFailed,
            });
        }
        let ended = status == flate2::Status::StreamEnd;
        if ended || (d.total_in() as usize == consumed && out.len() == written) {
            let size = out.len() == segment.plaintext || (segment.last && ended);
            let whole = d.total_in() as usize == input.len() && size;
            return if whole && ended == segment.last && (ended || at_block_end(&mut d, out)) {
                Ok(())
            } else {
                Err(SealError::DecryptionFailed)
            };
        }
    }
}

/// Whether `d`, having taken a whole segment, stopped at a block boundary with no bits
/// pending: [`END_PROBE`] then ends its stream, consumed whole, with no output.
fn at_block_end(d: &mut flate2::Decompress, out: &mut Vec<u8>) -> bool {
    let (before_in, before_out) = (d.total_in(), out.len());
    out.reserve(1);
    let ended = d.decompress_vec(&END_PROBE, out, flate2::FlushDecompress::Finish);
    let taken = d.total_in() - before_in;
    let grew = out.len() != before_out;
    out.truncate(before_out);
    matches!(ended, Ok(flate2::Status::StreamEnd)) && taken == END_PROBE.len() as u64 && !grew
}

/// Takes segments' plaintext back in order and writes it out, checking at the end what
/// [`crate::open::Inflate`] checks: gzip's CRC-32 and length, the declared size, and the
/// plaintext's digest when one was not declared (it is then computed here).
pub struct Joiner<W: Write> {
    out: W,
    next: usize,
    written: u64,
    crc: crc32fast::Hasher,
    /// The plaintext's hash, when its digest was not declared.
    sha: Option<Sha256>,
    max: u64,
    plaintext_size: Option<u64>,
    plaintext_sha256: Option<Sha256Digest>,
}

impl<W: Write> Joiner<W> {
    /// A joiner for an artifact that must match `expected`, writing to `out`.
    pub fn new(expected: &Expected, out: W) -> Self {
        Joiner {
            out,
            next: 0,
            written: 0,
            crc: crc32fast::Hasher::new(),
            sha: expected.plaintext_sha256.is_none().then(Sha256::new),
            max: expected.plaintext_bound(),
            plaintext_size: expected.plaintext_size,
            plaintext_sha256: expected.plaintext_sha256,
        }
    }

    /// The index of the segment whose plaintext comes next.
    pub fn next(&self) -> usize {
        self.next
    }

    /// Writes the plaintext of segment `index`, which must be the next.
    pub fn write(&mut self, index: usize, plain: &[u8]) -> Result<(), SealError> {
        if index != self.next {
            return Err(SealError::OutOfOrder {
                expected: self.next as u64,
                found: index as u64,
            });
        }
        if self.written + plain.len() as u64 > self.max {
            return Err(SealError::PlaintextTooLarge { max: self.max });
        }
        self.out.write_all(plain)?;
        self.crc.update(plain);
        if let Some(sha) = &mut self.sha {
            sha.update(plain);
        }
        self.written += plain.len() as u64;
        self.next += 1;
        Ok(())
    }

    /// Checks gzip's `trailer` and the plaintext's size and digest, and returns them with the
    /// writer.
    pub fn finish(self, trailer: [u8; 8]) -> Result<(Opened, W), SealError> {
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != self.crc.finalize() || isize != (self.written & 0xffff_ffff) as u32 {
            return Err(SealError::DecryptionFailed);
        }
        let opened = crate::open::conclude(
            self.written,
            self.sha,
            self.plaintext_size,
            self.plaintext_sha256,
        )?;
        Ok((opened, self.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate;
    use crate::seal::tests::{data, key};
    use crate::seal::{Sealed, seal_bytes};

    /// Sealed bytes, what was sealed, and the decrypted gzip stream.
    fn sealed(n: usize) -> (Vec<u8>, Sealed, Vec<u8>) {
        let plain = compressible(n);
        let (bytes, sealed) = seal_bytes(&key(), [3; 16], &plain).unwrap();
        let mut gz = Vec::new();
        let mut d = crate::cbc_stream::CbcDecrypt::new(&key(), [3; 16]);
        d.update(&bytes[16..], |p| gz.extend_from_slice(p));
        gz.extend_from_slice(&d.finish().unwrap());
        (bytes, sealed, gz)
    }

    /// Half random, half repeated: it compresses, and spans segments.
    fn compressible(n: usize) -> Vec<u8> {
        let noise = data(n / 2 + 1);
        let mut v = Vec::with_capacity(n);
        for (i, b) in noise.iter().enumerate() {
            v.push(*b);
            v.push((i % 7) as u8);
        }
        v.truncate(n);
        v
    }

    /// Cuts `gz` in pieces of `piece` bytes, inflates every segment apart and joins them.
    fn open_apart(gz: &[u8], sealed: &Sealed, piece: usize) -> Result<Vec<u8>, SealError> {
        open_apart_with(gz, sealed, &sealed.info().segments.unwrap(), piece)
    }

    #[test]
    fn segments_inflated_apart_join_into_the_plaintext() {
        let seg = deflate::SEGMENT as usize;
        for n in [seg + 1, 2 * seg, 3 * seg + 12_345] {
            let (_, sealed, gz) = sealed(n);
            let info = sealed.info().segments.unwrap();
            assert_eq!(info.plaintext_size, deflate::SEGMENT);
            assert_eq!(info.offsets.len(), n.div_ceil(seg) - 1, "{n} bytes");
            assert_eq!(info.fault(n as u64, sealed.size_bytes), None);
            for piece in [1000, 65536, gz.len()] {
                assert_eq!(open_apart(&gz, &sealed, piece).unwrap(), compressible(n));
            }
        }
    }

    #[test]
    fn one_segment_declares_none() {
        let (_, sealed, _) = sealed(deflate::SEGMENT as usize);
        assert_eq!(sealed.info().segments, None);
    }

    #[test]
    fn a_wrong_offset_does_not_open() {
        let (_, sealed, gz) = sealed(3 * deflate::SEGMENT as usize);
        for shift in [-1i64, 1, 5] {
            let mut segments = sealed.info().segments.unwrap();
            segments.offsets[1] = (segments.offsets[1] as i64 + shift) as u64;
            let r = open_apart_with(&gz, &sealed, &segments, 65536);
            assert!(r.is_err(), "offset moved by {shift} opened");
        }
    }

    fn open_apart_with(
        gz: &[u8],
        sealed: &Sealed,
        segments: &Segments,
        piece: usize,
    ) -> Result<Vec<u8>, SealError> {
        let mut cut = Segmenter::new(segments, sealed.plaintext_size);
        let mut all = Vec::new();
        for p in gz.chunks(piece) {
            cut.push(p, |s| {
                all.push(s);
                Ok(())
            })?;
        }
        let (last, trailer) = cut.finish()?;
        all.push(last);
        let mut join = Joiner::new(&sealed.expected(), Vec::new());
        let mut out = Vec::new();
        for s in &all {
            inflate(s, &mut out)?;
            join.write(s.index, &out)?;
        }
        Ok(join.finish(trailer)?.1)
    }

    #[test]
    fn the_plaintext_is_hashed_when_its_digest_was_not_declared() {
        let (_, sealed, gz) = sealed(2 * deflate::SEGMENT as usize + 1);
        let segments = sealed.info().segments.unwrap();
        let mut cut = Segmenter::new(&segments, sealed.plaintext_size);
        let mut all = Vec::new();
        cut.push(&gz, |s| {
            all.push(s);
            Ok(())
        })
        .unwrap();
        let (last, trailer) = cut.finish().unwrap();
        all.push(last);
        let mut undeclared = sealed.expected();
        undeclared.plaintext_sha256 = None;
        let mut join = Joiner::new(&undeclared, Vec::new());
        let mut out = Vec::new();
        for s in &all {
            inflate(s, &mut out).unwrap();
            join.write(s.index, &out).unwrap();
        }
        let (opened, plain) = join.finish(trailer).unwrap();
        assert_eq!(opened.plaintext_sha256, Sha256Digest::of(&plain));
        assert_eq!(opened.plaintext_sha256, sealed.plaintext_sha256);
    }

    #[test]
    fn a_trailer_that_does_not_match_the_joined_plaintext_is_refused() {
        let (_, sealed, gz) = sealed(2 * deflate::SEGMENT as usize + 1);
        let n = gz.len();
        // A CRC-32 byte, then a length byte.
        for at in [n - 8, n - 1] {
            let mut bad = gz.clone();
            bad[at] ^= 1;
            assert_eq!(
                open_apart(&bad, &sealed, 65536).unwrap_err(),
                SealError::DecryptionFailed,
                "byte {at} of {n}"
            );
        }
    }

    #[test]
    fn a_segment_with_too_much_or_too_little_is_refused() {
        let (_, sealed, gz) = sealed(2 * deflate::SEGMENT as usize + 1);
        let segments = sealed.info().segments.unwrap();
        let mut cut = Segmenter::new(&segments, sealed.plaintext_size);
        let mut first = None;
        cut.push(&gz, |s| {
            first.get_or_insert(s);
            Ok(())
        })
        .unwrap();
        let mut first = first.unwrap();
        let mut out = Vec::new();
        inflate(&first, &mut out).unwrap();
        assert_eq!(out.len(), deflate::SEGMENT as usize);
        for plaintext in [first.plaintext - 1, first.plaintext + 1] {
            let s = Segment { plaintext, ..first };
            assert_eq!(inflate(&s, &mut out), Err(SealError::DecryptionFailed));
            first = Segment {
                plaintext: deflate::SEGMENT as usize,
                ..s
            };
        }
        // The first segment cannot claim to be the last, nor lose its header.
        first.last = true;
        assert_eq!(inflate(&first, &mut out), Err(SealError::DecryptionFailed));
        first.last = false;
        first.data.remove(0);
        assert_eq!(inflate(&first, &mut out), Err(SealError::DecryptionFailed));
    }

    #[test]
    fn unchecked_segments_fail_without_panicking() {
        let (_, sealed, gz) = sealed(2 * deflate::SEGMENT as usize + 1);
        for offsets in [vec![100, 50], vec![0, 0], vec![5, u64::MAX]] {
            let segments = Segments {
                plaintext_size: deflate::SEGMENT,
                offsets,
            };
            let r = open_apart_with(&gz, &sealed, &segments, 65536);
            assert!(r.is_err(), "{:?}", segments.offsets);
        }
        // One segment as large as the whole stream is the stream inflated in one piece.
        let whole = Segments {
            plaintext_size: u64::MAX,
            offsets: vec![],
        };
        assert_eq!(
            open_apart_with(&gz, &sealed, &whole, 65536).unwrap(),
            compressible(2 * deflate::SEGMENT as usize + 1)
        );
    }

    #[test]
    fn a_segment_that_ends_inside_a_block_is_refused() {
        // A stored block of 8 bytes whose first 4, the segment's end, look like a sync
        // flush: alone it gives exactly 4 bytes from exactly its input, but a decoder reading
        // on would take the next 4 bytes as data, not as the next segment's first block.
        let mut data = GZIP_HEADER.to_vec();
        data.extend_from_slice(&[0x00, 8, 0, !8, 0xff, 0, 0, 0xff, 0xff]);
        let s = Segment {
            index: 0,
            start: 0,
            data,
            plaintext: 4,
            last: false,
        };
        assert_eq!(
            inflate(&s, &mut Vec::new()),
            Err(SealError::DecryptionFailed)
        );
        // The same 4 bytes in a stored block of their own, then a sync flush: a boundary.
        let mut data = GZIP_HEADER.to_vec();
        data.extend_from_slice(&[
            0x00, 4, 0, !4, 0xff, 0, 0, 0xff, 0xff, 0x00, 0, 0, 0xff, 0xff,
        ]);
        let mut out = Vec::new();
        inflate(&Segment { data, ..s }, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0xff, 0xff]);
    }

    #[test]
    fn a_segment_claiming_more_than_it_has_reserves_only_what_it_gives() {
        let (_, sealed, gz) = sealed(2 * deflate::SEGMENT as usize + 1);
        let segments = sealed.info().segments.unwrap();
        let mut cut = Segmenter::new(&segments, sealed.plaintext_size);
        cut.push(&gz, |_| Ok(())).unwrap();
        let (mut last, _) = cut.finish().unwrap();
        last.plaintext = usize::MAX;
        let mut out = Vec::new();
        inflate(&last, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out.capacity() <= GROW, "{}", out.capacity());
    }

    #[test]
    fn segments_out_of_order_are_refused() {
        let (_, sealed, _) = sealed(2 * deflate::SEGMENT as usize + 1);
        let mut join = Joiner::new(&sealed.expected(), Vec::new());
        assert_eq!(
            join.write(1, b"x"),
            Err(SealError::OutOfOrder {
                expected: 0,
                found: 1
            })
        );
    }

    #[test]
    fn malformed_segments_name_their_member() {
        let seg = deflate::SEGMENT;
        let ok = Segments {
            plaintext_size: seg,
            offsets: vec![100, 200_000],
        };
        assert_eq!(ok.fault(3 * seg, 1 << 22), None);
        let fault = |s: &Segments, plain: u64| s.fault(plain, 1 << 22).map(|(m, _)| m);
        let mut s = ok.clone();
        s.plaintext_size = 1;
        assert_eq!(fault(&s, 3 * seg), Some("plaintext_size"));
        assert_eq!(fault(&ok, 2 * seg), Some("offsets"));
        for offsets in [
            vec![0, 100],
            vec![100, 100],
            vec![100, 50],
            vec![100, 1 << 22],
        ] {
            s = Segments {
                plaintext_size: seg,
                offsets,
            };
            assert_eq!(fault(&s, 3 * seg), Some("offsets"), "{:?}", s.offsets);
        }
        s.offsets = vec![100, 100 + max_compressed(seg) + 1];
        assert_eq!(fault(&s, 3 * seg), Some("offsets"));
    }
}
