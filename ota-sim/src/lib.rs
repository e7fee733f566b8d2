//! Simulation helpers for ota's tests, benchmarks and demo, so each does not keep its own
//! copy: seeded generators ([`Rng`]), synthetic artifact bytes ([`noise`], [`weights`]),
//! simulated fleets ([`fleet`]), and the parts of a simulated device that do not depend on
//! how the agent is driven: its storage ([`Slots`]: staging, A/B slots, power cuts) and its
//! network ([`Network`]: chunks served in random order, some lost or corrupted); and, for
//! tests over real sockets, a fault-injecting HTTP proxy on 127.0.0.1 ([`proxy`]).
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
pub mod network;
pub mod proxy;
pub mod rng;
pub mod slots;

pub use bytes::{dense_weights, noise, weights};
pub use network::{Network, Traffic, Transit};
pub use rng::{Permutation, Rng};
pub use slots::Slots;
