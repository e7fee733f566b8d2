//! Ed25519 signing keys on a PKCS#11 token (an HSM, a smart card, SoftHSM2), named by a
//! PKCS#11 URI (RFC 7512) as cosign and rauc take them:
//!
//! ```text
//! pkcs11:token=ota;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
//! ```
//!
//! `token` is the token's label (default: the first token present) and `object` the key's
//! label (required). The module comes from `module-path` or `$OTA_PKCS11_MODULE`, the user
//! PIN from `pin-value` or `$OTA_PKCS11_PIN`. The private key never leaves the token: it
//! signs with `CKM_EDDSA` (pure Ed25519), and the public key is read from the public key
//! object of the same label (`CKA_EC_POINT`).

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ota_core::sign::PublicKey;

use crate::out::CliError;

/// The DER of the Ed25519 curve's object identifier (1.3.101.112), for `CKA_EC_PARAMS`.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// What a PKCS#11 URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The token's label, if given.
    pub token: Option<String>,
    /// The key objects' label.
    pub object: String,
    /// The PKCS#11 module (shared library).
    pub module: String,
    /// The user PIN.
    pub pin: String,
}

/// Whether a `--key` argument is a PKCS#11 URI.
pub fn is_uri(arg: &str) -> bool {
    arg.starts_with("pkcs11:")
}

impl Uri {
    /// Parses a URI; the module and PIN fall back to `$OTA_PKCS11_MODULE` and `$OTA_PKCS11_PIN`.
    pub fn parse(text: &str) -> Result<Uri, CliError> {
        let bad = |m: String| CliError::usage(format!("--key {}: {m}", redact(text)));
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("a PKCS#11 URI starts with pkcs11:".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (mut token, mut object, mut module, mut pin) = (None, None, None, None);
        for (attrs, sep) in [(path, ';'), (query, '&')] {
            for attr in attrs.split(sep).filter(|a| !a.is_empty()) {
                let (k, v) = attr
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{attr}: an attribute is name=value")))?;
                let v = decode(v).ok_or_else(|| bad(format!("{k}: bad percent-encoding")))?;
                match k {
                    "token" => token = Some(v),
                    "object" => object = Some(v),
                    "module-path" => module = Some(v),
                    "pin-value" => pin = Some(v),
                    // Other standard attributes (type, id, manufacturer...) narrow nothing here.
                    _ => {}
                }
            }
        }
        Ok(Uri {
            token,
            object: object.ok_or_else(|| bad("object=LABEL names the key".into()))?,
            module: module
                .or_else(|| std::env::var("OTA_PKCS11_MODULE").ok())
                .ok_or_else(|| bad("give module-path=... or $OTA_PKCS11_MODULE".into()))?,
            pin: pin
                .or_else(|| std::env::var("OTA_PKCS11_PIN").ok())
                .ok_or_else(|| bad("give pin-value=... or $OTA_PKCS11_PIN".into()))?,
        })
    }
}

/// The URI without its PIN, for messages.
pub(crate) fn redact(text: &str) -> String {
    match text.find("pin-value=") {
        Some(i) => {
            let end = text[i..].find('&').map_or(text.len(), |e| i + e);
            format!("{}pin-value=***{}", &text[..i], &text[end..])
        }
        None => text.to_string(),
    }
}

/// Percent-decoding (RFC 3986).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A signing key on a token, with a logged-in session.
pub struct TokenKey {
    session: Session,
    private: ObjectHandle,
    public: PublicKey,
    /// The key's label, for messages.
    pub label: String,
}

fn err(uri: &Uri, what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::usage(format!(
        "pkcs11 {} (token {}): {what}: {e}",
        uri.module,
        uri.token.as_deref().unwrap_or("any")
    ))
}

/// Loads the module, finds the token, opens a session and logs in as the user.
fn session(uri: &Uri, read_write: bool) -> Result<Session, CliError> {
    let ctx = Pkcs11::new(&uri.module).map_err(|e| err(uri, "loading the module", e))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| err(uri, "initializing", e))?;
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| err(uri, "listing slots", e))?;
    let slot: Slot = match &uri.token {
        None => *slots
            .first()
            .ok_or_else(|| err(uri, "finding a token", "no token is present"))?,
        Some(label) => *slots
            .iter()
            .find(|s| {
                ctx.get_token_info(**s)
                    .is_ok_and(|i| i.label().trim_end() == label)
            })
            .ok_or_else(|| err(uri, "finding the token", "no token has this label"))?,
    };
    let session = if read_write {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(|e| err(uri, "opening a session", e))?;
    session
        .login(UserType::User, Some(&AuthPin::new(uri.pin.clone().into())))
        .map_err(|e| err(uri, "logging in", e))?;
    Ok(session)
}

fn find(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, cryptoki::error::Error> {
    session.find_objects(&[
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
}

/// The public key of an Ed25519 public key object: `CKA_EC_POINT` is the DER OCTET STRING of
/// the 32 bytes (as PKCS#11 3.0 says), or the bare 32 bytes (as some tokens give).
fn public_key(session: &Session, uri: &Uri, object: ObjectHandle) -> Result<PublicKey, CliError> {
    let attrs = session
        .get_attributes(object, &[AttributeType::EcPoint])
        .map_err(|e| err(uri, "reading CKA_EC_POINT", e))?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| err(uri, "reading CKA_EC_POINT", "absent"))?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        p if p.len() == 32 => p,
        p => {
            return Err(err(
                uri,
                "reading CKA_EC_POINT",
                format!("{} bytes, not an Ed25519 point", p.len()),
            ));
        }
    };
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| err(uri, "reading CKA_EC_POINT", "length"))?;
    PublicKey::from_bytes(&bytes).map_err(|e| err(uri, "reading CKA_EC_POINT", e))
}

impl TokenKey {
    /// Opens the key a URI names.
    pub fn open(text: &str) -> Result<TokenKey, CliError> {
        let uri = Uri::parse(text)?;
        let session = session(&uri, false)?;
        let one = |class, what| -> Result<ObjectHandle, CliError> {
            let found = find(&session, class, &uri.object).map_err(|e| err(&uri, what, e))?;
            match found.as_slice() {
                [h] => Ok(*h),
                [] => Err(err(
                    &uri,
                    what,
                    format!("no Ed25519 key labelled {}", uri.object),
                )),
                _ => Err(err(
                    &uri,
                    what,
                    format!("{} keys are labelled {}", found.len(), uri.object),
                )),
            }
        };
        let private = one(ObjectClass::PRIVATE_KEY, "finding the private key")?;
        let public_object = one(ObjectClass::PUBLIC_KEY, "finding the public key")?;
        let public = public_key(&session, &uri, public_object)?;
        Ok(TokenKey {
            session,
            private,
            public,
            label: uri.object,
        })
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `message` on the token (pure Ed25519).
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], CliError> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let sig = self
            .session
            .sign(&mechanism, self.private, message)
            .map_err(|e| CliError::usage(format!("pkcs11 key {}: signing: {e}", self.label)))?;
        let sig: [u8; 64] = sig.try_into().map_err(|s: Vec<u8>| {
            CliError::usage(format!(
                "pkcs11 key {}: a {}-byte signature, not Ed25519's 64",
                self.label,
                s.len()
            ))
        })?;
        // A token that signs with another key or scheme is caught here, not by the devices.
        if !self.public.verify(message, &sig) {
            return Err(CliError::usage(format!(
                "pkcs11 key {}: the token's signature does not verify with its public key",
                self.label
            )));
        }
        Ok(sig)
    }
}

/// Generates an Ed25519 key pair on the token (private key sensitive and not extractable);
/// refuses a label already in use.
pub fn generate(text: &str) -> Result<PublicKey, CliError> {
    let uri = Uri::parse(text)?;
    let session = session(&uri, true)?;
    let existing = find(&session, ObjectClass::PRIVATE_KEY, &uri.object)
        .map_err(|e| err(&uri, "looking for the label", e))?;
    if !existing.is_empty() {
        return Err(err(
            &uri,
            "generating",
            format!("a key labelled {} is already there", uri.object),
        ));
    }
    let label = Attribute::Label(uri.object.as_bytes().to_vec());
    let (public, _) = session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(ED25519_OID.to_vec()),
                label.clone(),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                label,
            ],
        )
        .map_err(|e| err(&uri, "generating an Ed25519 key pair", e))?;
    public_key(&session, &uri, public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_names_token_object_module_and_pin() {
        let u = Uri::parse(
            "pkcs11:token=my%20token;object=release?module-path=/lib/x.so&pin-value=12%3D4",
        )
        .expect("uri");
        assert_eq!(
            u,
            Uri {
                token: Some("my token".into()),
                object: "release".into(),
                module: "/lib/x.so".into(),
                pin: "12=4".into()
            }
        );
    }

    #[test]
    fn a_uri_without_an_object_is_refused_without_showing_the_pin() {
        let e =
            Uri::parse("pkcs11:token=t?module-path=/x.so&pin-value=secret").expect_err("no object");
        assert!(
            e.message.contains("object=LABEL") && !e.message.contains("secret"),
            "{}",
            e.message
        );
        assert_eq!(e.code, 2);
    }
}
