//! The `[querier]` section of the configuration ([`QuerierConfig`]) and the remote ingester
//! clients it describes.

use serde::{Deserialize, Serialize};

use crate::engine::remote;

/// The `[querier]` section of the configuration: how often block lists are re-read, the
/// on-disk cache of tag indexes, the ingesters in other processes and how long to wait for
/// them, and the admin API's token. Unknown keys in it are rejected. The addresses the querier
/// serves on are process-wide and live in `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerierConfig {
    /// How often a tenant's block list is re-read from object storage. Blocks written since
    /// are found through the ingesters meanwhile, so it must stay below the ingesters'
    /// `complete_block_timeout`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub block_list_refresh: std::time::Duration,
    /// Where downloaded tag indexes of compacted blocks are unpacked (a directory per
    /// process, locked while it runs; unlocked ones left by a crash are removed at start).
    /// Default `./data/index-cache`.
    pub index_cache_dir: std::path::PathBuf,
    /// Most bytes of unpacked tag indexes kept on disk; the least recently used go first.
    /// Default 1 GiB.
    pub index_cache_max_bytes: u64,
    /// Ingesters in other processes whose recent data queries merge in, as `host:port` of
    /// their internal API (`ingester.internal_listen`). A name that resolves to several
    /// addresses stands for all of them. Default empty: only an ingester in this process.
    /// A comma-separated string is accepted too, so that an environment variable
    /// (`SKEIN_QUERIER__INGESTERS=ingester-1:3201,ingester-2:3201`) can set it.
    #[serde(deserialize_with = "list_or_commas")]
    pub ingesters: Vec<String>,
    /// Longest wait to connect to an ingester (or resolve its name). Default `1s`.
    #[serde(with = "humantime_serde")]
    pub ingester_connect_timeout: std::time::Duration,
    /// Longest wait for an ingester's answer; past it the response is partial. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub ingester_timeout: std::time::Duration,
    /// How long the addresses an `ingesters` name resolved to are used before it is resolved
    /// again. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub ingester_resolve_interval: std::time::Duration,
    /// The window of a tag-name or tag-value listing that names no `start` and `end`: that
    /// long before now. Default `1h` (Grafana's drop-downs ask without a window; the whole
    /// retention would be slow and mostly stale).
    #[serde(with = "humantime_serde")]
    pub tag_lookback: std::time::Duration,
    /// Token of the admin API (`/api/admin/...`, per-tenant overrides), sent as
    /// `Authorization: Bearer <token>`. Empty (the default): the admin API is disabled.
    pub admin_token: String,
}

/// A list of strings, or one string of comma-separated items.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(s) => s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl QuerierConfig {
    /// Clients of the configured remote ingesters; an error names a malformed entry.
    pub fn remote_ingesters(
        &self,
    ) -> std::result::Result<Vec<remote::RemoteIngester>, remote::EntryError> {
        let options = remote::RemoteOptions {
            connect_timeout: self.ingester_connect_timeout,
            request_timeout: self.ingester_timeout,
            resolve_interval: self.ingester_resolve_interval,
        };
        self.ingesters
            .iter()
            .map(|entry| remote::RemoteIngester::new(entry, options.clone()))
            .collect()
    }
}

impl Default for QuerierConfig {
    fn default() -> Self {
        QuerierConfig {
            block_list_refresh: std::time::Duration::from_secs(30),
            index_cache_dir: std::path::PathBuf::from("./data/index-cache"),
            index_cache_max_bytes: 1 << 30,
            ingesters: Vec::new(),
            ingester_connect_timeout: std::time::Duration::from_secs(1),
            ingester_timeout: std::time::Duration::from_secs(10),
            tag_lookback: std::time::Duration::from_secs(3600),
            ingester_resolve_interval: std::time::Duration::from_secs(10),
            admin_token: String::new(),
        }
    }
}
