//! The query engine: what answers queries, independent of any HTTP API.
//!
//! [`TraceLookup`](lookup::TraceLookup) is its entry point. It reads a tenant's blocks
//! through the block list (`skein_storage::BlockList`) and merges in what the ingesters hold
//! that may not be in a visible block yet (`skein_query::recent::RecentData`: the ingester of
//! this process, or [`remote`] ones).
//!
//! - [`lookup`]: trace by ID, a funnel in which each step avoids I/O the next would make
//!   unnecessary, and the merge of a trace's pieces with identical copies removed.
//! - [`search`]: TraceQL search (the newest matching traces, each with the summary of the
//!   whole trace and the spansets it yields); compacted blocks prune with their tag index
//!   ([`pushdown`]), other blocks are scanned.
//! - [`listings`]: tags, tag values (narrowed by a TraceQL query), operations and calls
//!   between services.
//! - [`pushdown`]: what a tag index can decide of a TraceQL condition.
//! - [`tagcache`]: the tag indexes of compacted blocks, downloaded once and unpacked on local
//!   disk.
//! - [`remote`]: ingesters in other processes, over their internal API, and the record of
//!   those that did not answer during one request.
//!
//! Searches come in as `skein_query::Search` (TraceQL; legacy searches are translated by
//! `skein_query::TraceQuery::to_search`) and answers go out as span records, trace summaries
//! and spansets: the HTTP APIs translate their parameters and shapes to and from these. Failures are [`crate::Error`].

pub mod listings;
pub mod lookup;
pub mod pushdown;
pub mod remote;
pub mod search;
pub mod tagcache;
