//! # skein-storage
//!
//! The layer every Skein role stands on. It owns everything that one role writes and another
//! reads, so that the format is defined exactly once:
//!
//! - identifiers ([`TraceId`], [`SpanId`], [`TenantId`], [`BlockId`]), parsed at the edge;
//! - the span model ([`SpanRecord`]) and its lossless mapping from and to OTLP;
//! - **block format v1**: `data.parquet` (spans sorted by trace ID), a trace-ID bloom filter,
//!   and `meta.json`, written last so that its presence makes a block visible;
//! - object storage access ([`StorageConfig`]): local disk, S3-compatible, memory;
//! - the per-tenant [`BlockList`].
//!
//! ```no_run
//! # async fn example() -> skein_storage::Result<()> {
//! use skein_storage::{BlockWriter, BlockReader, StorageConfig, TenantId, TraceId};
//!
//! let store = StorageConfig::Memory {}.open()?;
//! let tenant = TenantId::new("team-a")?;
//! let spans = Vec::new(); // spans from `skein_storage::model::spans_from_otlp`
//! let meta = BlockWriter::new(store.clone()).write(&tenant, spans).await?;
//! let reader = BlockReader::open(store, meta);
//! let trace = reader.find_trace(&TraceId::from_hex("4290b5877a9930de79bb428365398ecc")?).await?;
//! # Ok(()) }
//! ```
//!
//! The exact object layout, Parquet schema and bloom format are documented in
//! `docs/block-format.md`.

pub mod block;
pub mod blocklist;
pub mod bloom;
pub mod counting;
pub mod dedupe;
pub mod error;
pub mod ids;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod overrides;
pub mod query;
pub mod recent;
pub mod schema;
pub mod store;
pub mod synth;
pub mod tagindex;

pub use block::{BlockReader, BlockWriter, ScanFilter};
pub use blocklist::BlockList;
pub use error::{Error, Result};
pub use ids::{BlockId, SpanId, TenantId, TraceId};
pub use meta::BlockMeta;
pub use model::SpanRecord;
pub use store::{StorageConfig, Store};

/// The OTLP protobuf types Skein's model maps to and from.
pub use opentelemetry_proto::tonic as otlp;
