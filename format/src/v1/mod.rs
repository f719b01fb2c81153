//! Format version 1: the code that writes and reads every artefact of this version.
//!
//! - [`block`]: `data.parquet` (encoding, decoding, the block reader and writer), with its
//!   Arrow schema in [`schema`];
//! - [`bloom`]: the trace-ID bloom filter (`SKBF`, version byte 1);
//! - [`tagindex`]: the tag index bundle (`SKTAGIX5`);
//! - [`tenant_index`]: the tenant index object (`version: 1`);
//! - [`tombstone`]: the marker that retires a block;
//! - [`wal`]: the framing of the ingester's write-ahead log segments (`SKWAL`, version byte 1).
//!
//! `meta.json` (`format_version: 1`) is described by [`crate::meta`], which every version
//! shares: it is what readers dispatch on.

pub mod block;
pub mod bloom;
pub mod rowindex;
pub mod schema;
pub mod tagindex;
pub mod tenant_index;
pub mod tombstone;
pub mod wal;
