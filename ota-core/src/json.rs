//! JSON parsing in which every error names the offending field.
//!
//! Parsing happens in two passes. The first is serde's, with unknown fields rejected: it stops
//! at the first structural fault (bad syntax, an unknown or missing field, a malformed value)
//! and reports it with its path (`manifest.io.inputs[2].shape`). The second checks the rules
//! that span fields (duplicates, ranges, contradictions) and reports every fault it finds.

use serde::de::DeserializeOwned;

use crate::status::Status;

/// One broken rule, with the path of the field that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// The path of the field, as `io.inputs[2].shape` (`.` is the document itself).
    pub path: String,
    /// What is wrong, one line, lower case.
    pub message: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What kind of structural fault serde found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonFault {
    /// Not well-formed JSON.
    Syntax,
    /// A field the format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A value of the wrong type, or one that its type rejects.
    InvalidValue,
}

/// A document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The document is larger than the limit.
    #[error("{what}: {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The kind of document.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A structural fault: syntax, an unknown or missing field, or a malformed value.
    #[error("{what}: {path}: {message}")]
    Json {
        /// The kind of document.
        what: &'static str,
        /// What kind of fault.
        fault: JsonFault,
        /// The path of the field.
        path: String,
        /// serde's description, with line and column.
        message: String,
    },
    /// The document is well formed but breaks rules of its format: every fault found.
    #[error("{what}: {}", display_faults(.faults))]
    Invalid {
        /// The kind of document.
        what: &'static str,
        /// Every fault, in document order.
        faults: Vec<Fault>,
    },
}

fn display_faults(faults: &[Fault]) -> String {
    let mut out = String::new();
    for (i, f) in faults.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&f.to_string());
    }
    out
}

impl ParseError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            ParseError::TooLarge { .. } => Status::TooLarge,
            ParseError::Json { fault, .. } => match fault {
                JsonFault::Syntax => Status::JsonSyntax,
                JsonFault::UnknownField => Status::UnknownField,
                JsonFault::MissingField => Status::MissingField,
                JsonFault::InvalidValue => Status::InvalidValue,
            },
            ParseError::Invalid { .. } => Status::Invalid,
        }
    }

    /// Every fault as `(path, message)`: one for a structural fault, all of them otherwise.
    pub fn faults(&self) -> Vec<Fault> {
        match self {
            ParseError::TooLarge { size, max, .. } => vec![Fault {
                path: ".".into(),
                message: format!("{size} bytes exceeds the limit of {max} bytes"),
            }],
            ParseError::Json { path, message, .. } => vec![Fault {
                path: path.clone(),
                message: message.clone(),
            }],
            ParseError::Invalid { faults, .. } => faults.clone(),
        }
    }
}

/// Deserializes `bytes` as a `T`, refusing more than `max` bytes, with the field path in every
/// error. Cross-field rules are not checked here; see [`Validate`].
pub fn from_slice<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, ParseError> {
    if bytes.len() > max {
        return Err(ParseError::TooLarge {
            what,
            size: bytes.len(),
            max,
        });
    }
    // Parsed first without tracking the path: tracking it costs on every value (a third of a
    // large snapshot's parse), and only an error needs it. A document that fails is parsed
    // again, tracking it, for the error that names the field.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(value) = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(what, e))?;
    de.end().map_err(|e| ParseError::Json {
        what,
        fault: JsonFault::Syntax,
        path: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

fn json_error(what: &'static str, e: serde_path_to_error::Error<serde_json::Error>) -> ParseError {
    let mut path = e.path().to_string();
    let inner = e.into_inner();
    let message = inner.to_string();
    // serde reports a missing or repeated field at its parent: name the field itself.
    for prefix in ["missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, _)) = rest.split_once('`')
        {
            let parent = if path == "." { "" } else { path.as_str() };
            path = field(parent, name);
        }
    }
    let fault = match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => JsonFault::Syntax,
        serde_json::error::Category::Io => JsonFault::Syntax,
        serde_json::error::Category::Data => {
            if message.starts_with("unknown field") {
                JsonFault::UnknownField
            } else if message.starts_with("missing field") {
                JsonFault::MissingField
            } else {
                JsonFault::InvalidValue
            }
        }
    };
    ParseError::Json {
        what,
        fault,
        path,
        message,
    }
}

/// A document whose cross-field rules can be checked, every fault collected.
pub trait Validate {
    /// Whether the document is a JSON object (serde would also read a struct from an array).
    const IS_OBJECT: bool = true;

    /// Appends every fault found to `faults`, with paths under `path` (`""` at the root).
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>);

    /// Every fault found, with paths from the root.
    fn faults(&self) -> Vec<Fault> {
        let mut faults = Vec::new();
        self.validate_at("", &mut faults);
        faults
    }
}

/// Parses `bytes` as a `T` and checks its rules: the one entry point for every document type.
pub fn parse<T: DeserializeOwned + Validate>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, ParseError> {
    if T::IS_OBJECT
        && bytes.len() <= max
        && let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
        && *first != b'{'
    {
        return Err(ParseError::Json {
            what,
            fault: JsonFault::InvalidValue,
            path: ".".into(),
            message: format!("a {what} is a JSON object"),
        });
    }
    let value: T = from_slice(what, bytes, max)?;
    check(what, value)
}

/// [`parse`] for a document read from `reader` (at most `max` bytes, counted as read), so
/// that it is never held whole; errors name the field as [`parse`]'s do.
pub(crate) fn parse_reader<T: DeserializeOwned + Validate, R: std::io::Read>(
    what: &'static str,
    reader: R,
    max: usize,
) -> Result<T, ParseError> {
    let mut first = FirstByte {
        inner: std::io::Read::take(reader, max as u64 + 1),
        first: None,
        read: 0,
    };
    let mut de = serde_json::Deserializer::from_reader(&mut first);
    let parsed = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| json_error(what, e))
        .and_then(|v: T| {
            de.end().map(|()| v).map_err(|e| ParseError::Json {
                what,
                fault: JsonFault::Syntax,
                path: ".".into(),
                message: e.to_string(),
            })
        });
    if first.read > max as u64 {
        return Err(ParseError::TooLarge {
            what,
            size: usize::try_from(first.read).unwrap_or(usize::MAX),
            max,
        });
    }
    if T::IS_OBJECT && first.first.is_some_and(|b| b != b'{') {
        return Err(ParseError::Json {
            what,
            fault: JsonFault::InvalidValue,
            path: ".".into(),
            message: format!("a {what} is a JSON object"),
        });
    }
    check(what, parsed?)
}

/// A reader that notes the first byte other than white space, and how many it gave.
struct FirstByte<R> {
    inner: R,
    first: Option<u8>,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for FirstByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.first.is_none() {
            self.first = buf[..n].iter().copied().find(|b| !b.is_ascii_whitespace());
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Checks the rules of an already built `T`, returning it when there is no fault.
pub fn check<T: Validate>(what: &'static str, value: T) -> Result<T, ParseError> {
    let faults = value.faults();
    if faults.is_empty() {
        Ok(value)
    } else {
        Err(ParseError::Invalid { what, faults })
    }
}

/// The path of field `name` under `parent`.
pub(crate) fn field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// The path of element `index` under `parent`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Pushes a fault at `path`.
pub(crate) fn fault(faults: &mut Vec<Fault>, path: String, message: impl Into<String>) {
    // A hostile document (a fleet of millions naming one device id) would otherwise make
    // one fault per element: the first ones are listed, and a last fault says there are more.
    if faults.len() >= MAX_FAULTS {
        if faults.len() == MAX_FAULTS {
            faults.push(Fault {
                path: ".".into(),
                message: format!("more faults follow; the first {MAX_FAULTS} are listed"),
            });
        }
        return;
    }
    let path = if path.is_empty() {
        ".".to_string()
    } else {
        path
    };
    faults.push(Fault {
        path,
        message: message.into(),
    });
}

/// How many faults a document's error lists at most (then one saying more follow).
pub const MAX_FAULTS: usize = 100;

/// Pushes a fault for every value that appears more than once in `items`, at the later one.
pub(crate) fn duplicates<'a, T: Ord + std::fmt::Display + 'a>(
    faults: &mut Vec<Fault>,
    parent: &str,
    sub: Option<&str>,
    items: impl IntoIterator<Item = &'a T>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.into_iter().enumerate() {
        if !seen.insert(item) {
            let at = index(parent, i);
            let at = match sub {
                Some(s) => field(&at, s),
                None => at,
            };
            fault(
                faults,
                at,
                format!("duplicate value {item:?}", item = item.to_string()),
            );
        }
    }
}

/// Serializes a document as compact JSON. The types of this crate serialize infallibly.
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_document_full_of_faults_lists_the_first_and_says_more_follow() {
        let ids = vec!["dev-1".to_string(); 100_000];
        let mut faults = Vec::new();
        duplicates(&mut faults, "", Some("device_id"), &ids);
        assert_eq!(faults.len(), MAX_FAULTS + 1);
        assert_eq!(faults[0].path, "[1].device_id");
        assert_eq!(faults[MAX_FAULTS].path, ".");
        assert!(faults[MAX_FAULTS].message.contains("more faults follow"));
    }
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        items: Vec<Item>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        n: u8,
    }

    #[test]
    fn a_document_parses_whole_and_a_bad_one_names_the_field_and_the_fault() {
        let ok: Doc = from_slice("doc", br#"{"items":[{"n":1},{"n":2}]}"#, 100).unwrap();
        assert_eq!(ok.items, [Item { n: 1 }, Item { n: 2 }]);
        let spaced: Doc = from_slice("doc", b" {\"items\":[]} \n\t", 100).unwrap();
        assert!(spaced.items.is_empty());
        // Each error comes from the second, path-tracking parse: the path is the value's.
        let cases: [(&[u8], JsonFault, &str); 5] = [
            (
                br#"{"items":[{"n":1},{"n":300}]}"#,
                JsonFault::InvalidValue,
                "items[1].n",
            ),
            (
                br#"{"items":[{"n":1},{"m":3}]}"#,
                JsonFault::UnknownField,
                "items[1].m",
            ),
            (
                br#"{"items":[{"n":1},{}]}"#,
                JsonFault::MissingField,
                "items[1].n",
            ),
            (br#"{"items":[{"n":1}"#, JsonFault::Syntax, "items"),
            (br#"{"items":[]} x"#, JsonFault::Syntax, "."),
        ];
        for (text, want, at) in cases {
            match from_slice::<Doc>("doc", text, 100) {
                Err(ParseError::Json { fault, path, .. }) => {
                    assert_eq!(
                        (fault, path.as_str()),
                        (want, at),
                        "{}",
                        String::from_utf8_lossy(text)
                    );
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(text)),
            }
        }
        // The message is serde_json's, with where it was found.
        let e = from_slice::<Doc>("doc", br#"{"items":[{"n":300}]}"#, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "doc: items[0].n: invalid value: integer `300`, expected u8 at line 1 column 18"
        );
        assert!(matches!(
            from_slice::<Doc>("doc", &[b' '; 101], 100),
            Err(ParseError::TooLarge { size: 101, .. })
        ));
    }
}
