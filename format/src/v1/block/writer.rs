//! Writing a block: `data.parquet` and `bloom` first, `meta.json` last.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};

use super::encode::{EncodeOptions, EncodedStats, encode_span_refs};
use super::source::SpanSource;
use crate::bloom::BloomFilter;
use crate::error::{Error, Result};
use crate::ids::{BlockId, TenantId};
use crate::layout::{Store, block_object, names};
use crate::meta::{BlockFiles, BlockMeta};
use crate::model::SpanRecord;
use crate::rowindex::RowIndexBuilder;
use crate::version::FormatVersion;

/// How to write a block.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Parquet tuning.
    pub encode: EncodeOptions,
    /// Compaction level recorded in the meta (0 for ingester blocks).
    pub compaction_level: u32,
    /// Blocks the new one replaces (compaction inputs), recorded in the meta.
    pub replaces: Vec<BlockId>,
    /// Also build the block's tag index (`index`), as the compactor does.
    pub tag_index: bool,
}

/// A block encoded in memory, not yet uploaded.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// Its meta, complete but for nothing: sizes are known after encoding.
    pub meta: BlockMeta,
    /// `data.parquet`.
    pub data: Bytes,
    /// `bloom`.
    pub bloom: Bytes,
    /// `index`, the tag index bundle, when asked for.
    pub index: Option<Bytes>,
    /// `rows`, the row index, which every block without a tag index has.
    pub rows: Option<Bytes>,
}

/// Encodes spans into a block. CPU-heavy: run it on a blocking thread.
pub fn encode_block(
    tenant: &TenantId,
    spans: Vec<SpanRecord>,
    opts: &WriteOptions,
) -> Result<EncodedBlock> {
    encode_block_refs(tenant, spans.iter().collect(), opts)
}

/// Like [`encode_block`], over borrowed spans.
fn encode_block_refs(
    tenant: &TenantId,
    spans: Vec<&SpanRecord>,
    opts: &WriteOptions,
) -> Result<EncodedBlock> {
    if spans.is_empty() {
        return Err(Error::invalid("block", "a block needs at least one span"));
    }
    let index = match opts.tag_index {
        true => Some(Bytes::from(crate::tagindex::build(&spans)?)),
        false => None,
    };
    encode_sources(tenant, spans, opts, index)
}

/// Encodes spans still in the protobuf bytes they arrived in (an ingester's held requests,
/// read with [`read_export_request`](crate::wire::read_export_request)) into a block,
/// without decoding them into owned spans: the same block [`encode_block`] writes of the
/// decoded spans. Such a block has no tag index (`opts.tag_index` is refused).
pub fn encode_block_wire(
    tenant: &TenantId,
    spans: Vec<&crate::wire::WireSpan<'_>>,
    opts: &WriteOptions,
) -> Result<EncodedBlock> {
    if spans.is_empty() {
        return Err(Error::invalid("block", "a block needs at least one span"));
    }
    if opts.tag_index {
        return Err(Error::invalid(
            "block",
            "a block encoded from protobuf bytes has no tag index",
        ));
    }
    encode_sources(tenant, spans, opts, None)
}

fn encode_sources<S: SpanSource>(
    tenant: &TenantId,
    spans: Vec<&S>,
    opts: &WriteOptions,
    index: Option<Bytes>,
) -> Result<EncodedBlock> {
    // A block without a tag index (an ingester's) gets a row index from its columns.
    let mut rows = index.is_none().then(RowIndexBuilder::new);
    let (data, stats) = encode_span_refs(spans, &opts.encode, rows.as_mut())?;
    let mut block = assemble_block(tenant, data, stats, opts, index);
    if let Some(rows) = rows {
        let bytes = rows.finish()?;
        block.meta.files.row_index_size = Some(bytes.len() as u64);
        block.rows = Some(Bytes::from(bytes));
    }
    Ok(block)
}

/// A block of `data.parquet` already encoded (by a [`RowsWriter`](super::RowsWriter)): its
/// bloom filter and meta, with the tag index given.
pub fn finish_block(
    tenant: &TenantId,
    data: Bytes,
    stats: EncodedStats,
    opts: &WriteOptions,
    index: Option<Bytes>,
) -> Result<EncodedBlock> {
    if stats.span_count == 0 {
        return Err(Error::invalid("block", "a block needs at least one span"));
    }
    Ok(assemble_block(tenant, data, stats, opts, index))
}

fn assemble_block(
    tenant: &TenantId,
    data: Bytes,
    stats: EncodedStats,
    opts: &WriteOptions,
    index: Option<Bytes>,
) -> EncodedBlock {
    // Compacted blocks live long and every search asks their filters: a lower rate.
    let bits = match opts.compaction_level {
        0 => crate::bloom::BITS_PER_KEY,
        _ => crate::bloom::COMPACTED_BITS_PER_KEY,
    };
    let mut bloom = BloomFilter::with_capacity_bits(stats.trace_ids.len(), bits);
    for id in &stats.trace_ids {
        bloom.insert(id);
    }
    let meta = BlockMeta {
        format_version: FormatVersion::CURRENT.number(),
        block_id: BlockId::new(),
        tenant: tenant.clone(),
        min_start_unix_nano: stats.min_start_unix_nano,
        max_start_unix_nano: stats.max_start_unix_nano,
        max_end_unix_nano: stats.max_end_unix_nano,
        trace_count: stats.trace_count,
        span_count: stats.span_count,
        data_size: data.len() as u64,
        row_groups: stats.row_groups,
        compaction_level: opts.compaction_level,
        replaces: opts.replaces.clone(),
        files: BlockFiles {
            bloom_blocks: Some(bloom.num_blocks()),
            index_size: index.as_ref().map(|i| i.len() as u64),
            index_layout: index
                .as_ref()
                .map(|_| FormatVersion::CURRENT.index_layout().0),
            row_index_size: None,
        },
        created_at_unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    EncodedBlock {
        meta,
        data,
        bloom: Bytes::from(bloom.to_bytes()),
        index,
        rows: None,
    }
}

/// Writes blocks to object storage.
#[derive(Debug, Clone)]
pub struct BlockWriter {
    store: Store,
}

impl BlockWriter {
    /// A writer over `store`.
    pub fn new(store: Store) -> Self {
        BlockWriter { store }
    }

    /// Encodes `spans` (off the async runtime) and uploads the block. Returns its meta.
    pub async fn write(&self, tenant: &TenantId, spans: Vec<SpanRecord>) -> Result<BlockMeta> {
        self.write_with(tenant, spans, WriteOptions::default())
            .await
    }

    /// Like [`write`](Self::write), with options.
    pub async fn write_with(
        &self,
        tenant: &TenantId,
        spans: Vec<SpanRecord>,
        opts: WriteOptions,
    ) -> Result<BlockMeta> {
        let tenant_owned = tenant.clone();
        let block = tokio::task::spawn_blocking(move || encode_block(&tenant_owned, spans, &opts))
            .await??;
        self.upload(block).await
    }

    /// Uploads an encoded block: data, bloom and tag index first, the meta last, so that a reader that
    /// sees the meta finds everything it describes.
    pub async fn upload(&self, block: EncodedBlock) -> Result<BlockMeta> {
        let EncodedBlock {
            meta,
            data,
            bloom,
            index,
            rows,
        } = block;
        let (tenant, id) = (&meta.tenant, meta.block_id);
        let (data_path, bloom_path) = (
            block_object(tenant, id, names::DATA),
            block_object(tenant, id, names::BLOOM),
        );
        let data_put = self.store.put(&data_path, PutPayload::from_bytes(data));
        let bloom_put = self.store.put(&bloom_path, PutPayload::from_bytes(bloom));
        let index_put = async {
            match index {
                Some(bytes) => {
                    let path = block_object(tenant, id, names::INDEX);
                    self.store
                        .put(&path, PutPayload::from_bytes(bytes))
                        .await
                        .map(|_| ())
                }
                None => Ok(()),
            }
        };
        let rows_put = async {
            match rows {
                Some(bytes) => {
                    let path = block_object(tenant, id, names::ROWS);
                    self.store
                        .put(&path, PutPayload::from_bytes(bytes))
                        .await
                        .map(|_| ())
                }
                None => Ok(()),
            }
        };
        futures::try_join!(data_put, bloom_put, index_put, rows_put)?;
        self.store
            .put(
                &block_object(tenant, id, names::META),
                PutPayload::from(meta.to_json()),
            )
            .await?;
        Ok(meta)
    }
}
