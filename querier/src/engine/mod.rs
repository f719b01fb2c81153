//! The query engine: what answers queries, independent of any HTTP API.
//!
//! [`TraceLookup`](lookup::TraceLookup) is its entry point. It reads a tenant's blocks
//! through the block list (`skein_storage::BlockList`) and merges in what the ingesters hold
//! that may not be in a visible block yet (`skein_query::recent::RecentData`: the ingester of
//! this process, or [`remote`] ones).
//!
//! - [`lookup`]: trace by ID, a funnel in which each step avoids I/O the next would make
//!   unnecessary, and the merge of a trace's pieces with identical copies removed.
//! - [`search`]: search (the newest matching traces, each with the summary of the whole
//!   trace), and the listings of tags, tag values, operations and calls between services;
//!   compacted blocks answer from their tag index, other blocks are scanned.
//! - [`tagcache`]: the tag indexes of compacted blocks, downloaded once and unpacked on local
//!   disk.
//! - [`remote`]: ingesters in other processes, over their internal API, and the record of
//!   those that did not answer during one request.
//!
//! Queries come in as `skein_query::search::TraceQuery` and answers go out as span records
//! and trace summaries: the HTTP APIs translate their parameters and shapes to and from
//! these. Failures are [`crate::Error`].

pub mod lookup;
pub mod remote;
pub mod search;
pub mod tagcache;
