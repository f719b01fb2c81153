//! One compaction job: merge some blocks of a tenant into new ones and retire the inputs.
//!
//! Order of writes (see [`crate::journal`]): journal; for each output, its ID into the
//! journal, then its data, bloom and tag index, its meta last; the journal marked complete;
//! the inputs tombstoned; the journal deleted. A reader therefore always finds every span
//! in the visible blocks: the outputs become visible before any input is retired. Between
//! the two it may find a span in an input and in an output; readers drop such exact copies.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use skein_format::block::{EncodeOptions, RowsWriter, WriteOptions};
use skein_format::{BlockMeta, BlockReader, BlockWriter, Store, TenantId};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::journal::{Journal, settle};
use crate::merge::{BatchSource, MergeStats, OutputLimits, merge};

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// The merged blocks.
    pub inputs: Vec<BlockMeta>,
    /// The blocks written.
    pub outputs: Vec<BlockMeta>,
    /// Merge counters.
    pub stats: MergeStats,
}

/// Merges `inputs` (blocks of `tenant`) into new blocks bounded by `limits`, then retires
/// the inputs. `stop` cancelled before the job commits ends it with [`Error::Stopped`] and
/// its partial outputs removed.
pub async fn compact(
    store: Store,
    tenant: TenantId,
    inputs: Vec<BlockMeta>,
    limits: OutputLimits,
    zstd_level: i32,
    stop: CancellationToken,
) -> Result<JobReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let journal = Journal::new(&tenant, inputs.iter().map(|m| m.block_id).collect(), now);
    journal.write(&store).await?;
    let result = merge_and_write(
        store.clone(),
        journal.clone(),
        inputs.clone(),
        limits,
        zstd_level,
        &stop,
    )
    .await
    .and_then(|(j, outputs, stats)| {
        // The last moment to give up: after this, the inputs are retired.
        if stop.is_cancelled() {
            return Err(Error::Stopped);
        }
        Ok((j, outputs, stats))
    });
    let (mut journal, outputs, stats) = match result {
        Ok(r) => r,
        Err(e) => {
            // Undo what was written; if that fails too, the next cycle's repair does it.
            if let Err(undo) = undo(&store, &journal).await {
                tracing::warn!(%tenant, error = %undo, "cannot undo a failed compaction yet; the next cycle will");
            }
            return Err(e);
        }
    };
    journal.complete = true;
    journal.write(&store).await?;
    settle(&store, &journal).await?;
    Ok(JobReport {
        inputs,
        outputs,
        stats,
    })
}

/// Undoes a job that failed: re-reads its journal (the blocking merge may have added
/// outputs to it) and settles it as incomplete.
async fn undo(store: &Store, journal: &Journal) -> Result<()> {
    let current = crate::journal::read_journals(store, &journal.tenant)
        .await?
        .into_iter()
        .find(|j| j.job_id == journal.job_id);
    if let Some(mut j) = current {
        j.complete = false;
        settle(store, &j).await?;
    }
    Ok(())
}

async fn merge_and_write(
    store: Store,
    mut journal: Journal,
    inputs: Vec<BlockMeta>,
    limits: OutputLimits,
    zstd_level: i32,
    stop: &CancellationToken,
) -> Result<(Journal, Vec<BlockMeta>, MergeStats)> {
    let handle = tokio::runtime::Handle::current();
    let stop = stop.clone();
    let spans_in: u64 = inputs.iter().map(|m| m.span_count).sum();
    let bytes_in: u64 = inputs.iter().map(|m| m.data_size).sum();
    let bytes_per_span = bytes_in as f64 / spans_in.max(1) as f64;
    let opts = WriteOptions {
        compaction_level: inputs
            .iter()
            .map(|m| m.compaction_level)
            .max()
            .unwrap_or(0)
            .saturating_add(1),
        replaces: inputs.iter().map(|m| m.block_id).collect(),
        tag_index: true,
        encode: EncodeOptions {
            zstd_level,
            ..Default::default()
        },
    };
    // The whole merge runs on a blocking thread: decoding, merging, encoding and index
    // building are CPU work. Object-store I/O is driven from there through the runtime.
    tokio::task::spawn_blocking(move || {
        // One source per sorted run, reading its blocks one after another: the merge holds
        // one chunk per run, however many blocks a run has.
        let sources: Vec<(String, Box<dyn BatchSource>)> = crate::plan::runs(&inputs)
            .into_iter()
            .map(|run| {
                let name = format!("run of {} block(s) from {}", run.len(), run[0].block_id);
                let (store, h) = (Arc::clone(&store), handle.clone());
                let mut blocks = run.into_iter();
                let mut ordinal = 0u64;
                let mut stream = None;
                let source: Box<dyn BatchSource> = Box::new(move || {
                    loop {
                        if stream.is_none() {
                            let Some(m) = blocks.next() else {
                                return Ok(None);
                            };
                            ordinal += 1;
                            stream =
                                Some(BlockReader::open(Arc::clone(&store), m).row_group_batches());
                        }
                        let s = stream.as_mut().expect("set above");
                        match h.block_on(s.try_next()).map_err(Error::from)? {
                            Some(batch) => return Ok(Some((ordinal, batch))),
                            None => stream = None,
                        }
                    }
                });
                (name, source)
            })
            .collect();
        let writer = BlockWriter::new(Arc::clone(&store));
        let tenant = journal.tenant.clone();
        let mut outputs = Vec::new();
        let stats = merge(
            sources,
            limits,
            bytes_per_span,
            &|| stop.is_cancelled(),
            &|| Ok(RowsWriter::new(&opts.encode, opts.tag_index)?),
            &mut |rows| {
                let block = rows.finish_block(&tenant, &opts)?;
                journal.outputs.push(block.meta.block_id);
                let meta = handle.block_on(async {
                    journal.write(&store).await?;
                    Ok::<_, Error>(writer.upload(block).await?)
                })?;
                outputs.push(meta);
                Ok(())
            },
        )?;
        Ok((journal, outputs, stats))
    })
    .await?
}
