//! The format crate's integration tests, one binary: blocks written and read back through an
//! object store, real fixtures, pyarrow reading a block, bloom and tag index behaviour.

mod bloom_remote;
mod fixtures;
mod io_budget;
mod model;
mod parts;
mod pyarrow;
mod roundtrip;
mod tagindex;
mod value_bloom;
mod wire;
