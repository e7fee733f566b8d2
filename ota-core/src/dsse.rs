//! DSSE envelopes: `{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"
//! (base64)}]}`, each signature over the pre-authentication encoding
//! `"DSSEv1" SP len(type) SP type SP len(payload) SP payload` ([`pae`]).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

use crate::json::{self, ParseError};
use crate::limits::Limits;

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload's type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64 in JSON.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's key id (a hint; only trusted ids count).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64 in JSON.
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
}

mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .or_else(|_| URL_SAFE.decode(s.as_bytes()))
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

impl Envelope {
    /// Parses an envelope (its size bounded by [`Limits::max_envelope_bytes`]).
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("envelope", bytes, limits.max_envelope_bytes())
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// The key ids the envelope claims, as written.
    pub fn claimed_keyids(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.keyid.as_str()).collect()
    }
}

impl json::Validate for Envelope {
    fn validate_at(&self, _: &str, _: &mut Vec<json::Fault>) {}
}

/// DSSE's pre-authentication encoding of a payload, as one buffer (for signing; a verifier
/// hashes [`Pae::parts`] where they lie).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    Pae::new(payload_type, payload).parts().concat()
}

/// DSSE's pre-authentication encoding as the two pieces it is made of: the header
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP`, then the payload, not copied.
#[derive(Debug)]
pub struct Pae<'a> {
    head: String,
    payload: &'a [u8],
}

impl<'a> Pae<'a> {
    /// The encoding of `payload` of type `payload_type`.
    pub fn new(payload_type: &str, payload: &'a [u8]) -> Self {
        Pae {
            head: Self::head(payload_type, payload.len() as u64),
            payload,
        }
    }

    /// The header alone, for a payload of `payload_len` bytes that is not at hand (streamed
    /// past the verifier).
    pub fn head(payload_type: &str, payload_len: u64) -> String {
        format!(
            "DSSEv1 {} {payload_type} {payload_len} ",
            payload_type.len()
        )
    }

    /// The header, then the payload: the signed message is the two one after the other.
    pub fn parts(&self) -> [&[u8]; 2] {
        [self.head.as_bytes(), self.payload]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
