//! SHA-256 digests that exist only when well formed.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest. As text it is exactly 64 lowercase hexadecimal characters; any other
/// spelling is rejected, so two digests are equal exactly when their text is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

/// A string that is not a well-formed SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The text is not 64 characters long.
    #[error("a sha256 is 64 lowercase hex characters, found {len}")]
    WrongLength {
        /// The length found.
        len: usize,
    },
    /// A character is not a lowercase hexadecimal digit.
    #[error("a sha256 is 64 lowercase hex characters, found {found:?} at position {position}")]
    NotLowercaseHex {
        /// The zero-based position of the first bad character.
        position: usize,
        /// The character.
        found: char,
    },
}

impl Sha256Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(data).into())
    }

    /// A digest from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        self.hex().to_string()
    }

    /// The 64 lowercase hex characters, on the stack, built without allocating.
    pub(crate) fn hex(&self) -> Hex {
        let mut text = [0u8; 64];
        self.write_hex(&mut text);
        Hex(text)
    }

    /// Writes the 64 lowercase hex characters into `out`, a byte's two at a time.
    pub(crate) fn write_hex(&self, out: &mut [u8; 64]) {
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
    }
}

/// Each byte's two lowercase hex characters.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
        b += 1;
    }
    pairs
};

/// A digest's hex text (see [`Sha256Digest::hex`]).
pub(crate) struct Hex([u8; 64]);

impl std::ops::Deref for Hex {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII hex digits are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((position, found)) = s
            .char_indices()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError::NotLowercaseHex { position, found });
        }
        if s.len() != 64 {
            return Err(DigestError::WrongLength { len: s.len() });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| DigestError::WrongLength { len: s.len() })?;
        Ok(Sha256Digest(bytes))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl From<[u8; 32]> for Sha256Digest {
    fn from(bytes: [u8; 32]) -> Self {
        Sha256Digest(bytes)
    }
}

crate::version::serde_via_str!(Sha256Digest, hex);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_empty_and_abc() {
        // FIPS 180-2 examples.
        assert_eq!(
            Sha256Digest::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Sha256Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_only_lowercase_hex_of_64() {
        let good = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(good.parse::<Sha256Digest>().unwrap().to_hex(), good);
        assert_eq!(
            good[..63].parse::<Sha256Digest>(),
            Err(DigestError::WrongLength { len: 63 })
        );
        assert!(matches!(
            good.to_uppercase().parse::<Sha256Digest>(),
            Err(DigestError::NotLowercaseHex { position: 1, .. })
        ));
        assert_eq!(
            "".parse::<Sha256Digest>(),
            Err(DigestError::WrongLength { len: 0 })
        );
        assert_eq!(
            format!("{good}0").parse::<Sha256Digest>(),
            Err(DigestError::WrongLength { len: 65 })
        );
        assert!(matches!(
            "é".repeat(32).parse::<Sha256Digest>(),
            Err(DigestError::NotLowercaseHex { position: 0, .. })
        ));
    }
}
