//! Building the tag index of a block: one tantivy document per span, added trace by trace
//! in one segment, the table alongside, both packed into a bundle.

use std::collections::{BTreeMap, HashMap};
use std::fs;

use tantivy::schema::TantivyDocument;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexSettings};

use super::bundle::{TANTIVY_DIR, TRACES_ENTRY, write_bundle};
use super::fields::{PARENT_AT, PARENT_NONE, PARENT_UNKNOWN, duration_bucket, schema};
use super::table::TableBuilder;
use super::terms::{indexed_keys, type_byte, value_str, write_term};
use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::model::SpanRecord;
use crate::otlp::common::v1::KeyValue;
use crate::summary::TraceSummary;

/// Indexing memory of one build; tantivy needs at least 15 MB.
const WRITER_MEMORY: usize = 64 << 20;

/// Builds the index bundle of a block's spans. The spans may come in any order; they are
/// grouped by trace. CPU-heavy: run it on a blocking thread.
pub fn build(spans: &[&SpanRecord]) -> Result<Vec<u8>> {
    let mut by_trace: BTreeMap<TraceId, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(s.trace_id()?).or_default().push(s);
    }

    // Which span attribute keys get terms: few, short distinct values.
    let (indexed, span_keys) = indexed_keys(spans);

    let (schema, f) = schema();
    let tmp = tempfile::Builder::new()
        .prefix("skein-tagindex-")
        .tempdir()
        .map_err(|e| {
            Error::Task(format!(
                "cannot create a directory to build an index in: {e}"
            ))
        })?;
    let dir = tmp.path().join(TANTIVY_DIR);
    fs::create_dir(&dir).map_err(|e| Error::Task(e.to_string()))?;
    let mmap =
        tantivy::directory::MmapDirectory::open(&dir).map_err(|e| Error::Task(e.to_string()))?;
    // The document store holds no fields, only a position per document; zstd 19 finds the
    // pattern in them (1.0 byte per span, against 2.4 at level 3 or 9).
    let settings = IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor {
            compression_level: Some(19),
        }),
        docstore_blocksize: 1 << 20,
        ..IndexSettings::default()
    };
    let mut writer = Index::builder()
        .schema(schema)
        .settings(settings)
        .single_segment_index_writer::<TantivyDocument>(mmap, WRITER_MEMORY)
        .map_err(tantivy_err)?;

    let mut table = TableBuilder::new(span_keys);
    // Traces go in the order of their root operation, so that traces of the same shape sit
    // together: their spans share names and attribute values, and the posting lists of those
    // terms come out dense, which compresses them several times better than trace-ID order.
    let mut traces: Vec<(TraceSummary, Vec<&SpanRecord>)> = by_trace
        .into_values()
        .filter_map(|trace| Some((TraceSummary::from_span_refs(&trace)?, trace)))
        .collect();
    traces.sort_by(|(a, _), (b, _)| {
        (
            &a.root_service_name,
            &a.root_span_name,
            a.start_unix_nano,
            a.trace_id,
        )
            .cmp(&(
                &b.root_service_name,
                &b.root_span_name,
                b.start_unix_nano,
                b.trace_id,
            ))
    });
    let mut term: Vec<u8> = Vec::new();
    for (summary, mut trace) in traces {
        // Within a trace too: spans of one service and name next to each other.
        trace.sort_by(|a, b| {
            (a.service_name(), &a.span.name, a.span.start_time_unix_nano).cmp(&(
                b.service_name(),
                &b.span.name,
                b.span.start_time_unix_nano,
            ))
        });
        let parents = parent_positions(&trace);
        for (s, parent) in trace.iter().zip(parents) {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.name, &s.span.name);
            let mut add = |attrs: &[KeyValue]| {
                for kv in attrs.iter().filter(|kv| indexed.contains(&kv.key)) {
                    write_term(&mut term, &kv.key, type_byte(kv), &value_str(kv));
                    doc.add_bytes(f.span_attr, &term);
                }
            };
            add(&s.span.attributes);
            for e in &s.span.events {
                add(&e.attributes);
            }
            for l in &s.span.links {
                add(&l.attributes);
            }
            let res = table.resource(s);
            let scope = table.scope(s);
            doc.add_u64(f.res, res);
            doc.add_u64(f.scope, scope);
            doc.add_u64(f.dur, duration_bucket(s.duration_nanos()));
            let offset = s
                .span
                .start_time_unix_nano
                .saturating_sub(summary.start_unix_nano);
            doc.add_u64(f.start, duration_bucket(offset));
            let code = s.span.status.as_ref().map_or(0, |st| st.code.clamp(0, 3));
            doc.add_u64(f.ks, (s.span.kind.max(0) as u64) * 4 + code as u64);
            doc.add_u64(f.parent, parent);
            writer.add_document(doc).map_err(tantivy_err)?;
            table.operations.insert((
                s.service_name().to_owned(),
                s.span.name.clone(),
                s.span.kind,
            ));
        }
        crate::summary::count_service_calls(&trace, &mut table.calls);
        table.traces.push(summary);
    }
    writer.finalize().map_err(tantivy_err)?;

    let mut entries: Vec<(String, Vec<u8>)> = vec![(TRACES_ENTRY.to_owned(), table.encode()?)];
    let mut files: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| Error::Task(e.to_string()))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Task(e.to_string()))?;
    files.sort_by_key(|e| e.file_name());
    for e in files {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || !e.path().is_file() {
            continue;
        }
        let bytes = fs::read(e.path()).map_err(|e| Error::Task(e.to_string()))?;
        entries.push((format!("{TANTIVY_DIR}/{name}"), bytes));
    }
    Ok(write_bundle(&entries))
}

/// The `parent` value of each span of one trace's spans in the block, in their order:
/// [`PARENT_NONE`] for a root, `PARENT_AT + position` when the parent ID names exactly one
/// other span here (as the evaluator links them), [`PARENT_UNKNOWN`] otherwise, and for the
/// spans of a cycle of parent links (the evaluator cuts one link of it, which one depends on
/// spans the block may not hold).
fn parent_positions(trace: &[&SpanRecord]) -> Vec<u64> {
    let mut by_id: HashMap<&[u8], Vec<usize>> = HashMap::with_capacity(trace.len());
    for (i, s) in trace.iter().enumerate() {
        by_id.entry(s.span.span_id.as_slice()).or_default().push(i);
    }
    let mut parent: Vec<Option<usize>> = vec![None; trace.len()];
    let mut out: Vec<u64> = trace
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.span.parent_span_id.is_empty() {
                return PARENT_NONE;
            }
            let named = by_id.get(s.span.parent_span_id.as_slice());
            let mut others = named.into_iter().flatten().filter(|&&p| p != i);
            match (others.next(), others.next()) {
                (Some(&p), None) => {
                    parent[i] = Some(p);
                    PARENT_AT + p as u64
                }
                _ => PARENT_UNKNOWN,
            }
        })
        .collect();
    crate::tree::find_cycles(&parent, |cycle| {
        cycle.iter().for_each(|&p| out[p] = PARENT_UNKNOWN);
    });
    out
}

fn tantivy_err(e: tantivy::TantivyError) -> Error {
    Error::Task(format!("tag index: {e}"))
}
