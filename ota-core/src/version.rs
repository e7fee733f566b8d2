//! Versions: semantic versions for packages and models, dotted versions for runtimes and
//! firmware, and ranges over dotted versions.
//!
//! Packages and models use [`Version`], a strict semantic version (`semver`): `v1.2`, `01.2.3`
//! and `1.0` are all rejected. Runtimes and firmware do not follow semver (TensorRT `8.6.1.6`,
//! JetPack `6.0`, CUDA `12.2`), so they use [`RuntimeVersion`], and requirements on them use
//! [`VersionRange`].

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A strict semantic version (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`), re-exported from `semver`.
pub use semver::Version;

/// A dotted numeric version of 1 to 4 parts (`12`, `6.0`, `8.6.1`, `8.6.1.6`), without leading
/// zeros. Missing parts compare as zero, so `6.0` equals `6.0.0`.
#[derive(Clone, Copy, Eq)]
pub struct RuntimeVersion {
    parts: [u32; 4],
    len: u8,
}

/// A string that is not a valid [`RuntimeVersion`] or [`VersionRange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// Not 1 to 4 dot-separated numbers without leading zeros.
    #[error(
        "invalid version {found:?}: expected 1 to 4 dot-separated numbers without leading zeros (like 8.6.1)"
    )]
    InvalidRuntimeVersion {
        /// The text.
        found: String,
    },
    /// A comparator of a range is malformed.
    #[error(
        "invalid version range {found:?}: expected comparators like \">=8.6, <11\" (operators >=, >, <=, <, =)"
    )]
    InvalidRange {
        /// The text.
        found: String,
    },
    /// The range admits no version at all.
    #[error("empty version range {found:?}: no version satisfies it")]
    EmptyRange {
        /// The text.
        found: String,
    },
}

impl RuntimeVersion {
    /// A version from its parts (1 to 4 of them); `None` otherwise.
    pub fn new(parts: &[u32]) -> Option<Self> {
        if parts.is_empty() || parts.len() > 4 {
            return None;
        }
        let mut p = [0; 4];
        p[..parts.len()].copy_from_slice(parts);
        Some(RuntimeVersion {
            parts: p,
            len: u8::try_from(parts.len()).ok()?,
        })
    }

    /// The two-part version `major.minor`.
    pub const fn new2(major: u32, minor: u32) -> Self {
        RuntimeVersion {
            parts: [major, minor, 0, 0],
            len: 2,
        }
    }

    /// The parts as written.
    pub fn parts(&self) -> &[u32] {
        &self.parts[..usize::from(self.len)]
    }

    /// The first part.
    pub fn major(&self) -> u32 {
        self.parts[0]
    }
}

impl PartialEq for RuntimeVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl std::hash::Hash for RuntimeVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts.hash(state)
    }
}

impl PartialOrd for RuntimeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RuntimeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl FromStr for RuntimeVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::InvalidRuntimeVersion {
            found: s.to_string(),
        };
        let mut parts = [0u32; 4];
        let mut len = 0usize;
        for piece in s.split('.') {
            if len == 4
                || piece.is_empty()
                || !piece.bytes().all(|b| b.is_ascii_digit())
                || (piece.len() > 1 && piece.starts_with('0'))
            {
                return Err(bad());
            }
            parts[len] = piece.parse().map_err(|_| bad())?;
            len += 1;
        }
        Ok(RuntimeVersion {
            parts,
            len: u8::try_from(len).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for RuntimeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.parts().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RuntimeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuntimeVersion({self})")
    }
}

/// A comparison operator of a [`VersionRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
    /// `=`
    Eq,
}

/// A range of [`RuntimeVersion`]s: comma-separated comparators that must all hold, like
/// `>=8.6, <11` or `=8.6.1.6`. A range that no version can satisfy (`>=9, <8`) is rejected when
/// parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRange {
    text: String,
    comparators: Vec<(Op, RuntimeVersion)>,
}

impl VersionRange {
    /// Whether `v` satisfies every comparator.
    pub fn contains(&self, v: &RuntimeVersion) -> bool {
        self.position(v) == Ordering::Equal
    }

    /// Where `v` lies: `Less` when it is below a lower bound, `Greater` when it is above an
    /// upper bound, `Equal` when it is in the range.
    pub fn position(&self, v: &RuntimeVersion) -> Ordering {
        for (op, bound) in &self.comparators {
            let c = v.cmp(bound);
            let ok = match op {
                Op::Ge => c != Ordering::Less,
                Op::Gt => c == Ordering::Greater,
                Op::Le => c != Ordering::Greater,
                Op::Lt => c == Ordering::Less,
                Op::Eq => c == Ordering::Equal,
            };
            if !ok {
                return match op {
                    Op::Ge | Op::Gt => Ordering::Less,
                    Op::Le | Op::Lt => Ordering::Greater,
                    Op::Eq => c,
                };
            }
        }
        Ordering::Equal
    }

    /// The comparators, in the order written.
    pub fn comparators(&self) -> &[(Op, RuntimeVersion)] {
        &self.comparators
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for VersionRange {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::InvalidRange {
            found: s.to_string(),
        };
        let mut comparators = Vec::new();
        for piece in s.split(',') {
            let piece = piece.trim();
            let (op, rest) = if let Some(r) = piece.strip_prefix(">=") {
                (Op::Ge, r)
            } else if let Some(r) = piece.strip_prefix("<=") {
                (Op::Le, r)
            } else if let Some(r) = piece.strip_prefix('>') {
                (Op::Gt, r)
            } else if let Some(r) = piece.strip_prefix('<') {
                (Op::Lt, r)
            } else if let Some(r) = piece.strip_prefix('=') {
                (Op::Eq, r)
            } else {
                return Err(bad());
            };
            let v: RuntimeVersion = rest.trim().parse().map_err(|_| bad())?;
            comparators.push((op, v));
        }
        if comparators.is_empty() {
            return Err(bad());
        }
        // The tightest lower and upper bounds, each with whether it is inclusive.
        let mut lower: Option<(RuntimeVersion, bool)> = None;
        let mut upper: Option<(RuntimeVersion, bool)> = None;
        let tighten_lower =
            |cur: Option<(RuntimeVersion, bool)>, v: RuntimeVersion, inc: bool| match cur {
                Some((c, ci)) if c > v || (c == v && !ci) => Some((c, ci)),
                _ => Some((v, inc)),
            };
        let tighten_upper =
            |cur: Option<(RuntimeVersion, bool)>, v: RuntimeVersion, inc: bool| match cur {
                Some((c, ci)) if c < v || (c == v && !ci) => Some((c, ci)),
                _ => Some((v, inc)),
            };
        for &(op, v) in &comparators {
            match op {
                Op::Ge => lower = tighten_lower(lower, v, true),
                Op::Gt => lower = tighten_lower(lower, v, false),
                Op::Le => upper = tighten_upper(upper, v, true),
                Op::Lt => upper = tighten_upper(upper, v, false),
                Op::Eq => {
                    lower = tighten_lower(lower, v, true);
                    upper = tighten_upper(upper, v, true);
                }
            }
        }
        if let (Some((lo, lo_inc)), Some((hi, hi_inc))) = (lower, upper)
            && (lo > hi || (lo == hi && !(lo_inc && hi_inc)))
        {
            return Err(VersionError::EmptyRange {
                found: s.to_string(),
            });
        }
        Ok(VersionRange {
            text: s.to_string(),
            comparators,
        })
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionRange({:?})", self.text)
    }
}

/// Serde as text: written as its `Display` (or, given a method returning its text, as that
/// text directly, without the formatting machinery: names and digests are written for every
/// audit record), read through `FromStr`.
macro_rules! serde_via_str {
    (@de $t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        $crate::version::serde_via_str!(@de $t);
    };
    ($t:ty, $text:ident) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.$text())
            }
        }
        $crate::version::serde_via_str!(@de $t);
    };
}
pub(crate) use serde_via_str;

serde_via_str!(RuntimeVersion);
serde_via_str!(VersionRange);

/// A [`Version`] written as semver writes it (`1.2.3-rc.1+b7`), its common form (no
/// pre-release, no build) without the formatting machinery: the audit trail writes one for every
/// successful report.
pub(crate) struct VersionText<'a>(pub &'a Version);

/// The longest text [`VersionText::write_plain`] writes: three `u64`s of at most 20 digits,
/// and two dots.
pub(crate) const PLAIN_MAX: usize = 62;

impl VersionText<'_> {
    /// Writes the version's text into `out` when it has no pre-release and no build, and says
    /// how long it is; `None` (nothing written) for any other version.
    pub(crate) fn write_plain(&self, out: &mut [u8; PLAIN_MAX]) -> Option<usize> {
        let v = self.0;
        if !v.pre.is_empty() || !v.build.is_empty() {
            return None;
        }
        let mut n = 0;
        for (k, part) in [v.major, v.minor, v.patch].into_iter().enumerate() {
            if k > 0 {
                out[n] = b'.';
                n += 1;
            }
            let mut digits = itoa::Buffer::new();
            let d = digits.format(part).as_bytes();
            out[n..n + d.len()].copy_from_slice(d);
            n += d.len();
        }
        Some(n)
    }
}

impl serde::Serialize for VersionText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; PLAIN_MAX];
        let plain = self
            .write_plain(&mut text)
            .and_then(|n| std::str::from_utf8(&text[..n]).ok());
        match plain {
            Some(t) => s.serialize_str(t),
            None => serde::Serialize::serialize(self.0, s),
        }
    }
}

/// serde's `serialize_with` for an optional [`Version`], through [`VersionText`].
pub(crate) fn serialize_option<S: serde::Serializer>(
    v: &Option<Version>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&VersionText(v)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> RuntimeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn a_versions_text_is_what_semver_writes() {
        for text in [
            "0.0.0",
            "1.2.3",
            "10.200.3000",
            "18446744073709551615.18446744073709551615.18446744073709551615",
            "1.0.0-rc.1",
            "1.0.0+build.7",
            "2.1.0-alpha.beta+exp.sha.5114f85",
        ] {
            let version: Version = text.parse().unwrap();
            let written = serde_json::to_string(&VersionText(&version)).unwrap();
            assert_eq!(written, serde_json::to_string(&version).unwrap());
            assert_eq!(written, format!("\"{text}\""));
            let some = Some(version);
            let mut out = Vec::new();
            serialize_option(&some, &mut serde_json::Serializer::new(&mut out)).unwrap();
            assert_eq!(out, written.as_bytes());
        }
        let mut out = Vec::new();
        serialize_option(&None, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(out, b"null");
    }

    proptest::proptest! {
        #[test]
        fn any_release_versions_text_is_what_semver_writes(
            major: u64, minor: u64, patch: u64,
        ) {
            let version = Version::new(major, minor, patch);
            proptest::prop_assert_eq!(
                serde_json::to_string(&VersionText(&version)).unwrap(),
                format!("\"{version}\"")
            );
        }
    }

    #[test]
    fn runtime_versions() {
        assert_eq!(v("8.6.1.6").parts(), &[8, 6, 1, 6]);
        assert_eq!(v("6.0"), v("6.0.0"));
        assert!(v("8.6.1.6") > v("8.6.1"));
        assert!(v("10") > v("8.6.1.6"));
        assert_eq!(v("12.2").to_string(), "12.2");
        for bad in [
            "",
            "1.",
            ".1",
            "1..2",
            "01",
            "1.02",
            "1.2.3.4.5",
            "v1",
            "1.x",
            "-1",
            " 1",
        ] {
            assert!(
                matches!(
                    bad.parse::<RuntimeVersion>(),
                    Err(VersionError::InvalidRuntimeVersion { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ranges() {
        let r: VersionRange = ">=8.6, <11".parse().unwrap();
        assert!(r.contains(&v("8.6")));
        assert!(r.contains(&v("10.3.0")));
        assert_eq!(r.position(&v("8.5.9")), Ordering::Less);
        assert_eq!(r.position(&v("11")), Ordering::Greater);
        let eq: VersionRange = "=8.6.1.6".parse().unwrap();
        assert!(eq.contains(&v("8.6.1.6")));
        assert_eq!(eq.position(&v("8.6.1")), Ordering::Less);
        assert_eq!(eq.position(&v("8.6.2")), Ordering::Greater);
        assert!(">=9,<=9".parse::<VersionRange>().is_ok());
    }

    #[test]
    fn empty_and_malformed_ranges_are_rejected() {
        for empty in [">=9,<8", ">9,<=9", ">=9,<9", "=8,=9", ">=2,<3,>4"] {
            assert!(
                matches!(
                    empty.parse::<VersionRange>(),
                    Err(VersionError::EmptyRange { .. })
                ),
                "{empty:?}"
            );
        }
        for bad in ["", "8.6", "~8", ">=", ">=8,", "=>8", ">= v8"] {
            assert!(
                matches!(
                    bad.parse::<VersionRange>(),
                    Err(VersionError::InvalidRange { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn semver_is_strict() {
        for bad in ["v1.2", "01.2.3", "1.0", "1", "1.2.3.4"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        assert!("2.1.0-rc.1+build.5".parse::<Version>().is_ok());
    }
}
