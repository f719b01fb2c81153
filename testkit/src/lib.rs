//! # skein-testkit
//!
//! What Skein's tests and benchmarks share, and nothing the shipped binary needs (every crate
//! takes it as a dev-dependency only; `tests/dependency_rule.rs` checks it):
//!
//! - [`synth`]: synthetic traces shaped like a real microservice system, seeded;
//! - [`spans`]: small hand-made spans and traces;
//! - [`counting`]: an object store that counts and records every request;
//! - [`rng`]: the one seeded random number generator everything above uses.

#![warn(missing_docs, unreachable_pub)]

pub mod counting;
pub mod rng;
pub mod spans;
pub mod synth;
