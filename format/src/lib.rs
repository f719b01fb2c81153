//! # skein-format
//!
//! Everything Skein keeps as bytes, defined once and versioned as one unit:
//!
//! - identifiers ([`TraceId`], [`SpanId`], [`TenantId`], [`BlockId`]), parsed at the edge;
//! - the span model ([`SpanRecord`]) and its lossless mapping from and to OTLP ([`model`]),
//!   what a search shows of a trace ([`summary`]) and which spans are copies ([`dedupe`]);
//! - the objects of a block and where they live ([`layout`]): `data.parquet` (spans sorted by
//!   trace ID, [`block`] and [`schema`]), the trace-ID [`bloom`] filter, the [`tagindex`], and
//!   `meta.json` ([`meta`]), written last so that its presence makes a block visible;
//! - the other persisted objects: the [`tenant_index`], the block [`tombstone`], the framing
//!   of the ingester's write-ahead log segments ([`wal`]).
//!
//! Every artefact carries the [`FormatVersion`] it was written in; readers dispatch on it and
//! each version's code lives in its own module ([`v1`]). The modules re-exported at the top
//! ([`block`], [`bloom`], …) are the current version's. The bytes are documented in
//! `docs/block-format.md`, and `tests/golden/` holds artefacts of every version that tests
//! read back.
//!
//! ```no_run
//! # async fn example() -> skein_format::Result<()> {
//! use std::sync::Arc;
//!
//! use skein_format::{BlockReader, BlockWriter, Store, TenantId, TraceId};
//!
//! let store: Store = Arc::new(object_store::memory::InMemory::new());
//! let tenant = TenantId::new("team-a")?;
//! let spans = Vec::new(); // spans from `skein_format::model::spans_from_otlp`
//! let meta = BlockWriter::new(store.clone()).write(&tenant, spans).await?;
//! let reader = BlockReader::open(store, meta);
//! let trace = reader.find_trace(&TraceId::from_hex("4290b5877a9930de79bb428365398ecc")?).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod dedupe;
pub mod error;
pub mod ids;
pub mod layout;
pub mod meta;
pub mod model;
pub mod summary;
pub mod tree;
pub mod v1;
pub mod version;
pub mod wire;

pub use error::{Error, Result};
pub use ids::{BlockId, SpanId, TenantId, TraceId};
pub use layout::Store;
pub use meta::BlockMeta;
pub use model::SpanRecord;
pub use v1::block::{BlockReader, BlockWriter, ScanFilter};
pub use v1::{block, bloom, rowindex, schema, tagindex, tenant_index, tombstone, wal};
pub use version::{FormatVersion, IndexLayout};

/// The OTLP protobuf types Skein's model maps to and from.
pub use opentelemetry_proto::tonic as otlp;
