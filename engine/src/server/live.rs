//! `serve --cluster` (features `server` + `cluster`): the webhook evaluates with a live
//! inventory of the cluster, and can audit the cluster in the background.
//!
//! Every loaded bundle set is the *base*; what serves requests is the base with the
//! current inventory snapshot. A snapshot is re-published after the watches report a
//! change (coalesced over [`COALESCE`]), and after each bundle reload, which also starts
//! watches for kinds the new bundles read (kinds are never unwatched until restart).
//!
//! Readiness: not ready until every watched kind has completed its initial list; then
//! ready during watch outages (admission keeps the last synced state and
//! `palisade_inventory_age_seconds` grows), unless `max_age` is set and exceeded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use super::{Loaded, State};
use crate::cluster::audit::{self, AuditOptions};
use crate::cluster::reports;
use crate::cluster::watch::LiveInventory;
use crate::cluster::{Cluster, ConnectOptions};
use crate::error::{Error, Result};
use crate::matching::KindSelector;
use crate::report::policy_report::Flavor;

/// Quiet time after a watch event before a new snapshot is published.
const COALESCE: Duration = Duration::from_millis(200);
/// How often unresolved kinds (discovery failed) are tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Settings of the live inventory and the background audit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LiveConfig {
    /// How to reach the API server (and its client-side rate limit).
    pub connect: ConnectOptions,
    /// Report not ready when the inventory has been stale this long (`None`: never).
    pub max_age: Option<Duration>,
    /// Run an audit this often and write the aggregated reports (`None`: no audit).
    pub audit_interval: Option<Duration>,
    /// The report API the background audit writes.
    pub report_flavor: Flavor,
    /// Results per report.
    pub report_cap: usize,
    /// Objects per list request of the audit.
    pub page_size: u32,
}

impl LiveConfig {
    /// A live inventory without background audit.
    pub fn new(connect: ConnectOptions) -> LiveConfig {
        LiveConfig {
            connect,
            max_age: None,
            audit_interval: None,
            report_flavor: Flavor::WgPolicy,
            report_cap: 1000,
            page_size: 500,
        }
    }
}

/// The live side of a running server.
pub(crate) struct Live {
    config: LiveConfig,
    inventory: Arc<LiveInventory>,
    runtime: tokio::runtime::Handle,
    /// The bundle set without inventory, and whether its kinds are all watched.
    base: Mutex<Option<(Arc<Loaded>, bool)>>,
    /// Serialises publishing (reload and watch events both publish).
    publishing: Mutex<()>,
    /// The serving set's snapshot was taken with every watched kind synced.
    published_synced: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Live {
    /// Connects (no request yet) and starts the inventory, watching nothing until the
    /// first bundle set names its kinds.
    pub(crate) async fn start(config: LiveConfig) -> Result<Live> {
        let cluster = Cluster::connect(&config.connect).await?;
        Ok(Live {
            inventory: LiveInventory::new(cluster),
            runtime: tokio::runtime::Handle::current(),
            base: Mutex::new(None),
            publishing: Mutex::new(()),
            published_synced: AtomicBool::new(false),
            config,
        })
    }

    /// Called on a loader thread with a freshly loaded bundle set: watches the kinds it
    /// reads and returns it with the current inventory.
    pub(crate) fn attach(&self, base: Loaded) -> Result<Loaded> {
        let base = Arc::new(base);
        let resolved = self.runtime.block_on(self.resolve(&base));
        let _guard = self.publishing.lock().map_err(|_| Error::input("inventory", "publisher poisoned"))?;
        if let Ok(mut b) = self.base.lock() {
            *b = Some((base.clone(), resolved));
        }
        self.with_snapshot(&base)
    }

    async fn resolve(&self, base: &Loaded) -> bool {
        let mut kinds = inventory_kinds(base);
        kinds.push(KindSelector::Short(format!("palisade.dev/{}", crate::exception::KIND)));
        match tokio::time::timeout(Duration::from_secs(10), self.inventory.watch(&kinds)).await {
            Ok(Ok(added)) => {
                if !added.is_empty() {
                    tracing::info!(kinds = ?added, cluster = %self.inventory.cluster().name(), "watching for the inventory");
                }
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot start the inventory watches; retrying");
                false
            }
            Err(_) => {
                tracing::error!("discovering the inventory kinds timed out; retrying");
                false
            }
        }
    }

    /// `base` with the current inventory; records whether every kind had synced (the
    /// caller publishes the result at once).
    fn with_snapshot(&self, base: &Loaded) -> Result<Loaded> {
        let synced = self.inventory.status().synced;
        let engine = self.with_cluster_exceptions(&base.engine).with_inventory(Arc::new(self.inventory.snapshot()))?;
        self.published_synced.store(synced, Ordering::SeqCst);
        Ok(Loaded { engine, revision: base.revision })
    }

    /// `engine` also waiving what the cluster's PolicyException objects cover. One that
    /// fails the checks is left out and logged; the others apply.
    fn with_cluster_exceptions(&self, engine: &crate::Engine) -> crate::Engine {
        let cluster = self.inventory.cluster().name();
        let docs: Vec<_> = self
            .inventory
            .objects("palisade.dev", crate::exception::KIND)
            .into_iter()
            .map(|v| crate::cluster::exception_document(cluster, v))
            .collect();
        let (engine, errors) = engine.with_exception_documents(docs);
        for e in errors {
            tracing::error!(error = %e, "PolicyException left out");
        }
        engine
    }

    /// Re-publishes the serving set with a new snapshot (blocking: call off the runtime).
    fn publish(&self, state: &State) {
        let Ok(_guard) = self.publishing.lock() else { return };
        let Some((base, _)) = self.base.lock().ok().and_then(|b| b.clone()) else { return };
        match self.with_snapshot(&base) {
            Ok(loaded) => state.engine.store(Some(Arc::new(loaded))),
            Err(e) => tracing::error!(error = %e, "cannot apply the new inventory; the previous one keeps serving"),
        }
    }

    /// `Ok(detail)` when ready, `Err(why)` when not.
    pub(crate) fn readiness(&self) -> std::result::Result<String, String> {
        let Some(resolved) = self.base.lock().ok().and_then(|b| b.as_ref().map(|(_, r)| *r)) else {
            return Err("no bundle set loaded yet".into());
        };
        let status = self.inventory.status();
        if !resolved {
            return Err("inventory: the kinds to watch are not resolved yet (discovery failed)".into());
        }
        if !status.synced {
            return Err(format!("inventory not synced: {}", status.problems.join("; ")));
        }
        if !self.published_synced.load(Ordering::SeqCst) {
            return Err("inventory synced, not yet serving".into());
        }
        if let Some(max) = self.config.max_age.filter(|m| status.stale_for > *m) {
            return Err(format!(
                "inventory stale for {}s (limit {}s): {}",
                status.stale_for.as_secs(),
                max.as_secs(),
                status.problems.join("; ")
            ));
        }
        let mut detail = format!("inventory: {} objects from {}", status.objects, self.inventory.cluster().name());
        if !status.problems.is_empty() {
            detail.push_str(&format!(", stale for {}s: {}", status.stale_for.as_secs(), status.problems.join("; ")));
        }
        Ok(detail)
    }

    /// Sets the inventory gauges (at scrape time).
    pub(crate) fn observe(&self, metrics: &Metrics) {
        let status = self.inventory.status();
        metrics.inventory_age.set(status.stale_for.as_secs_f64());
        metrics.inventory_objects.set(status.objects as i64);
        metrics.inventory_synced.set(i64::from(status.synced));
    }
}

/// What the live inventory watches for `base` (see [`crate::Engine::inventory_kinds`]).
fn inventory_kinds(base: &Loaded) -> Vec<KindSelector> {
    base.engine.inventory_kinds().unwrap_or_else(|| {
        let undeclared = base.engine.policies().iter().filter(|p| p.is_referential() && p.spec().inventory.is_empty());
        for p in undeclared {
            tracing::warn!(policy = %p.spec().id, "referential policy names no `inventory` kinds; it sees only those of other policies and Namespaces");
        }
        base.engine.policies().iter().flat_map(|p| p.spec().inventory.iter().cloned()).collect()
    })
}

/// Background work: publish snapshots on change, retry unresolved kinds, audit.
pub(crate) fn spawn(state: &Arc<State>, live: &Arc<Live>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(follow(state.clone(), live.clone()))];
    if let Some(every) = live.config.audit_interval {
        tasks.push(tokio::spawn(audit_loop(state.clone(), live.clone(), every)));
    }
    tasks
}

async fn follow(state: Arc<State>, live: Arc<Live>) {
    loop {
        let changed = tokio::time::timeout(RETRY, live.inventory.changed()).await.is_ok();
        let unresolved = live.base.lock().ok().and_then(|b| b.clone()).filter(|(_, resolved)| !resolved);
        if let Some((base, _)) = unresolved {
            if live.resolve(&base).await
                && let Ok(mut b) = live.base.lock()
                && let Some(entry) = b.as_mut().filter(|(l, _)| Arc::ptr_eq(l, &base))
            {
                entry.1 = true;
            }
        } else if !changed {
            continue;
        }
        tokio::time::sleep(COALESCE).await;
        let (s, l) = (state.clone(), live.clone());
        let _ = tokio::task::spawn_blocking(move || l.publish(&s)).await;
    }
}

async fn audit_loop(state: Arc<State>, live: Arc<Live>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: wait one interval after start
    loop {
        tick.tick().await;
        let Some((base, _)) = live.base.lock().ok().and_then(|b| b.clone()) else { continue };
        let started = Instant::now();
        match run_audit(&live, &base).await {
            Ok(summary) => {
                Metrics::count(&state.metrics.audits, "success");
                tracing::info!(took_ms = started.elapsed().as_millis() as u64, "{summary}");
            }
            Err(e) => {
                Metrics::count(&state.metrics.audits, "failure");
                tracing::error!(error = %e, "background audit failed; reports left as they were");
            }
        }
    }
}

async fn run_audit(live: &Live, base: &Loaded) -> Result<String> {
    let engine = base.engine.with_mode(crate::Mode::Scan);
    let cluster = live.inventory.cluster();
    let options = AuditOptions { page_size: live.config.page_size, ..Default::default() };
    let audit = audit::audit(cluster, &engine, &options).await?;
    let c = &live.config;
    let w = reports::write(cluster, &audit.report, engine.policies(), (c.report_flavor, c.report_cap), None).await?;
    let listed: usize = audit.listed.values().sum();
    Ok(format!(
        "background audit: listed {listed} objects, {} findings; wrote {} reports ({} results, {} omitted, {} bytes), deleted {}",
        audit.report.results.len(),
        w.reports,
        w.results,
        w.omitted,
        w.bytes,
        w.deleted
    ))
}
