//! Simulation helpers for ota's tests, benchmarks and demo, so each does not keep its own
//! copy: seeded generators ([`Rng`]), synthetic artifact bytes ([`noise`], [`weights`]) and
//! simulated fleets ([`fleet`]).
//!
//! Everything is a deterministic function of its seed, the same on every platform: a failing
//! test or a benchmark input can be reproduced from the seed it printed.
//!
//! This is a development crate (`publish = false`): nothing here is fit for production keys
//! or randomness.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bytes;
pub mod fleet;
pub mod rng;

pub use bytes::{dense_weights, noise, weights};
pub use rng::Rng;
