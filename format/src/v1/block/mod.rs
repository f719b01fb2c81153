//! `data.parquet` of format v1: encoding spans into Arrow/Parquet and back, and the reader
//! and writer of a whole block (data, bloom and meta).

mod attrs;
mod decode;
mod encode;
mod parts;
mod reader;
pub(crate) mod rows;
pub(crate) mod source;
mod writer;

pub use decode::TraceAssembler;
pub use encode::{EncodeOptions, EncodedStats, encode_spans};
pub use parts::{Keys, SpanParts};
pub use reader::{BlockReader, ScanFilter, ValueFilterCache};
pub use rows::{
    RowsWriter, decode_spans, has_current_schema, may_hold_copies, spans_to_batch, trace_runs,
};
pub use writer::{
    BlockWriter, EncodedBlock, WriteOptions, encode_block, encode_block_wire, finish_block,
};
