//! Hardware vocabulary: the words device profiles, model manifests and the compatibility
//! engine share to describe a board — its CPU architecture, its accelerators, a GPU's compute
//! capability and the tensor element types a runtime or accelerator runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::json;
use crate::version::serde_via_str;

/// A CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Arch {
    /// 64-bit ARM (`aarch64`).
    Arm64,
    /// 64-bit x86.
    #[serde(rename = "x86_64")]
    X86_64,
    /// 32-bit ARMv7.
    Armv7,
    /// 64-bit RISC-V.
    Riscv64,
}

impl Arch {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
            Arch::Armv7 => "armv7",
            Arch::Riscv64 => "riscv64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AcceleratorKind {
    /// A GPU.
    Gpu,
    /// An NVIDIA Deep Learning Accelerator core.
    Dla,
    /// A neural processing unit.
    Npu,
}

impl AcceleratorKind {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AcceleratorKind::Gpu => "gpu",
            AcceleratorKind::Dla => "dla",
            AcceleratorKind::Npu => "npu",
        }
    }
}

impl fmt::Display for AcceleratorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CUDA compute capability, `major.minor` (`8.7`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComputeCapability {
    major: u8,
    minor: u8,
}

/// Text that is not a compute capability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compute capability {found:?}: expected MAJOR.MINOR, like 8.7")]
pub struct ComputeCapabilityError {
    /// The text.
    pub found: String,
}

impl ComputeCapability {
    /// Ampere, the first generation of `ampere_plus` hardware compatibility.
    pub const AMPERE: ComputeCapability = ComputeCapability::new(8, 0);

    /// A compute capability.
    pub const fn new(major: u8, minor: u8) -> Self {
        ComputeCapability { major, minor }
    }

    /// The major version.
    pub fn major(self) -> u8 {
        self.major
    }

    /// The minor version.
    pub fn minor(self) -> u8 {
        self.minor
    }
}

impl FromStr for ComputeCapability {
    type Err = ComputeCapabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ComputeCapabilityError {
            found: s.to_string(),
        };
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u8, ComputeCapabilityError> {
            if p.is_empty()
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(ComputeCapability {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

impl fmt::Display for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl fmt::Debug for ComputeCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComputeCapability({self})")
    }
}

serde_via_str!(ComputeCapability);

/// A tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DType {
    /// Boolean.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// 8-bit float.
    Fp8,
    /// 16-bit float.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 32-bit float.
    Fp32,
    /// 64-bit float.
    Fp64,
    /// Bytes / string.
    String,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(json::to_string(self).trim_matches('"'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_capabilities() {
        assert_eq!(
            "8.7".parse::<ComputeCapability>().unwrap(),
            ComputeCapability::new(8, 7)
        );
        assert_eq!(
            "11.0".parse::<ComputeCapability>().unwrap().to_string(),
            "11.0"
        );
        assert!(ComputeCapability::new(7, 2) < ComputeCapability::AMPERE);
        for bad in ["8", "8.", ".7", "08.7", "8.7.1", "x.y", "256.0"] {
            assert!(bad.parse::<ComputeCapability>().is_err(), "{bad:?}");
        }
    }
}
