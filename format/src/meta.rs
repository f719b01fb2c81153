//! `meta.json`: the description of a block, written last so that its presence makes the
//! block visible.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{BlockId, TenantId, TraceId};
use crate::version::{FormatVersion, IndexLayout};

/// The trace-ID range and row count of one row group of `data.parquet`. Kept in the meta so a
/// lookup can rule a block out, or pick its row group, before reading the Parquet footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupMeta {
    /// Smallest trace ID in the row group.
    #[serde(with = "hex_trace_id")]
    pub min_trace_id: TraceId,
    /// Largest trace ID in the row group.
    #[serde(with = "hex_trace_id")]
    pub max_trace_id: TraceId,
    /// Rows (spans).
    pub rows: u64,
}

impl RowGroupMeta {
    /// True when `id` lies within this row group's trace-ID range.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.min_trace_id <= *id && *id <= self.max_trace_id
    }
}

/// Which side objects a block has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockFiles {
    /// `bloom` is present; its number of 32-byte filter blocks.
    pub bloom_blocks: Option<u32>,
    /// `index` (the tag index bundle) is present; its size in bytes.
    pub index_size: Option<u64>,
    /// The layout of `index` ([`IndexLayout`]); absent in metas written before it was
    /// recorded, whose index layout is found by reading the bundle's magic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_layout: Option<u32>,
    /// `rows` (the row index, see [`crate::rowindex`]) is present; its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_index_size: Option<u64>,
}

/// The content of `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Block format version; readers refuse versions they do not know.
    pub format_version: u32,
    /// The block.
    pub block_id: BlockId,
    /// The tenant owning it.
    pub tenant: TenantId,
    /// Earliest span start, ns since the Unix epoch.
    pub min_start_unix_nano: u64,
    /// Latest span start.
    pub max_start_unix_nano: u64,
    /// Latest span end: the block's newest data, used by retention.
    pub max_end_unix_nano: u64,
    /// Distinct traces.
    pub trace_count: u64,
    /// Spans (rows).
    pub span_count: u64,
    /// Size of `data.parquet` in bytes.
    pub data_size: u64,
    /// Row groups of `data.parquet`, in file order.
    pub row_groups: Vec<RowGroupMeta>,
    /// 0 for blocks cut by an ingester, n+1 for a compaction of level-n blocks.
    pub compaction_level: u32,
    /// Blocks this one replaces (compaction inputs).
    #[serde(default)]
    pub replaces: Vec<BlockId>,
    /// Side objects present.
    pub files: BlockFiles,
    /// When the block was written, seconds since the epoch.
    pub created_at_unix_secs: u64,
}

impl BlockMeta {
    /// Parses and checks a `meta.json`.
    pub fn from_json(bytes: &[u8], location: &str) -> Result<Self> {
        // Look at the version first, so a future format gives a clear message rather than a
        // confusing field error.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt("meta.json", location, e))?;
        FormatVersion::from_number(v.format_version, "meta.json", location)?;
        let meta: BlockMeta =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt("meta.json", location, e))?;
        Ok(meta)
    }

    /// Serializes to JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The format version the block's objects were written in (checked by
    /// [`from_json`](Self::from_json)).
    pub fn version(&self) -> Result<FormatVersion> {
        FormatVersion::from_number(self.format_version, "meta.json", &self.block_id.to_string())
    }

    /// What the meta says of the layout of the block's tag index: `Some(true)` when it is the
    /// current one, `Some(false)` when it is another, `None` when the block has no index or
    /// the meta does not record the layout.
    pub fn index_is_current(&self) -> Option<bool> {
        self.files.index_size?;
        let layout = self.files.index_layout?;
        Some(IndexLayout(layout) == IndexLayout::current())
    }

    /// True when some span of the block may start within `[start, end]` (ns, inclusive).
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.min_start_unix_nano <= end && self.max_end_unix_nano >= start
    }
}

mod hex_trace_id {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ids::TraceId;

    pub(super) fn serialize<S: Serializer>(id: &TraceId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TraceId, D::Error> {
        let s = String::deserialize(d)?;
        TraceId::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> BlockMeta {
        BlockMeta {
            format_version: FormatVersion::CURRENT.number(),
            block_id: BlockId::new(),
            tenant: TenantId::new("t").unwrap(),
            min_start_unix_nano: 1,
            max_start_unix_nano: 2,
            max_end_unix_nano: 3,
            trace_count: 1,
            span_count: 2,
            data_size: 100,
            row_groups: vec![RowGroupMeta {
                min_trace_id: TraceId([1; 16]),
                max_trace_id: TraceId([2; 16]),
                rows: 2,
            }],
            compaction_level: 0,
            replaces: vec![],
            files: BlockFiles {
                bloom_blocks: Some(1),
                index_size: None,
                index_layout: None,
                row_index_size: None,
            },
            created_at_unix_secs: 0,
        }
    }

    #[test]
    fn json_round_trip() {
        let m = meta();
        assert_eq!(BlockMeta::from_json(&m.to_json(), "x").unwrap(), m);
    }

    #[test]
    fn corrupt_and_future_metas_are_typed_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"{",
            b"{\"format_version\": 1}",
            b"{\"format_version\": 99, \"anything\": true}",
            b"[1,2,3]",
        ];
        for c in cases {
            let e = BlockMeta::from_json(c, "t/b/meta.json").unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Corrupt {
                        what: "meta.json",
                        ..
                    }
                ),
                "{e}"
            );
        }
        let mut truncated = meta().to_json();
        truncated.truncate(truncated.len() / 2);
        assert!(BlockMeta::from_json(&truncated, "x").is_err());
        let e = BlockMeta::from_json(b"{\"format_version\": 99}", "x").unwrap_err();
        assert!(e.to_string().contains("version 99 is not supported"), "{e}");
    }
}
