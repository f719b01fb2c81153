//! # skein-testkit
//!
//! What Skein's tests and benchmarks share, and nothing the shipped binary needs (every crate
//! takes it as a dev-dependency only; `tests/dependency_rule.rs` checks it):
//!
//! - [`synth`]: synthetic traces shaped like a real microservice system, seeded;
//! - [`spans`]: small hand-made spans and traces;
//! - [`traceql`]: TraceQL queries every query path is tested on, valid, invalid and random;
//! - [`counting`]: an object store that counts and records every request;
//! - [`rng`]: the one seeded random number generator everything above uses.

#![warn(missing_docs, unreachable_pub)]

pub mod counting;
pub mod rng;
pub mod spans;
pub mod synth;
pub mod traceql;
