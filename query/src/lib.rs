//! # skein-query
//!
//! What a query means, defined once for every place that answers one:
//!
//! - [`search`]: the model of "find traces like this" ([`TraceQuery`]) and when a trace
//!   matches it, shared by the querier (over blocks) and the ingesters (over recent data);
//! - [`plan`]: a search as every executor runs it ([`Search`]): a TraceQL query, its window
//!   and limit, when a whole trace matches, and the condition every executor prunes with;
//! - [`recent`]: the querier ↔ ingester contract ([`RecentData`]), the trait an in-process
//!   ingester implements and the internal HTTP API a remote one serves.

#![warn(missing_docs, unreachable_pub)]

pub mod error;
pub mod plan;
pub mod recent;
pub mod search;

pub use error::{Error, Result};
pub use plan::{Search, WindowOn};
pub use recent::RecentData;
pub use search::{Semantics, TraceQuery};
