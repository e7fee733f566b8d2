//! Checked text: the strings documents carry that must be safe or well formed before
//! anything uses them — a relative path inside an artifact, an SPDX license expression, an
//! RFC 3339 timestamp and an artifact URI. Each exists only when valid.

use std::fmt;
use std::str::FromStr;

use crate::limits::Limits;
use crate::version::serde_via_str;

/// A relative path inside an artifact: no leading `/`, no `\`, no `.` or `..` component, no
/// empty component, no control character, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativePath(String);

/// A path that is not a safe [`RelativePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe path {path:?}: {why}")]
pub struct PathError {
    /// The path.
    pub path: String,
    /// Why it is refused.
    pub why: &'static str,
}

impl RelativePath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RelativePath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| PathError {
            path: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > Limits::MAX_PATH_BYTES {
            return Err(err("it is longer than 4096 bytes"));
        }
        if s.starts_with('/') {
            return Err(err("it is absolute"));
        }
        if s.contains('\\') {
            return Err(err("it contains a backslash"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("it contains a control character"));
        }
        if s.len() >= 2 && s.as_bytes()[1] == b':' {
            return Err(err("it starts with a drive letter"));
        }
        for part in s.split('/') {
            match part {
                "" => return Err(err("it has an empty component")),
                "." => return Err(err("it has a '.' component")),
                ".." => return Err(err("it has a '..' component")),
                _ => {}
            }
        }
        Ok(RelativePath(s.to_string()))
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SPDX license expression (`Apache-2.0`, `MIT OR Apache-2.0`, `LicenseRef-acme-eula`),
/// checked against the SPDX license list.
#[derive(Clone, PartialEq, Eq)]
pub struct License(String);

/// A licence that is not a valid SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a valid SPDX license expression: {why}")]
pub struct LicenseError {
    /// The text.
    pub found: String,
    /// What the SPDX parser said.
    pub why: String,
}

impl License {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for License {
    type Err = LicenseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        spdx::Expression::parse(s).map_err(|e| LicenseError {
            found: s.to_string(),
            why: e.reason.to_string(),
        })?;
        Ok(License(s.to_string()))
    }
}

impl fmt::Display for License {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for License {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "License({:?})", self.0)
    }
}

/// An RFC 3339 timestamp (`2026-04-15T07:32:37Z`), kept as written.
#[derive(Clone, PartialEq, Eq)]
pub struct Timestamp(String);

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not an RFC 3339 timestamp (like 2026-04-15T07:32:37Z)")]
pub struct TimestampError {
    /// The text.
    pub found: String,
}

impl Timestamp {
    /// The timestamp as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i128 {
        time::OffsetDateTime::parse(&self.0, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(
            |_| TimestampError {
                found: s.to_string(),
            },
        )?;
        Ok(Timestamp(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({:?})", self.0)
    }
}

/// Where an artifact lives: a URI with a scheme (`s3://`, `https://`, `file:`), no whitespace
/// or control characters, at most 2048 bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ArtifactUri(String);

/// Text that is not an [`ArtifactUri`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid artifact uri {found:?}: {why}")]
pub struct UriError {
    /// The text.
    pub found: String,
    /// What is wrong.
    pub why: &'static str,
}

impl ArtifactUri {
    /// The URI as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ArtifactUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| UriError {
            found: s.to_string(),
            why,
        };
        if s.len() > Limits::MAX_URI_BYTES {
            return Err(err("it is longer than 2048 bytes"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("it contains whitespace or a control character"));
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(err("it has no scheme (like s3:// or https://)"));
        };
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-')
            });
        if !scheme_ok {
            return Err(err(
                "the scheme must be lowercase letters, digits, '+', '.' or '-'",
            ));
        }
        if rest.trim_start_matches('/').is_empty() {
            return Err(err("nothing follows the scheme"));
        }
        Ok(ArtifactUri(s.to_string()))
    }
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactUri({:?})", self.0)
    }
}

serde_via_str!(RelativePath);
serde_via_str!(License);
serde_via_str!(Timestamp);
serde_via_str!(ArtifactUri);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_name_the_format_bounds() {
        // The messages are static text: they must say what the constants are.
        assert_eq!(Limits::MAX_PATH_BYTES, 4096);
        assert_eq!(Limits::MAX_URI_BYTES, 2048);
        let e = "a".repeat(4097).parse::<RelativePath>().unwrap_err();
        assert_eq!(e.why, "it is longer than 4096 bytes");
        assert!("a".repeat(4096).parse::<RelativePath>().is_ok());
        let e = format!("s3://{}", "a".repeat(2044))
            .parse::<ArtifactUri>()
            .unwrap_err();
        assert_eq!(e.why, "it is longer than 2048 bytes");
        assert!(
            format!("s3://{}", "a".repeat(2043))
                .parse::<ArtifactUri>()
                .is_ok()
        );
    }

    #[test]
    fn paths() {
        for ok in ["model.engine", "a/b/c.bin", "weights..bak", ".hidden"] {
            assert!(ok.parse::<RelativePath>().is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a\\b",
            "C:x",
            "a\n",
        ] {
            assert!(bad.parse::<RelativePath>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn licenses() {
        for ok in [
            "Apache-2.0",
            "MIT OR Apache-2.0",
            "LicenseRef-acme-eula",
            "GPL-2.0-only WITH Classpath-exception-2.0",
        ] {
            assert!(ok.parse::<License>().is_ok(), "{ok:?}");
        }
        for bad in ["", "Apache 2", "proprietary", "MIT AND"] {
            assert!(bad.parse::<License>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert!("2026-04-15T07:32:37Z".parse::<Timestamp>().is_ok());
        assert!("2026-04-15T07:32:37.5+03:00".parse::<Timestamp>().is_ok());
        assert!("2026-04-15".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn artifact_uris() {
        for ok in [
            "s3://ota-artifacts/temp-sensor/fw-2.0.0.bin",
            "https://cdn.example/x.enc",
            "file:x",
        ] {
            assert!(ok.parse::<ArtifactUri>().is_ok(), "{ok:?}");
        }
        for bad in ["", "no-scheme", "s3://", "S3://x", "http://a b", "1s://x"] {
            assert!(bad.parse::<ArtifactUri>().is_err(), "{bad:?}");
        }
    }
}
