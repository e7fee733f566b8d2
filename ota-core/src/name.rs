//! Identifiers for packages, models, devices, profiles and labels.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// An identifier: 1 to 128 characters of ASCII letters, digits, `.`, `_` and `-`, starting
/// with a letter or digit. Package, model, device, device-type and hardware-profile names are
/// all `Name`s, so none of them can smuggle a path separator, whitespace or control character.
///
/// A name is immutable text shared by its clones: a rollout names the same device in its
/// input, its effects and its commands, and cloning one costs no allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

/// A string that is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("a name must not be empty")]
    Empty,
    /// The name is longer than 128 characters.
    #[error("a name is at most 128 characters, found {len}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The name has a character outside `[A-Za-z0-9._-]`, or does not start with a letter or
    /// digit.
    #[error(
        "invalid character {found:?} at position {position} in name {name:?} (allowed: letters, digits, '.', '_', '-', starting with a letter or digit)"
    )]
    InvalidCharacter {
        /// The name.
        name: String,
        /// The position of the character.
        position: usize,
        /// The character.
        found: char,
    },
}

impl Name {
    /// The longest name accepted: [`Limits::MAX_NAME_CHARS`](crate::Limits::MAX_NAME_CHARS).
    pub const MAX_LEN: usize = crate::limits::Limits::MAX_NAME_CHARS;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::check(s)?;
        Ok(Name(Arc::from(s)))
    }
}

impl Name {
    /// A name from a table that checked it on its way in ([`Name::check`]).
    pub(crate) fn from_table(s: &str) -> Name {
        debug_assert!(Name::check(s).is_ok());
        Name(Arc::from(s))
    }

    /// Checks that `s` is a valid name without making one (for tables that keep names as
    /// text side by side).
    pub(crate) fn check(s: &str) -> Result<(), NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { len: s.len() });
        }
        for (position, c) in s.char_indices() {
            let ok = c.is_ascii_alphanumeric() || (position > 0 && matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(NameError::InvalidCharacter {
                    name: s.to_string(),
                    position,
                    found: c,
                });
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The name's text, copied (a name's text is shared by its clones).
impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.to_string()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

crate::version::serde_via_str!(Name, as_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifiers_and_rejects_the_rest() {
        for ok in [
            "a",
            "yolo-v8n",
            "dev_8f3a",
            "nvidia-jetson-orin-nx",
            "Model.2",
            "0",
        ] {
            assert_eq!(ok.parse::<Name>().unwrap().as_str(), ok);
        }
        assert_eq!("".parse::<Name>(), Err(NameError::Empty));
        for bad in ["-a", ".hidden", "a/b", "a b", "../x", "é", "a\0"] {
            assert!(
                matches!(bad.parse::<Name>(), Err(NameError::InvalidCharacter { .. })),
                "{bad:?}"
            );
        }
        assert!("a".repeat(128).parse::<Name>().is_ok());
        assert_eq!(
            "a".repeat(129).parse::<Name>(),
            Err(NameError::TooLong { len: 129 })
        );
    }
}
