//! The tenant index object (`<tenant>/index.json.zst`): the metas of a tenant's visible
//! blocks in one zstd-compressed JSON document, so a block list is one read instead of one
//! per block. Written by the compactor, read by every block list.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::BlockMeta;
use crate::version::FormatVersion;

/// The tenant index document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantIndex {
    /// The format version ([`FormatVersion::number`]).
    pub version: u32,
    /// When it was written, seconds since the epoch.
    pub created_at_unix_secs: u64,
    /// Metas of the visible blocks at that time.
    pub blocks: Vec<BlockMeta>,
}

impl TenantIndex {
    /// A document of the current version.
    pub fn new(created_at_unix_secs: u64, blocks: Vec<BlockMeta>) -> Self {
        TenantIndex {
            version: FormatVersion::CURRENT.number(),
            created_at_unix_secs,
            blocks,
        }
    }

    /// The object's bytes: JSON, zstd level 3.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Task(e.to_string()))?;
        zstd::encode_all(json.as_slice(), 3).map_err(|e| Error::Task(e.to_string()))
    }

    /// Parses the object found at `location`; a version this build does not read is an error.
    pub fn decode(bytes: &[u8], location: &str) -> Result<Self> {
        let json =
            zstd::decode_all(bytes).map_err(|e| Error::corrupt("tenant index", location, e))?;
        let doc: TenantIndex = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt("tenant index", location, e))?;
        FormatVersion::from_number(doc.version, "tenant index", location)?;
        Ok(doc)
    }
}
