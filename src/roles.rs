//! Starting the selected roles over one object store, and stopping them.
//!
//! Every role is a task that runs until a shared [`CancellationToken`] is cancelled. The
//! process stops when SIGINT or SIGTERM arrives (exit 0 once the roles have finished) or when
//! a role fails or ends on its own (exit 1, after stopping the others): a process missing one
//! of its roles must not look healthy.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::cli::Role;
use crate::config::Config;

/// How long the roles get to finish their work after a shutdown signal. Kubernetes waits 30 s
/// before SIGKILL by default; stopping a little earlier lets the process exit on its own terms.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// One registry for the process: every role's metrics and the `process_*` ones, exposed on
/// the ingester's internal API and the querier's HTTP API alike.
fn metrics_registry(roles: &BTreeSet<Role>) -> Arc<Registry> {
    let mut registry = Registry::default();
    if roles.contains(&Role::Ingester) {
        skein_ingester::metrics::register(&mut registry);
    }
    if roles.contains(&Role::Querier) {
        skein_querier::metrics::register(&mut registry);
    }
    registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
    Arc::new(registry)
}

/// Opens the storage, runs `roles` and returns when they have stopped.
pub async fn run(config: Config, roles: BTreeSet<Role>) -> anyhow::Result<()> {
    check_hand_off(&config, &roles)?;
    if let Some(warning) = delete_grace_warning(&config, &roles) {
        tracing::warn!("{warning}");
    }
    // Listen for signals before anything starts, so that an early SIGTERM is not lost.
    let mut signals = Signals::new()?;
    let store = config
        .storage
        .open()
        .context("cannot open the storage configured in [storage]")?;
    tracing::info!(%store, "storage opened");

    // Per-tenant overrides (retention), shared by the roles of this process.
    let overrides = skein_compactor::overrides(&config.compactor, store.clone());
    let shutdown = CancellationToken::new();
    let mut tasks = RoleTasks::default();
    let registry = metrics_registry(&roles);
    // The ingester opens (and replays its WAL) before anything serves, so that the
    // in-process querier can read its recent data from the first request on.
    let ingester = match roles.contains(&Role::Ingester) {
        true => Some(
            skein_ingester::Ingester::open(config.ingester.clone(), store.clone())
                .await
                .context("cannot start the ingester")?,
        ),
        false => None,
    };
    if let Some(ingester) = &ingester {
        ingester.set_overrides(Arc::clone(&overrides));
    }
    // Every role of the process reads the same overrides; keep them fresh.
    tokio::spawn(skein_compactor::refresh_overrides(
        Arc::clone(&overrides),
        config.compactor.overrides_refresh,
        shutdown.clone(),
    ));
    let mut recent: Vec<Arc<dyn skein_query::recent::RecentData>> = ingester
        .iter()
        .map(|i| Arc::clone(i) as Arc<dyn skein_query::recent::RecentData>)
        .collect();
    if roles.contains(&Role::Querier) {
        recent.extend(remote_ingesters(&config, &roles)?);
    }
    for &role in &roles {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let registry = Arc::clone(&registry);
        match role {
            Role::Ingester => {
                let Some(ingester) = ingester.clone() else {
                    continue;
                };
                tasks.spawn(role, async move {
                    skein_ingester::serve(ingester, registry, shutdown).await?;
                    Ok(())
                });
            }
            Role::Querier => {
                let querier = config.querier.clone();
                let listeners = skein_querier::Listeners {
                    http_listen: config.server.http_listen,
                    jaeger_listen: config.server.jaeger_listen,
                };
                let build_info = crate::build_info();
                let recent = recent.clone();
                tasks.spawn(role, async move {
                    skein_querier::run(
                        querier, listeners, build_info, store, recent, registry, shutdown,
                    )
                    .await?;
                    Ok(())
                });
            }
            Role::Compactor => {
                let compactor = config.compactor.clone();
                let overrides = Arc::clone(&overrides);
                tasks.spawn(role, async move {
                    skein_compactor::run(compactor, store, overrides, shutdown).await;
                    Ok(())
                });
            }
        }
    }
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    tracing::info!(roles = %names.join(","), "starting roles");

    let mut result = tokio::select! {
        name = signals.recv() => {
            tracing::info!(signal = name, "shutting down");
            Ok(())
        }
        Some(joined) = tasks.join_next() => {
            // No role stops before it is asked to: this one failed or ended early.
            let err = match joined {
                (role, Ok(())) => anyhow!("the {role} stopped unexpectedly"),
                (role, Err(e)) => e.context(format!("the {role} failed")),
            };
            tracing::error!("{err:#}; stopping the other roles");
            Err(err)
        }
    };
    shutdown.cancel();

    let drain = async {
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let (role, Err(e)) = joined {
                tracing::error!("the {role} failed while stopping: {e:#}");
                failures.push(role);
            }
        }
        failures
    };
    tokio::select! {
        failures = drain => {
            if let (Ok(()), Some(role)) = (&result, failures.first()) {
                result = Err(anyhow!("the {role} failed while stopping"));
            }
        }
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            result = result.and(Err(anyhow!(
                "the roles did not stop within {} s", SHUTDOWN_GRACE.as_secs()
            )));
        }
        name = signals.recv() => {
            result = result.and(Err(anyhow!(
                "{name} received while stopping: exited without waiting for the roles"
            )));
        }
    }
    if result.is_ok() {
        tracing::info!("skein stopped");
    }
    result
}

/// The part of `block_list_refresh` added on top of it for the hand-off rule: a refresh is
/// due after the interval, and reading the list (an index, a listing, new metas) takes time on
/// top. See [`check_hand_off`].
const HAND_OFF_MARGIN_FRACTION: u32 = 2;

/// The hand-off rule: an ingester keeps answering for a written block for
/// `complete_block_timeout`, and queriers see the block after at most `block_list_refresh`
/// (plus the time a refresh takes). When the first is not clearly longer, a trace can vanish
/// from queries for a moment after each flush. With both roles in this process the rule is
/// checked; between processes `docs/operations.md` states it.
fn check_hand_off(config: &Config, roles: &BTreeSet<Role>) -> anyhow::Result<()> {
    if !(roles.contains(&Role::Ingester) && roles.contains(&Role::Querier)) {
        return Ok(());
    }
    let keep = config.ingester.complete_block_timeout;
    let refresh = config.querier.block_list_refresh;
    let needed = refresh + refresh / HAND_OFF_MARGIN_FRACTION;
    if keep < needed {
        return Err(anyhow!(
            "ingester.complete_block_timeout ({}) must be at least 1.5 × \
             querier.block_list_refresh ({}), i.e. {}: otherwise traces disappear from queries \
             between a flush and the next block-list refresh; raise complete_block_timeout or \
             lower block_list_refresh",
            humantime::format_duration(keep),
            humantime::format_duration(refresh),
            humantime::format_duration(needed),
        ));
    }
    Ok(())
}

/// An ingester reads the blocks it wrote from object storage while it serves them
/// (`complete_block_timeout`); a compactor may retire such a block at once and deletes its
/// objects after `delete_grace`. A shorter grace makes the ingester's answers fail (queries
/// turn partial) for blocks compacted early. Only a warning: tests shorten the grace on
/// purpose.
fn delete_grace_warning(config: &Config, roles: &BTreeSet<Role>) -> Option<String> {
    let keep = config.ingester.complete_block_timeout;
    let grace = config.compactor.delete_grace;
    (roles.contains(&Role::Ingester) && roles.contains(&Role::Compactor) && grace <= keep).then(
        || {
            format!(
                "compactor.delete_grace ({}) should exceed ingester.complete_block_timeout ({}): \
                 until then the ingester may read blocks the compactor already deleted, and queries \
                 fail or turn partial",
                humantime::format_duration(grace),
                humantime::format_duration(keep)
            )
        },
    )
}

/// The ingesters listed in `querier.ingesters`, as one source of recent data that asks them
/// all at once (none when the list is empty).
fn remote_ingesters(
    config: &Config,
    roles: &BTreeSet<Role>,
) -> anyhow::Result<Vec<Arc<dyn skein_query::recent::RecentData>>> {
    let remote = config.querier.remote_ingesters()?;
    if remote.is_empty() && !roles.contains(&Role::Ingester) {
        tracing::warn!(
            "querier.ingesters is empty and no ingester runs in this process: queries see \
             the blocks in object storage only, not the recent data ingesters hold"
        );
    }
    for r in &remote {
        tracing::info!(ingester = r.entry(), "querying a remote ingester");
    }
    if remote.is_empty() {
        return Ok(Vec::new());
    }
    let group = skein_querier::remote::RemoteIngesters::new(remote);
    Ok(vec![
        Arc::new(group) as Arc<dyn skein_query::recent::RecentData>
    ])
}

/// The running roles, each a task.
#[derive(Default)]
struct RoleTasks {
    set: JoinSet<anyhow::Result<()>>,
    /// Which role each task runs, to name it even when it panicked.
    roles: HashMap<Id, Role>,
}

impl RoleTasks {
    fn spawn(
        &mut self,
        role: Role,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.roles.insert(id, role);
    }

    /// Waits for the next role to end; a panic becomes an error of that role.
    async fn join_next(&mut self) -> Option<(Role, anyhow::Result<()>)> {
        let (id, result) = match self.set.join_next_with_id().await? {
            Ok((id, result)) => (id, result),
            Err(e) => (e.id(), Err(join_error(e))),
        };
        let role = self
            .roles
            .remove(&id)
            .expect("every task is spawned through RoleTasks::spawn with its role");
        Some((role, result))
    }
}

fn join_error(e: JoinError) -> anyhow::Error {
    if e.is_panic() {
        anyhow!("it panicked")
    } else {
        anyhow!("it was cancelled")
    }
}

/// SIGINT (Ctrl-C) and SIGTERM (what `docker stop` and Kubernetes send).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Waits for the next signal and returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(keep: u64, refresh_ms: u64) -> Config {
        let mut c = Config::default();
        c.ingester.complete_block_timeout = Duration::from_secs(keep);
        c.querier.block_list_refresh = Duration::from_millis(refresh_ms);
        c
    }

    #[test]
    fn the_hand_off_rule_is_checked_when_both_roles_share_the_process() {
        let both = BTreeSet::from([Role::Ingester, Role::Querier]);
        assert!(check_hand_off(&Config::default(), &both).is_ok());
        assert!(check_hand_off(&config(1, 500), &both).is_ok());
        let err = check_hand_off(&config(30, 30_000), &both).unwrap_err();
        assert!(err.to_string().contains("complete_block_timeout"), "{err}");
        assert!(check_hand_off(&config(40, 30_000), &both).is_err());
        // Separate processes: nothing to compare here.
        let querier = BTreeSet::from([Role::Querier]);
        assert!(check_hand_off(&config(30, 30_000), &querier).is_ok());
    }

    #[test]
    fn a_delete_grace_shorter_than_the_hand_off_is_warned_about() {
        let all = BTreeSet::from([Role::Ingester, Role::Querier, Role::Compactor]);
        assert_eq!(delete_grace_warning(&Config::default(), &all), None);
        let mut c = Config::default();
        c.compactor.delete_grace = Duration::from_secs(1);
        let warning = delete_grace_warning(&c, &all).expect("a warning");
        assert!(warning.contains("delete_grace"), "{warning}");
        let compactor = BTreeSet::from([Role::Compactor]);
        assert_eq!(delete_grace_warning(&c, &compactor), None);
    }

    #[test]
    fn a_malformed_ingester_entry_fails_the_start() {
        let mut c = Config::default();
        c.querier.ingesters = vec!["ingester-1".into()];
        let err = remote_ingesters(&c, &BTreeSet::from([Role::Querier])).unwrap_err();
        assert!(err.to_string().contains("ingester-1"), "{err}");
        c.querier.ingesters = vec!["ingester-1:3201".into(), "127.0.0.1:3202".into()];
        let ok = remote_ingesters(&c, &BTreeSet::from([Role::Querier])).unwrap();
        assert_eq!(ok.len(), 1, "one source asking both at once");
        c.querier.ingesters.clear();
        assert!(
            remote_ingesters(&c, &BTreeSet::from([Role::Querier]))
                .unwrap()
                .is_empty()
        );
    }
}
