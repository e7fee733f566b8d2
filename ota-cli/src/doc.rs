//! Reading documents (manifests, packages, envelopes, device profiles, fleets) as JSON or YAML.
//!
//! A file is YAML when its name ends in `.yaml` or `.yml`, or, whatever its name, when its first
//! non-blank character does not open a JSON object or array. YAML is converted to JSON bytes
//! here, before the core's parsers, so every rule and every field path in their errors is the
//! same for both forms (`files[0].sha256`, not a line of the YAML).

use std::path::Path;

use ota_core::json::ParseError;
use ota_core::{Limits, Status};

use crate::out::{self, CliError};

/// The form a document was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// JSON.
    Json,
    /// YAML (1.2, as `serde_norway` reads it).
    Yaml,
}

/// Which form `bytes`, read from `path`, are in.
pub fn form(path: &Path, bytes: &[u8]) -> Form {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yaml" | "yml") => Form::Yaml,
        Some("json") => Form::Json,
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') | None => Form::Json,
            Some(_) => Form::Yaml,
        },
    }
}

/// A document read from a file, as JSON bytes.
pub struct Doc {
    /// The JSON bytes (YAML converted).
    pub bytes: Vec<u8>,
    /// The form the file was written in.
    pub form: Form,
}

impl Doc {
    /// A parser's message about this document: for YAML, without the line and column of the
    /// converted JSON, which would point nowhere in the file (the field path stays).
    pub fn message(&self, message: &str) -> String {
        match self.form {
            Form::Json => message.to_string(),
            Form::Yaml => strip_positions(message),
        }
    }

    /// Exit 1 for a document that does not parse or validate, naming the file and the field.
    pub fn error(&self, path: &Path, e: &ParseError) -> CliError {
        CliError::failure(
            Some(e.status()),
            format!("{}: {}", path.display(), self.message(&e.to_string())),
        )
    }
}

/// Reads a document of at most [`Limits::max_document_bytes`] (a manifest, a profile, a
/// registration record): JSON as it is, YAML converted to JSON.
pub fn load(path: &Path) -> Result<Doc, CliError> {
    load_bounded(path, Limits::DEFAULT.max_document_bytes)
}

/// Reads a document of at most `max` bytes, refused as soon as it passes the bound: JSON as
/// it is, YAML converted to JSON. A leading UTF-8 byte-order mark is dropped, in both forms.
pub fn load_bounded(path: &Path, max: usize) -> Result<Doc, CliError> {
    let mut bytes = out::read(path, max)?;
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let form = form(path, &bytes);
    let bytes = match form {
        Form::Json => bytes,
        Form::Yaml => yaml_to_json(&bytes).map_err(|e| {
            CliError::failure(
                Some(Status::JsonSyntax),
                format!("{}: not a YAML document: {e}", path.display()),
            )
        })?,
    };
    Ok(Doc { bytes, form })
}

/// The UTF-8 byte-order mark some editors put first.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a document (see [`load`]) and parses it with one of the core's parsers.
pub fn parse<T>(
    path: &Path,
    parser: impl FnOnce(&[u8]) -> Result<T, ParseError>,
) -> Result<T, CliError> {
    let doc = load(path)?;
    parser(&doc.bytes).map_err(|e| doc.error(path, &e))
}

/// Removes every ` at line N column M` from a message.
pub fn strip_positions(message: &str) -> String {
    let mut out = message.to_string();
    let mut from = 0;
    while let Some(i) = out[from..].find(" at line ").map(|i| i + from) {
        let rest = &out[i + " at line ".len()..];
        let line_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = &rest[line_digits..];
        let col_digits = after
            .strip_prefix(" column ")
            .map(|c| c.bytes().take_while(u8::is_ascii_digit).count())
            .unwrap_or(0);
        if line_digits > 0 && col_digits > 0 {
            let end = i + " at line ".len() + line_digits + " column ".len() + col_digits;
            out.replace_range(i..end, "");
            from = i;
        } else {
            from = i + 1;
        }
    }
    out
}

/// Converts one YAML document to compact JSON. Mapping keys must be strings, as in JSON; tags
/// and aliases to non-JSON values are refused by the conversion.
pub fn yaml_to_json(bytes: &[u8]) -> Result<Vec<u8>, String> {
    flow_depth_within(bytes, MAX_FLOW_DEPTH)?;
    let value: serde_json::Value = serde_norway::from_slice(bytes).map_err(|e| one_line(&e))?;
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

/// The deepest `[`/`{` nesting a YAML document may have (serde_json's own limit for JSON):
/// the YAML parser takes time quadratic in it (a megabyte of `[` took about an hour).
const MAX_FLOW_DEPTH: usize = 128;

/// Refuses a YAML document whose flow collections (`[...]`, `{...}`) nest deeper than `max`,
/// before it is parsed; brackets inside quotes and comments do not count.
fn flow_depth_within(bytes: &[u8], max: usize) -> Result<(), String> {
    let (mut depth, mut quote, mut comment) = (0usize, None::<u8>, false);
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // A quote opens a quoted scalar only where a token starts (`the model's` is plain).
        let token_start = prev.is_ascii_whitespace() || b":,[{-".contains(&prev);
        match (quote, b) {
            _ if comment => comment = b != b'\n',
            // `\"` inside double quotes, `''` inside single quotes: the quote goes on.
            (Some(b'"'), b'\\') => i += 1,
            (Some(b'\''), b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 1,
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if token_start => quote = Some(b),
            (None, b'#') if prev.is_ascii_whitespace() => comment = true,
            (None, b'[' | b'{') => {
                depth += 1;
                if depth > max {
                    return Err(format!("collections nest deeper than {max} levels"));
                }
            }
            (None, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = b;
        i += 1;
    }
    Ok(())
}

/// An error's text on one line.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("a: {}", "[".repeat(100_000));
        // (Parsing it took 34 s; refusing it takes a scan.)
        let e = yaml_to_json(deep.as_bytes()).unwrap_err();
        assert!(e.contains("deeper than 128"), "{e}");
        let fine = format!("a: {}1{}", "[".repeat(100), "]".repeat(100));
        assert!(yaml_to_json(fine.as_bytes()).is_ok());
        // Brackets in quotes and comments are text.
        let quoted = format!("a: \"{}\" # {}\n", "[".repeat(500), "{".repeat(500));
        assert!(yaml_to_json(quoted.as_bytes()).is_ok());
        let escaped = format!(
            "a: \"x\\\"{}\"\nb: 'it''s {}'\n",
            "[".repeat(500),
            "[".repeat(500)
        );
        assert!(yaml_to_json(escaped.as_bytes()).is_ok(), "{escaped}");
        // An apostrophe in a plain scalar opens nothing: the nesting after it counts.
        let plain = format!("description: the model's\nx: {}", "[".repeat(100_000));
        assert!(
            yaml_to_json(plain.as_bytes())
                .unwrap_err()
                .contains("deeper than 128")
        );
    }

    #[test]
    fn form_follows_the_extension_then_the_content() {
        assert_eq!(form(Path::new("m.yaml"), b"{}"), Form::Yaml);
        assert_eq!(form(Path::new("m.YML"), b"{}"), Form::Yaml);
        assert_eq!(form(Path::new("m.json"), b"name: x"), Form::Json);
        assert_eq!(form(Path::new("m"), b"  \n{\"a\": 1}"), Form::Json);
        assert_eq!(form(Path::new("m"), b"[1]"), Form::Json);
        assert_eq!(form(Path::new("m"), b"name: x\n"), Form::Yaml);
        assert_eq!(form(Path::new("m"), b"---\nname: x\n"), Form::Yaml);
    }

    #[test]
    fn yaml_converts_to_the_same_json_values() {
        let json = yaml_to_json(b"name: x\nsize_bytes: 12\nlist: [a, b]\nnested: {ok: true}\n")
            .expect("yaml");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"name": "x", "size_bytes": 12, "list": ["a", "b"], "nested": {"ok": true}})
        );
    }

    #[test]
    fn positions_of_the_converted_json_are_stripped() {
        assert_eq!(
            strip_positions("files[0].sha256: too short at line 1 column 247; at line x"),
            "files[0].sha256: too short; at line x"
        );
    }

    #[test]
    fn malformed_yaml_is_refused_on_one_line_with_its_position() {
        let e = yaml_to_json(b"name: [unclosed\nother: 1\n").expect_err("malformed");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line"), "{e}");
    }
}
