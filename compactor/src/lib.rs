//! # skein-compactor
//!
//! The background work of Skein: everything that rewrites or retires blocks after the
//! ingesters have written them. One [`Compactor::run_cycle`] does, for every tenant whose
//! [lease](skein_storage::lease) it can take:
//!
//! 1. **repair**: finishes or undoes the compaction jobs a crash interrupted
//!    ([`journal`]);
//! 2. **retention**: retires (tombstones) blocks whose newest span is older than the
//!    tenant's retention ([`skein_storage::overrides`]);
//! 3. **compaction**: groups the remaining blocks by time window ([`plan`]) and merges each
//!    group with a streaming k-way merge by trace ID ([`merge`]): split traces combined,
//!    exact duplicate spans dropped, outputs bounded in spans, traces and bytes, each written
//!    with its bloom filter and tag index, `meta.json` last ([`job`]). A block no job takes
//!    whose tag index has another layout than the current one is rewritten on its own, which
//!    rebuilds its index ([`skein_format::IndexLayout`]);
//! 4. **deletion**: deletes retired blocks once their grace period is over, and directories
//!    crashed writers left without a meta ([`cleanup`]);
//! 5. **tenant index**: writes the tenant's block-list index object.
//!
//! `docs/compaction.md` describes the design and its guarantees.

#![warn(missing_docs, unreachable_pub)]

pub mod cleanup;
mod config;
pub mod error;
pub mod job;
pub mod journal;

pub mod merge;
pub mod plan;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::ObjectStoreExt;
use skein_format::layout::names;
use skein_format::{BlockId, BlockMeta, IndexLayout, Store, TenantId};
use skein_storage::BlockList;
use skein_storage::blocklist::{tombstone_block, write_tenant_index};
use skein_storage::overrides::Overrides;
use skein_storage::store::list_tenants;
use tokio_util::sync::CancellationToken;

pub use config::CompactorConfig;
pub use error::{Error, Result};

use crate::plan::PlanOptions;
use skein_storage::lease::Lease;

/// Where the compactor's notion of "now" comes from; tests inject a fake clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What one cycle did, summed over tenants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    /// Tenants worked on.
    pub tenants: u64,
    /// Tenants skipped because another compactor holds their lease.
    pub tenants_busy: u64,
    /// Compaction jobs finished.
    pub jobs: u64,
    /// Blocks merged by those jobs.
    pub blocks_in: u64,
    /// Blocks they wrote.
    pub blocks_out: u64,
    /// Exact duplicate spans dropped.
    pub duplicates: u64,
    /// Blocks retired by retention.
    pub expired: u64,
    /// Retired blocks deleted after their grace period.
    pub deleted: u64,
    /// Directories without meta deleted.
    pub orphans: u64,
    /// Interrupted jobs finished or undone.
    pub repaired: u64,
}

/// The compactor of one process.
pub struct Compactor {
    store: Store,
    config: CompactorConfig,
    overrides: Arc<Overrides>,
    owner: String,
    clock: Clock,
    blocks: BlockList,
    /// Blocks whose meta does not record the index layout and whose index was found to be
    /// current, so that their index is read once only.
    current_indexes: Mutex<HashSet<BlockId>>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The overrides every role of a process shares, as `config` describes them.
pub fn overrides(config: &CompactorConfig, store: Store) -> Arc<Overrides> {
    Arc::new(Overrides::new(
        store,
        config.retention,
        config.overrides_path(),
    ))
}

impl Compactor {
    /// A compactor over `store`, on the system clock.
    pub fn new(config: CompactorConfig, store: Store, overrides: Arc<Overrides>) -> Self {
        Compactor {
            blocks: BlockList::new(store.clone(), Duration::ZERO),
            store,
            config,
            overrides,
            owner: uuid::Uuid::new_v4().to_string(),
            clock: Arc::new(SystemTime::now),
            current_indexes: Mutex::default(),
        }
    }

    /// True when `m` has a tag index of another layout than the one this build writes (an
    /// index the querier cannot use), which a rewrite of the block replaces.
    async fn index_is_stale(&self, tenant: &TenantId, m: &BlockMeta) -> Result<bool> {
        if m.files.index_size.is_none() {
            return Ok(false);
        }
        if let Some(current) = m.index_is_current() {
            return Ok(!current);
        }
        let checked = || {
            self.current_indexes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if checked().contains(&m.block_id) {
            return Ok(false);
        }
        let path = skein_format::layout::block_object(tenant, m.block_id, names::INDEX);
        let header = self.store.get_range(&path, 0..8).await?;
        let stale = IndexLayout::of_bundle(&header) != Some(IndexLayout::current());
        if !stale {
            checked().insert(m.block_id);
        }
        Ok(stale)
    }

    /// Uses `clock` for retention and deletion times instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// This compactor's lease owner ID.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs one cycle over every tenant. Stops early (leaving a repairable state) when
    /// `shutdown` is cancelled.
    pub async fn run_cycle(&self, shutdown: &CancellationToken) -> Result<CycleReport> {
        if let Err(e) = self.overrides.refresh().await {
            tracing::warn!(error = %e, "cannot refresh overrides; keeping the previous ones");
        }
        let mut report = CycleReport::default();
        for tenant in list_tenants(self.store.as_ref()).await? {
            if shutdown.is_cancelled() {
                break;
            }
            let Some(lease) =
                Lease::try_acquire(&self.store, &tenant, &self.owner, self.config.lease_ttl)
                    .await?
            else {
                report.tenants_busy += 1;
                continue;
            };
            report.tenants += 1;
            let result = self.with_lease(lease, &tenant, shutdown, &mut report).await;
            if let Err(e) = result {
                tracing::warn!(%tenant, error = %e, "compaction of tenant failed; retrying next cycle");
            }
        }
        Ok(report)
    }

    /// Works on a tenant while renewing its lease in the background.
    async fn with_lease(
        &self,
        mut lease: Lease,
        tenant: &TenantId,
        shutdown: &CancellationToken,
        report: &mut CycleReport,
    ) -> Result<()> {
        let stop = shutdown.child_token();
        let done = CancellationToken::new();
        let renew_every = (self.config.lease_ttl / 3).max(Duration::from_secs(1));
        let renewer = {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = done.cancelled() => return lease,
                        () = tokio::time::sleep(renew_every) => {}
                    }
                    match lease.renew().await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(tenant = %lease.tenant(), "lost the tenant's lease; stopping work on it");
                            stop.cancel();
                            return lease;
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %lease.tenant(), error = %e, "cannot renew the tenant's lease; stopping work on it");
                            stop.cancel();
                            return lease;
                        }
                    }
                }
            })
        };
        let result = self.compact_tenant(tenant, &stop, report).await;
        done.cancel();
        let lease_lost = stop.is_cancelled() && !shutdown.is_cancelled();
        match renewer.await {
            Ok(lease) if !lease_lost => {
                if let Err(e) = lease.release().await {
                    tracing::debug!(%tenant, error = %e, "cannot release lease; it expires");
                }
            }
            _ => {}
        }
        result
    }

    /// One tenant's share of a cycle; the caller holds the tenant's lease.
    pub async fn compact_tenant(
        &self,
        tenant: &TenantId,
        stop: &CancellationToken,
        report: &mut CycleReport,
    ) -> Result<()> {
        let now = (self.clock)();
        // 1. Repair interrupted jobs.
        let journals = journal::read_journals(&self.store, tenant).await?;
        for j in &journals {
            let settled = journal::settle(&self.store, j).await?;
            tracing::info!(%tenant, job = %j.job_id, complete = j.complete, inputs_retired = settled.inputs_retired, outputs_removed = settled.outputs_removed, "settled an interrupted compaction");
            report.repaired += 1;
        }
        let mut visible = self.blocks.refresh(tenant).await?.as_ref().clone();
        // Blocks another block replaces are retired even without a journal (belt and
        // braces: a job deletes its journal only after retiring its inputs).
        let replaced: HashSet<BlockId> = visible
            .iter()
            .flat_map(|m| m.replaces.iter().copied())
            .collect();
        let mut retired: HashSet<BlockId> = HashSet::new();
        for m in visible.iter().filter(|m| replaced.contains(&m.block_id)) {
            tombstone_block(&self.store, tenant, m.block_id, "compacted").await?;
            retired.insert(m.block_id);
            report.repaired += 1;
        }

        // 2. Retention.
        let retention = self.overrides.retention(tenant);
        let cutoff = unix_nanos(now).saturating_sub(retention.as_nanos() as u64);
        for m in visible.iter().filter(|m| m.max_end_unix_nano < cutoff) {
            if retired.insert(m.block_id) {
                tombstone_block(&self.store, tenant, m.block_id, "retention").await?;
                report.expired += 1;
                tracing::info!(%tenant, block = %m.block_id, retention = %skein_storage::overrides::format_duration(retention), "block retired by retention");
            }
        }
        visible.retain(|m| !retired.contains(&m.block_id));

        // 3. Compaction.
        let opts = PlanOptions {
            window: self.config.window,
            recent_period: self.config.recent_period,
            max_input_blocks: self.config.max_input_blocks,
            limits: self.config.limits(),
        };
        let mut jobs = plan::plan(&visible, unix_nanos(now), &opts);
        let planned: HashSet<BlockId> = jobs.iter().flatten().map(|m| m.block_id).collect();
        for m in visible.iter().filter(|m| !planned.contains(&m.block_id)) {
            if self.index_is_stale(tenant, m).await? {
                tracing::info!(%tenant, block = %m.block_id, "tag index of another layout: rewriting the block to rebuild it");
                jobs.push(vec![m.clone()]);
            }
        }
        for inputs in jobs {
            if stop.is_cancelled() {
                break;
            }
            let n = inputs.len();
            let started = std::time::Instant::now();
            match job::compact(
                self.store.clone(),
                tenant.clone(),
                inputs,
                self.config.limits(),
                self.config.zstd_level.clamp(1, 22),
                stop.clone(),
            )
            .await
            {
                Ok(r) => {
                    tracing::info!(%tenant, inputs = n, outputs = r.outputs.len(), spans = r.stats.spans_out, duplicates = r.stats.duplicates, elapsed_ms = started.elapsed().as_millis() as u64, "compacted");
                    report.jobs += 1;
                    report.blocks_in += n as u64;
                    report.blocks_out += r.outputs.len() as u64;
                    report.duplicates += r.stats.duplicates;
                }
                Err(Error::Stopped) => break,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "compaction job failed; its inputs stay as they were");
                }
            }
        }

        // 4. Deletion after the grace period, and orphans.
        let dirs = cleanup::scan_tenant(&self.store, tenant).await?;
        let (deleted, orphans) = cleanup::delete_expired(
            &self.store,
            tenant,
            &dirs,
            unix_secs(now),
            self.config.delete_grace,
            self.config.orphan_age,
        )
        .await?;
        report.deleted += deleted;
        report.orphans += orphans;

        // 5. The tenant index.
        let blocks: Vec<BlockMeta> = self.blocks.refresh(tenant).await?.as_ref().clone();
        write_tenant_index(&self.store, tenant, blocks).await?;
        Ok(())
    }
}

/// Runs the compactor role until `shutdown` is cancelled: a cycle every
/// `config.cycle_interval`, the overrides refreshed in between.
pub async fn run(
    config: CompactorConfig,
    store: Store,
    overrides: Arc<Overrides>,
    shutdown: CancellationToken,
) {
    let interval = config.cycle_interval;
    let compactor = Compactor::new(config, store, overrides);
    tracing::info!(owner = compactor.owner(), "compactor started");
    loop {
        let started = std::time::Instant::now();
        match compactor.run_cycle(&shutdown).await {
            // A cycle that changed nothing is not worth an info line every 30 s.
            Ok(r) if r.jobs + r.expired + r.deleted + r.orphans + r.repaired == 0 => {
                tracing::debug!(
                    tenants = r.tenants,
                    busy = r.tenants_busy,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compaction cycle done, nothing to do"
                )
            }
            Ok(r) => tracing::info!(
                tenants = r.tenants,
                busy = r.tenants_busy,
                jobs = r.jobs,
                blocks_in = r.blocks_in,
                blocks_out = r.blocks_out,
                duplicates = r.duplicates,
                expired = r.expired,
                deleted = r.deleted,
                orphans = r.orphans,
                repaired = r.repaired,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "compaction cycle done"
            ),
            Err(e) => tracing::warn!(error = %e, "compaction cycle failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("compactor stopped");
}

/// Re-reads `overrides` every `interval` until `shutdown`, so that a change of the overrides
/// file or of the stored overrides applies without a restart. Errors are logged; the previous
/// values stay in force.
pub async fn refresh_overrides(
    overrides: Arc<Overrides>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = overrides.refresh().await {
            tracing::warn!(error = %e, "cannot refresh overrides; keeping the previous ones");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval.max(Duration::from_millis(100))) => {}
        }
    }
}
