//! Block format v1: writing and reading `data.parquet`, `bloom` and `meta.json`.

mod attrs;
mod decode;
mod encode;
mod reader;
mod writer;

pub use decode::TraceAssembler;
pub use encode::{EncodeOptions, EncodedStats, encode_spans};
pub use reader::{BlockReader, ScanFilter};
pub use writer::{BlockWriter, EncodedBlock, WriteOptions, encode_block};
