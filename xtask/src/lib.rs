//! `cargo xtask`: the project's tasks that are not a crate's build.
//!
//! `cargo xtask install` builds `libota` and installs it as a C library is installed, the
//! way cargo-c's `cargo cinstall` would (without compiling cargo-c in CI):
//!
//! ```text
//! PREFIX/include/ota.h                      the declarations (the checked-in header)
//! PREFIX/include/ota_build.h                this build's version and feature macros
//! PREFIX/LIBDIR/libota.so.X.Y.Z             the shared library, SONAME libota.so.ABI
//! PREFIX/LIBDIR/libota.so.ABI -> .so.X.Y.Z  (ABI: 0.MINOR while the major version is 0)
//! PREFIX/LIBDIR/libota.so -> libota.so.ABI  for `-lota`
//! PREFIX/LIBDIR/libota.a                    the static library
//! PREFIX/LIBDIR/pkgconfig/ota.pc            `pkg-config --cflags --libs ota`
//! PREFIX/LIBDIR/cmake/ota/otaConfig.cmake   `find_package(ota)`: ota::ota, ota::ota_static
//! PREFIX/LIBDIR/cmake/ota/otaConfigVersion.cmake
//! ```
//!
//! [`build`] runs cargo and finds what it built; [`install`] lays the files out. The tests
//! call both directly.
#![deny(missing_docs)]

mod compile;
mod install;
mod metadata;

pub use compile::{Built, Options, build};
pub use install::{Installed, Layout, install};
