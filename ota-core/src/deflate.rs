//! Deflate in independent blocks, as pigz does, so that compression can use every core and
//! still make one ordinary gzip member that every decoder reads.
//!
//! The plaintext is cut into [`BLOCK`]-byte blocks by position (the last may be shorter).
//! Each block is compressed on its own as raw deflate at level 6, primed with the
//! [`WINDOW`] bytes of plaintext before it as the dictionary, and ended with a sync flush
//! (an empty stored block), so the compressed blocks concatenate into one deflate stream;
//! [`FINAL_BLOCK`] ends it.
//!
//! Every [`SEGMENT_BLOCKS`]th block is not primed: it starts a *segment* ([`SEGMENT`] bytes
//! of plaintext) that refers to nothing before it, so a device with several cores can
//! inflate segments apart (`crate::segment`) once it knows where each starts, which the
//! sealer records in the signed package. To every other decoder the stream is the same one
//! deflate stream. Because a block's bytes depend only on the block and the bytes
//! before it, the output is the same whatever the number of threads, and whichever thread
//! compressed which block: [`crate::seal::Sealer`] compresses them in turn on one thread, a
//! host may compress them on several (`ota-host`'s `seal::seal_parallel`) and hand them over
//! in order with [`crate::seal::Sealer::push_block`].
//!
//! The price against one deflate stream is the sync flush (5 bytes per 128 KiB), the
//! matches a block cannot make across a dictionary boundary, and the 32 KiB of context a
//! segment's first block goes without: well under 1 % of the output.

use flate2::{Compress, Compression, FlushCompress};

/// The plaintext in one block: 128 KiB, as pigz.
pub const BLOCK: usize = 128 * 1024;

/// The dictionary of a block: up to the last 32 KiB of plaintext before it (deflate's window).
pub const WINDOW: usize = 32 * 1024;

/// The deflate level: gzip's default.
pub const LEVEL: u32 = 6;

/// The end of the deflate stream: an empty final block with fixed codes.
pub const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// The blocks in a segment: 8.
pub const SEGMENT_BLOCKS: u64 = 8;

/// The plaintext in a segment (but the last, which may be shorter): 1 MiB.
pub const SEGMENT: u64 = BLOCK as u64 * SEGMENT_BLOCKS;

/// The dictionary of block `index` (from 0), `before` being the plaintext before it: none
/// when the block starts a segment, else the last [`WINDOW`] bytes of `before`.
pub fn dictionary(index: u64, before: &[u8]) -> &[u8] {
    if index.is_multiple_of(SEGMENT_BLOCKS) {
        return &[];
    }
    &before[before.len().saturating_sub(WINDOW)..]
}

/// Compresses one block of plaintext, primed with `dictionary` (empty for the first block),
/// appending raw deflate ending in a sync flush to `out`. An empty block appends nothing.
pub fn compress_block(dictionary: &[u8], block: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    if block.is_empty() {
        return Ok(());
    }
    let mut c = Compress::new(Compression::new(LEVEL), false);
    if !dictionary.is_empty() {
        // Raw deflate takes a dictionary before the first input; it cannot fail then.
        let _ = c.set_dictionary(dictionary);
    }
    let mut consumed = 0usize;
    loop {
        // Deflate's worst case is a few bytes per 16 KiB over the input; reserve generously.
        out.reserve((block.len() - consumed) + block.len() / 1000 + 64);
        let (before, written) = (c.total_in(), out.len());
        c.compress_vec(&block[consumed..], out, FlushCompress::Sync)
            .map_err(std::io::Error::other)?;
        consumed += usize::try_from(c.total_in() - before).map_err(std::io::Error::other)?;
        // Done when all the input is in and the flush left room to spare.
        if consumed == block.len() && out.len() < out.capacity() {
            return Ok(());
        }
        if c.total_in() == before && out.len() == written {
            return Err(std::io::Error::other("deflate made no progress"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text(n: usize) -> Vec<u8> {
        let words = [
            "model ", "weights ", "tensor ", "int8 ", "layer ", "conv2d ",
        ];
        let mut x = 7u64;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            v.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
        }
        v.truncate(n);
        v
    }

    /// Blocks joined into one raw deflate stream, the way the sealer joins them.
    fn blocks(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, b) in data.chunks(BLOCK).enumerate() {
            compress_block(dictionary(i as u64, &data[..i * BLOCK]), b, &mut out).unwrap();
        }
        out.extend_from_slice(&FINAL_BLOCK);
        out
    }

    #[test]
    fn blocks_joined_inflate_to_the_plaintext() {
        for n in [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 77] {
            let data = text(n);
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(blocks(&data).as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{n} bytes");
        }
    }

    #[test]
    fn the_dictionary_keeps_blocks_within_one_percent_of_one_stream() {
        let data = text(40 * BLOCK);
        let mut one = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(LEVEL));
        std::io::Write::write_all(&mut one, &data).unwrap();
        let one = one.finish().unwrap().len();
        let ours = blocks(&data).len();
        assert!(
            (ours as f64) < one as f64 * 1.01,
            "{ours} bytes in blocks against {one} in one stream"
        );
    }
}
