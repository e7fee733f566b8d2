//! A metadata file opened: its signatures (no key twice), its `signed` part of the role's
//! type, and the canonical JSON of `signed` that the signatures cover, written as
//! securesystemslib writes it.

use serde_json::Value;

use super::error::UpdateError;

fn invalid(role: &str, field: &str, detail: impl Into<String>) -> UpdateError {
    UpdateError::Invalid {
        role: role.into(),
        field: field.into(),
        detail: detail.into(),
    }
}

/// A metadata file opened: its `signed` part, the canonical bytes signatures cover, and its
/// signatures (key id, hex), no key id twice.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The `signed` object.
    pub signed: Value,
    /// Its canonical JSON.
    pub canonical: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<(String, String)>,
}

/// Opens a metadata file of `role`, whose `signed._type` must be `expected`.
pub fn open(role: &str, expected: &'static str, bytes: &[u8]) -> Result<Envelope, UpdateError> {
    let mut doc: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(role, ".", e.to_string()))?;
    let sigs = doc
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(role, "signatures", "must be an array"))?;
    let mut signatures: Vec<(String, String)> = Vec::with_capacity(sigs.len());
    // Each key id once, found in constant time: a role of many signatures costs linear time.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, s) in sigs.iter().enumerate() {
        let at = |f: &str| format!("signatures[{i}].{f}");
        let keyid = s
            .get("keyid")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(role, &at("keyid"), "must be a string"))?;
        let sig = s
            .get("sig")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(role, &at("sig"), "must be a string"))?;
        if !seen.insert(keyid) {
            return Err(UpdateError::DuplicateSignature {
                role: role.into(),
                keyid: keyid.into(),
            });
        }
        signatures.push((keyid.into(), sig.into()));
    }
    let signed = doc
        .as_object_mut()
        .and_then(|d| d.remove("signed"))
        .filter(Value::is_object)
        .ok_or_else(|| invalid(role, "signed", "must be an object"))?;
    let found = signed.get("_type").and_then(Value::as_str).unwrap_or("");
    if found != expected {
        return Err(UpdateError::WrongType {
            role: role.into(),
            expected,
            found: found.into(),
        });
    }
    Ok(Envelope {
        canonical: canonical(&signed),
        signed,
        signatures,
    })
}

/// The canonical JSON of a value, what TUF signatures cover, as securesystemslib writes it:
/// object keys sorted, no whitespace, strings with only `"` and `\` escaped (and no Unicode
/// normalization), integers as they are. (A float cannot be canonical: it is written as
/// serde_json writes it, and no signature made by another client will match.)
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted by the keys' bytes, whatever order the map keeps (serde_json's
            // `preserve_order`, if another crate turns it on, keeps insertion order).
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_only_quote_and_backslash() {
        let v: Value =
            serde_json::from_str(r#"{"b": [1, true, null], "a": "q\"b\\e\u0301\n"}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            "{\"a\":\"q\\\"b\\\\e\u{301}\n\",\"b\":[1,true,null]}"
        );
    }
}
