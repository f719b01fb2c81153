//! Opening the object store from configuration, and listing its tenants.
//!
//! Everything Skein keeps lives in one object store: the local filesystem by default, any
//! S3-compatible service in production, memory in tests. The paths inside it are defined by
//! the format (`skein_format::layout`).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use skein_format::{Store, TenantId};

/// Where blocks are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// A directory on local disk (the default: `./data/blocks`).
    Local {
        /// Directory holding the bucket's objects; created if missing.
        #[serde(default = "default_local_path")]
        path: PathBuf,
    },
    /// An S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph, R2, …).
    S3(S3Config),
    /// Process memory; everything is lost at exit. For tests. (A struct variant, so that
    /// `deny_unknown_fields` rejects stray keys next to `backend = "memory"`.)
    Memory {},
}

fn default_local_path() -> PathBuf {
    PathBuf::from("./data/blocks")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Local {
            path: default_local_path(),
        }
    }
}

/// Settings of an S3-compatible bucket. Credentials left empty are taken from the usual
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` variables; with none
/// at all, requests are unsigned (anonymous).
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name. Required.
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`; empty means AWS.
    pub endpoint: String,
    /// Region; `us-east-1` when empty.
    pub region: String,
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Use virtual-hosted-style URLs (`bucket.host`) instead of path style. Most self-hosted
    /// servers want path style, the default.
    pub virtual_hosted_style: bool,
    /// Allow plain HTTP endpoints. Defaults to true when the endpoint starts with `http://`.
    pub allow_http: Option<bool>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    /// Opens the store this configuration describes.
    pub fn open(&self) -> Result<Store> {
        match self {
            StorageConfig::Local { path } => {
                std::fs::create_dir_all(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot create data directory {}: {e}",
                        path.display()
                    ))
                })?;
                let fs = LocalFileSystem::new_with_prefix(path).map_err(|e| {
                    Error::Config(format!("cannot use data directory {}: {e}", path.display()))
                })?;
                // Remove empty directories left behind when a block is deleted.
                Ok(Arc::new(fs.with_automatic_cleanup(true)))
            }
            StorageConfig::Memory {} => Ok(Arc::new(InMemory::new())),
            StorageConfig::S3(s3) => s3.open(),
        }
    }
}

impl S3Config {
    fn open(&self) -> Result<Store> {
        if self.bucket.is_empty() {
            return Err(Error::Config(
                "storage.bucket is required for the s3 backend".into(),
            ));
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(self.virtual_hosted_style)
            // SeaweedFS and MinIO implement conditional PUT (If-None-Match), which leases use.
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
        let region = if self.region.is_empty() {
            "us-east-1"
        } else {
            &self.region
        };
        b = b.with_region(region);
        if !self.endpoint.is_empty() {
            b = b.with_endpoint(&self.endpoint);
        }
        let allow_http = self
            .allow_http
            .unwrap_or(self.endpoint.starts_with("http://"));
        b = b.with_allow_http(allow_http);
        if !self.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&self.access_key_id)
                .with_secret_access_key(&self.secret_access_key);
        } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            b = b.with_skip_signature(true);
        }
        let s3 = b
            .build()
            .map_err(|e| Error::Config(format!("s3 bucket {:?}: {e}", self.bucket)))?;
        Ok(Arc::new(s3))
    }
}

/// Lists the tenants that have a prefix in the store.
pub async fn list_tenants(store: &dyn ObjectStore) -> Result<Vec<TenantId>> {
    let listing = store.list_with_delimiter(None).await?;
    let mut tenants: Vec<TenantId> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(|n| TenantId::new(n).ok()))
        .collect();
    tenants.sort();
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_keys_for_every_backend() {
        for bad in [
            r#"{"backend":"memory","path":"x"}"#,
            r#"{"backend":"local","path":"x","bucket":"b"}"#,
            r#"{"backend":"s3","bucket":"b","prefix":"p"}"#,
            r#"{"backend":"gcs"}"#,
        ] {
            assert!(serde_json::from_str::<StorageConfig>(bad).is_err(), "{bad}");
        }
        let ok: StorageConfig = serde_json::from_str(r#"{"backend":"memory"}"#).unwrap();
        assert_eq!(ok, StorageConfig::Memory {});
        let local: StorageConfig = serde_json::from_str(r#"{"backend":"local"}"#).unwrap();
        assert_eq!(local, StorageConfig::default());
    }

    #[test]
    fn s3_debug_never_prints_the_secret() {
        let c = S3Config {
            bucket: "b".into(),
            secret_access_key: "hunter2".into(),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
