//! # skein-querier
//!
//! The read path of Skein: every way of getting traces back out of object storage and the
//! ingesters, and the HTTP APIs that serve them.
//!
//! - [`engine`] answers queries, independent of any HTTP API: trace by ID ([`lookup`]), search
//!   and the tag, operation and dependency listings ([`search`]), the downloaded tag indexes of
//!   compacted blocks ([`tagcache`]) and the client of ingesters in other processes
//!   ([`remote`]). Every query merges the ingesters' recent data with what the blocks hold.
//! - `http` serves the engine: the Tempo API (Grafana's Tempo data source), the Jaeger query
//!   APIs v1 and v3 (Jaeger UI, Grafana's Jaeger data source), the admin API (per-tenant
//!   overrides), readiness, build info and metrics, and the embedded web UI; each API family
//!   answers errors in its own shape, and a response that left out an unreachable ingester is
//!   marked partial. [`run`] binds the API server and the Jaeger server ([`Listeners`]) and
//!   serves them until shutdown.
//! - [`QuerierConfig`]: the `[querier]` section of the configuration.
//! - [`metrics`]: the querier's Prometheus metrics.
//! - [`Error`]: what stops the querier role or fails a query.
//!
//! The engine's modules are also reachable at the crate root (`skein_querier::lookup`, …).

#![warn(missing_docs, unreachable_pub)]

mod config;
pub mod engine;
mod error;
mod http;
pub mod metrics;

pub use config::QuerierConfig;
pub use engine::{listings, lookup, remote, search, tagcache};
pub use error::{Error, Result};
pub use http::api::BuildInfo;
pub use http::server::{Listeners, run};
