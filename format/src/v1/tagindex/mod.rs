//! The tag index of a block: a tantivy index of its spans plus a table of its traces,
//! resources and scopes, stored as one object (`index`) next to `data.parquet`.
//!
//! It answers search, tag-name and tag-value listings without reading the Parquet data, and
//! says so when it cannot (the caller then scans the block):
//!
//! - **one tantivy document per span**, added trace by trace in one segment, so document `d`
//!   belongs to the trace whose document range holds `d`. Indexed terms: the span's name
//!   (`name`) and its attributes (`span_attr`: span, event and link attributes) of keys with
//!   few distinct values in the block (at most [`MAX_INDEXED_VALUES`] or one per
//!   [`SPANS_PER_INDEXED_VALUE`] spans, each at most [`MAX_TERM_VALUE`] bytes). Keys with
//!   more (request IDs, full URLs) are listed in the table as not indexed: a query or a
//!   value listing on them scans the block. Fast fields: the span's resource and scope (their
//!   position in the table), its duration as a 10-bit logarithmic bucket (`dur`, 16 buckets
//!   per power of two), its start relative to its trace's start in the same buckets
//!   (`start`), its kind and status code (`ks`, kind × 4 + code), and its parent among the
//!   trace's documents (`parent`: a root, a position, or unknown in this block).
//! - **the table** (`traces.bin`, zstd): per trace, in document order, its ID and the summary
//!   of its spans in this block (start, duration, root, span, error and orphan counts per
//!   service); the distinct resources and scopes with their attributes; the attribute keys
//!   per scope (span keys marked indexed or not); the (service, span name, kind) triples; the
//!   calls between services (parent and child span within a trace of the block).
//!
//! An attribute term is the key's length (LEB128), the key, one type byte (`s` string, `i`
//! int, `f` double, `b` bool, `o` anything else) and the value's string form, as tags compare
//! it.
//!
//! A search prunes with it ([`IndexCondition`]): the traces with a span that may satisfy a
//! condition, a superset (a duration in the same bucket as a bound, an event attribute taken
//! for a span attribute); the caller decides each on its spans. So answers stay exact.
//!
//! The bundle is a small container: the magic `SKTAGIX5`, the number of entries (u32 LE),
//! each entry's name (u16 LE length + UTF-8) and size (u64 LE), then the entries' bytes in
//! that order. Entries are `traces.bin` and the tantivy index files under `tantivy/`.
//!
//! The parts:
//!
//! - `terms`: which span attribute keys get terms, and how an attribute becomes a term (and
//!   a table entry);
//! - `fields`: the tantivy schema (one document per span) and the logarithmic buckets of its
//!   `dur` and `start` fast fields;
//! - `build`: [`build`](fn@build), which turns a block's spans into a bundle;
//! - `table`: the table (`traces.bin`): its builder, encoder and decoder;
//! - `bundle`: the container, written by [`build`](fn@build) and read by [`unpack`];
//! - `query`: [`TagIndex`], the opened index, and the listings it answers ([`Scope`]);
//! - `condition`: pruning for richer queries ([`IndexCondition`]): the traces with a span that
//!   may satisfy a condition, a superset the caller decides on the spans, and of those the
//!   traces that may meet structural relations ([`IndexRelation`]);
//! - `cursor`: LEB128 writing and the byte cursor the table and the bundle are read with.

mod build;
mod bundle;
mod condition;
pub(crate) mod cursor;
mod fields;
mod query;
mod table;
mod terms;

pub use build::build;
pub use bundle::unpack;
pub use condition::{AttrType, IndexCondition, IndexRelation, RelationOp};
pub use fields::{bucket_range, duration_bucket};
pub use query::{Scope, TagIndex};
pub use terms::{MAX_INDEXED_VALUES, MAX_TERM_VALUE, SPANS_PER_INDEXED_VALUE, type_name};
