//! The tombstone marker (`tombstone.json`) that retires a block: written by the compactor
//! (after a merge, or by retention) before the block's objects are deleted.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Contents of a tombstone marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    /// When the block was retired, seconds since the epoch.
    pub created_at_unix_secs: u64,
    /// Why: "compacted" or "retention".
    pub reason: String,
}

impl Tombstone {
    /// The object's bytes (JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the object found at `location`.
    pub fn decode(bytes: &[u8], location: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt("tombstone", location, e))
    }
}
