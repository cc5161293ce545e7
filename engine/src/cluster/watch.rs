//! A live inventory: one `kube::runtime` watcher and store per kind that the loaded
//! referential policies read (plus Namespaces), kept current by watches, for the
//! webhook (`palisade serve --cluster`).
//!
//! Each object is held once, already in the Rego engine's form (see
//! [`crate::inventory`]): a snapshot shares the stored objects, so a change costs
//! one converted object and a new index, not a second copy of the cluster.
//! Only what policies need is stored: objects lose `metadata.managedFields` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation as they arrive.
//! The watcher relists on `410 Gone` and retries failed watches with backoff; during an
//! outage the stores keep the last synced state. [`LiveInventory::status`] says
//! whether every kind has synced once and since when the inventory may be missing
//! changes (the first error of an outage; cleared by the next event, or by a cheap
//! list probe that succeeds, since a resumed watch sends nothing until something changes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Cluster, Resource};
use crate::error::Result;
use crate::inventory::{Inventory, to_rego};
use crate::matching::KindSelector;
use crate::object::Gvk;

/// How often kinds in an outage are probed with a one-object list.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What is known about one watched kind.
#[derive(Debug, Default)]
struct KindHealth {
    synced: bool,
    stale_since: Option<Instant>,
    last_error: Option<String>,
}

/// The objects of one kind by (namespace, name), in the Rego engine's form.
type Objects = BTreeMap<(String, String), regorus::Value>;

struct Watched {
    resource: Resource,
    store: Arc<Mutex<Objects>>,
    health: Arc<Mutex<KindHealth>>,
    task: JoinHandle<()>,
}

/// The state of a live inventory.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InventoryStatus {
    /// Every watched kind has completed its initial list.
    pub synced: bool,
    /// How long the inventory may have been missing changes (zero while every watch is healthy).
    pub stale_for: Duration,
    /// Objects held.
    pub objects: usize,
    /// Kinds not yet synced, or failing, with the last error (`apps/v1 DaemonSet: …`).
    pub problems: Vec<String>,
}

/// Watches of the kinds referential policies read, and their stores.
pub struct LiveInventory {
    cluster: Cluster,
    watched: Mutex<Vec<Watched>>,
    changed: Arc<Notify>,
    prober: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LiveInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveInventory").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl Drop for LiveInventory {
    fn drop(&mut self) {
        if let Ok(w) = self.watched.lock() {
            w.iter().for_each(|w| w.task.abort());
        }
        if let Ok(Some(p)) = self.prober.lock().map(|mut p| p.take()) {
            p.abort();
        }
    }
}

impl LiveInventory {
    /// An inventory watching nothing yet; [`LiveInventory::watch`] adds kinds. Must be
    /// called inside a tokio runtime.
    pub fn new(cluster: Cluster) -> Arc<LiveInventory> {
        let live = Arc::new(LiveInventory {
            cluster,
            watched: Mutex::new(Vec::new()),
            changed: Arc::new(Notify::new()),
            prober: Mutex::new(None),
        });
        let weak = Arc::downgrade(&live);
        let prober = tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let Some(live) = weak.upgrade() else { return };
                live.probe().await;
            }
        });
        if let Ok(mut p) = live.prober.lock() {
            *p = Some(prober);
        }
        live
    }

    /// The API server watched.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Starts watching Namespaces and the kinds `selectors` name that the cluster
    /// serves (those already watched are kept). Returns the kinds newly watched.
    pub async fn watch(&self, selectors: &[KindSelector]) -> Result<Vec<String>> {
        let resources = self.cluster.resources().await?;
        let mut wanted = vec![KindSelector::Short("core/Namespace".into())];
        wanted.extend(selectors.iter().filter(|s| !matches!(s, KindSelector::Short(x) if x == "*")).cloned());
        let mut added = Vec::new();
        let Ok(mut watched) = self.watched.lock() else { return Ok(added) };
        for r in resources {
            let gvk = Gvk { group: r.api.group.clone(), version: r.api.version.clone(), kind: r.api.kind.clone() };
            let known =
                watched.iter().any(|w| w.resource.api.group == r.api.group && w.resource.api.kind == r.api.kind);
            if known || !wanted.iter().any(|s| s.matches(&gvk)) {
                continue;
            }
            added.push(r.display());
            watched.push(self.spawn(r));
        }
        Ok(added)
    }

    fn spawn(&self, resource: Resource) -> Watched {
        let store = Arc::new(Mutex::new(Objects::new()));
        let health = Arc::new(Mutex::new(KindHealth::default()));
        let api: Api<DynamicObject> = Api::all_with(self.cluster.client().clone(), &resource.api);
        let sink = Sink { api: resource.api.clone(), store: store.clone(), health: health.clone() };
        let task = tokio::spawn(run(api, sink, self.changed.clone(), resource.display()));
        Watched { resource, store, health, task }
    }

    /// Resolves when an object was added, changed or deleted, or a kind (re)synced.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether every kind has synced, and how stale the inventory may be.
    pub fn status(&self) -> InventoryStatus {
        let now = Instant::now();
        let mut status = InventoryStatus { synced: true, stale_for: Duration::ZERO, objects: 0, problems: Vec::new() };
        let Ok(watched) = self.watched.lock() else { return status };
        for w in watched.iter() {
            status.objects += w.store.lock().map(|s| s.len()).unwrap_or_default();
            let Ok(h) = w.health.lock() else { continue };
            status.synced &= h.synced;
            if let Some(since) = h.stale_since {
                status.stale_for = status.stale_for.max(now.duration_since(since));
            }
            if !h.synced || h.stale_since.is_some() {
                let why = h.last_error.as_deref().unwrap_or("initial list in progress");
                status.problems.push(format!("{}: {why}", w.resource.display()));
            }
        }
        status
    }

    /// The objects held now, as an [`Inventory`] (PolicyExceptions, watched for the
    /// webhook itself, are left out: see [`LiveInventory::objects`]).
    pub fn snapshot(&self) -> Inventory {
        let mut inv = Inventory::new();
        let Ok(watched) = self.watched.lock() else { return inv };
        let own = |w: &&Watched| w.resource.group() == "palisade.dev" && w.resource.kind() == crate::exception::KIND;
        for w in watched.iter().filter(|w| !own(w)) {
            let api = &w.resource.api;
            let gvk = Gvk { group: api.group.clone(), version: api.version.clone(), kind: api.kind.clone() };
            let Ok(store) = w.store.lock() else { continue };
            for ((namespace, name), obj) in store.iter() {
                inv.insert_rego(&gvk, namespace, name, obj.clone());
            }
        }
        inv
    }

    /// The objects of one kind held now (empty when it is not watched).
    pub fn objects(&self, group: &str, kind: &str) -> Vec<serde_json::Value> {
        let Ok(watched) = self.watched.lock() else { return Vec::new() };
        watched
            .iter()
            .filter(|w| w.resource.group() == group && w.resource.kind() == kind)
            .flat_map(|w| {
                let store = w.store.lock().map(|s| s.values().cloned().collect()).unwrap_or_else(|_| Vec::new());
                store.into_iter().filter_map(|o| serde_json::to_value(&o).ok())
            })
            .collect()
    }

    /// Lists one object of each kind in an outage; success ends the outage.
    async fn probe(&self) {
        let stale: Vec<(ApiResource, Arc<Mutex<KindHealth>>)> = self
            .watched
            .lock()
            .map(|w| {
                w.iter()
                    .filter(|w| w.health.lock().is_ok_and(|h| h.synced && h.stale_since.is_some()))
                    .map(|w| (w.resource.api.clone(), w.health.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (api, health) in stale {
            let list: Api<DynamicObject> = Api::all_with(self.cluster.client().clone(), &api);
            if list.list_metadata(&ListParams::default().limit(1)).await.is_ok() {
                healthy(&health);
                tracing::info!(kind = %format!("{} {}", api.api_version, api.kind), "inventory watch reachable again");
            }
        }
    }
}

fn healthy(health: &Mutex<KindHealth>) {
    if let Ok(mut h) = health.lock() {
        h.stale_since = None;
        h.last_error = None;
    }
}

/// Drops what no policy reads, before the object is stored.
fn trim(obj: &mut DynamicObject) {
    obj.metadata.managed_fields = None;
    if let Some(a) = obj.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Where one kind's watch events land.
struct Sink {
    api: ApiResource,
    store: Arc<Mutex<Objects>>,
    health: Arc<Mutex<KindHealth>>,
}

impl Sink {
    /// The store key and the stored form of an object.
    fn entry(&self, obj: &DynamicObject) -> Option<((String, String), regorus::Value)> {
        Some((key(obj)?, to_rego(super::object_value(obj, &self.api))?))
    }

    fn apply(&self, obj: &DynamicObject) {
        if let (Some((key, value)), Ok(mut store)) = (self.entry(obj), self.store.lock()) {
            store.insert(key, value);
        }
    }

    fn delete(&self, obj: &DynamicObject) {
        if let (Some(key), Ok(mut store)) = (key(obj), self.store.lock()) {
            store.remove(&key);
        }
    }
}

/// An object's place in its kind's store: (namespace, name).
fn key(obj: &DynamicObject) -> Option<(String, String)> {
    Some((obj.metadata.namespace.clone().unwrap_or_default(), obj.metadata.name.clone()?))
}

/// Follows one kind's watch: a (re)list is collected aside and replaces the store when
/// complete, so a relist after `410 Gone` never serves a half-filled kind.
async fn run(api: Api<DynamicObject>, sink: Sink, changed: Arc<Notify>, kind: String) {
    let config = watcher::Config::default().any_semantic();
    let mut stream = watcher(api, config).default_backoff().modify(trim).boxed();
    let mut relist: Option<Objects> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => relist = Some(Objects::new()),
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(buffer), Some((key, value))) = (relist.as_mut(), sink.entry(&obj)) {
                    buffer.insert(key, value);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let (Some(buffer), Ok(mut store)) = (relist.take(), sink.store.lock()) {
                    *store = buffer;
                }
                if let Ok(mut h) = sink.health.lock() {
                    h.synced = true;
                }
                healthy(&sink.health);
                tracing::info!(%kind, "inventory synced");
                changed.notify_one();
            }
            Ok(watcher::Event::Apply(obj)) => {
                sink.apply(&obj);
                healthy(&sink.health);
                changed.notify_one();
            }
            Ok(watcher::Event::Delete(obj)) => {
                sink.delete(&obj);
                healthy(&sink.health);
                changed.notify_one();
            }
            Err(e) => {
                let message = super::chain(&e);
                tracing::warn!(%kind, error = %message, "inventory watch failed; retrying with backoff");
                if let Ok(mut h) = sink.health.lock() {
                    h.stale_since.get_or_insert_with(Instant::now);
                    h.last_error = Some(message);
                }
            }
        }
    }
}
