//! `palisade audit`: evaluate what already runs in a cluster. The kinds listed are those
//! the loaded policies match (plus the workloads whose Pods they judge), and, for the
//! inventory of referential rules, Namespaces and the kinds their `inventory` key names.
//! The objects are then scanned exactly as `palisade scan` scans files, with the listed
//! objects of the inventory kinds as the inventory, so an audit of a cluster holding the
//! manifests of a directory reports what a scan of that directory reports. Only the
//! inventory is held; the other objects are evaluated a page at a time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Cluster, Resource};
use crate::documents::Document;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::matching::KindSelector;
use crate::object::{self, Gvk, SourceLocation, WORKLOAD_TEMPLATES};
use crate::scan::{self, ScanReport};

/// Options of an audit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuditOptions {
    /// Audit only this namespace's objects (and the Namespace itself); the inventory
    /// of referential rules is still read cluster-wide.
    pub namespace: Option<String>,
    /// Objects per list request (`limit`).
    pub page_size: u32,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions { namespace: None, page_size: 500 }
    }
}

/// Kinds never listed for a `*` match: high-churn records that are not configuration.
const NOT_AUDITED: &[(&str, &str)] = &[
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("coordination.k8s.io", "Lease"),
    ("", "Endpoints"),
    ("discovery.k8s.io", "EndpointSlice"),
];

/// What an audit lists: kinds to evaluate, kinds read only as inventory.
#[derive(Debug, Default)]
pub struct Selection {
    /// Resources whose objects are evaluated.
    pub evaluate: Vec<Resource>,
    /// Resources listed only for the inventory (cluster-wide).
    pub inventory: Vec<Resource>,
    /// Those of `evaluate` that referential rules also read (listed cluster-wide).
    pub evaluated_and_inventory: Vec<Resource>,
}

/// Chooses the resources to list for `engine` among those the cluster offers.
pub fn select(engine: &Engine, resources: &[Resource]) -> Selection {
    let mut evaluate: Vec<KindSelector> = Vec::new();
    let mut inventory = vec![KindSelector::Short("core/Namespace".into())];
    for p in engine.policies() {
        let spec = p.spec();
        if spec.match_spec.kinds.is_empty() {
            evaluate.push(KindSelector::Short("*".into()));
        }
        evaluate.extend(spec.match_spec.kinds.iter().cloned());
        if spec.expand_workloads && spec.match_spec.matches_pods() {
            evaluate.extend(WORKLOAD_TEMPLATES.iter().map(|(g, k, _)| KindSelector::Short(format!("{}/{k}", core(g)))));
        }
        if p.is_referential() {
            inventory.extend(spec.inventory.iter().cloned());
        }
    }
    let covers = |sels: &[KindSelector], r: &Resource| {
        let gvk = Gvk { group: r.api.group.clone(), version: r.api.version.clone(), kind: r.api.kind.clone() };
        sels.iter().any(|s| match s {
            KindSelector::Short(x) if x == "*" => !NOT_AUDITED.contains(&(r.group(), r.kind())),
            s => s.matches(&gvk),
        })
    };
    let mut sel = Selection::default();
    for r in resources {
        if covers(&evaluate, r) {
            if covers(&inventory, r) {
                sel.evaluated_and_inventory.push(r.clone());
            }
            sel.evaluate.push(r.clone());
        } else if covers(&inventory, r) {
            sel.inventory.push(r.clone());
        }
    }
    // A referential rule that names no inventory kinds reads every evaluated object (as
    // in a scan): all of them are held.
    if engine.inventory_kinds().is_none() {
        sel.evaluated_and_inventory = sel.evaluate.clone();
    }
    sel
}

fn core(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

/// The inventory of an audit: the objects of the kinds referential rules read (listed
/// cluster-wide, held for the whole audit), with the engine prepared to see them.
struct Held {
    engine: Engine,
    inventory: Arc<Inventory>,
    /// Inventory objects of kinds that are evaluated too, by resource, evaluated in turn.
    evaluated: BTreeMap<String, Vec<Document>>,
    namespaces: Vec<Value>,
}

async fn hold(
    cluster: &Cluster,
    engine: &Engine,
    sel: &Selection,
    page_size: u32,
    listed: &mut BTreeMap<String, usize>,
) -> Result<Held> {
    let mut docs = Vec::new();
    let mut evaluated = BTreeMap::new();
    for r in sel.inventory.iter().chain(&sel.evaluated_and_inventory) {
        let items: Vec<Document> =
            cluster.list(r, None, page_size).await?.into_iter().map(|v| document(cluster, v)).collect();
        listed.insert(r.display(), items.len());
        if sel.evaluated_and_inventory.contains(r) {
            evaluated.insert(r.display(), items);
        } else {
            docs.extend(items);
        }
    }
    let all = || docs.iter().chain(evaluated.values().flatten());
    let namespaces = all()
        .filter(|d| d.value["kind"] == "Namespace" && d.value["apiVersion"] == "v1")
        .map(|d| d.value.clone())
        .collect();
    let (engine, inventory) = scan::prepare(engine, all())?;
    Ok(Held { engine, inventory, evaluated, namespaces })
}

/// Evaluates `documents` on a blocking thread, adding the results to `report`.
async fn evaluate(cluster: &Cluster, held: &Held, documents: Vec<Document>, report: &mut ScanReport) -> Result<()> {
    let (engine, inventory) = (held.engine.clone(), held.inventory.clone());
    let part = tokio::task::spawn_blocking(move || scan::evaluate_all(&engine, &inventory, documents, None, None))
        .await
        .map_err(|e| Error::Cluster {
            cluster: cluster.name().to_string(),
            what: "evaluate the listed objects".into(),
            status: None,
            message: e.to_string(),
        })?;
    report.results.extend(part.results);
    report.errors.extend(part.errors);
    Ok(())
}

/// Whether an object belongs to the audited namespace (`None`: everything).
fn in_scope(v: &Value, ns: Option<&str>) -> bool {
    let Some(ns) = ns else { return true };
    match object::namespace(v) {
        Some(n) => n == ns,
        None => Gvk::of(v).is_some_and(|g| g.group.is_empty() && g.kind == "Namespace") && object::name(v) == Some(ns),
    }
}

fn document(cluster: &Cluster, value: Value) -> Document {
    let name = match (object::namespace(&value), object::name(&value)) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "(unnamed)".into(),
    };
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let file = format!("{} {kind} {name}", cluster.name());
    Document { value, source: SourceLocation { file, document: 1, line: 0 } }
}

/// `engine` also waiving what the cluster's PolicyException objects cover. An object
/// that fails the checks fails the audit, as a bad `--exceptions` file would.
pub async fn with_cluster_exceptions(cluster: &Cluster, engine: &Engine) -> Result<Engine> {
    let (engine, errors) = engine.with_exception_documents(cluster.policy_exceptions().await?);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(engine),
    }
}

/// The result of an audit.
#[derive(Debug)]
#[non_exhaustive]
pub struct Audit {
    /// What the policies found, as for a scan.
    pub report: ScanReport,
    /// The cluster's Namespace objects (for the evidence report's scope table).
    pub namespaces: Vec<Value>,
    /// Objects listed per kind.
    pub listed: BTreeMap<String, usize>,
    /// The exceptions applied: the engine's files and the cluster's PolicyException
    /// objects (for the evidence report's tables and expiry warnings).
    pub exceptions: Option<crate::exception::Exceptions>,
}

/// Audits the cluster as `palisade scan` would scan the same objects: lists the kinds
/// referential rules read first (held as the inventory), then every evaluated kind one
/// page at a time, evaluating each page (on a blocking thread) before asking for the
/// next, so that only the inventory stays in memory. Results carry no file location:
/// the object reference names them.
pub async fn audit(cluster: &Cluster, engine: &Engine, options: &AuditOptions) -> Result<Audit> {
    let engine = &with_cluster_exceptions(cluster, engine).await?;
    let selection = select(engine, &cluster.resources().await?);
    let ns = options.namespace.as_deref();
    let mut listed = BTreeMap::new();
    let mut held = hold(cluster, engine, &selection, options.page_size, &mut listed).await?;
    let mut report = ScanReport { bundles: held.engine.bundles().cloned().collect(), ..Default::default() };
    for r in &selection.evaluate {
        if let Some(docs) = held.evaluated.remove(&r.display()) {
            let docs = docs.into_iter().filter(|d| in_scope(&d.value, ns)).collect();
            evaluate(cluster, &held, docs, &mut report).await?;
            continue;
        }
        let mut pages = cluster.pages(r, ns, options.page_size);
        let mut count = 0;
        while let Some(page) = pages.next().await? {
            count += page.len();
            let docs = page.into_iter().map(|v| document(cluster, v)).filter(|d| in_scope(&d.value, ns)).collect();
            evaluate(cluster, &held, docs, &mut report).await?;
        }
        listed.insert(r.display(), count);
    }
    for r in &mut report.results {
        r.object.source = None;
    }
    let exceptions = engine.exceptions().cloned();
    Ok(Audit { report, namespaces: std::mem::take(&mut held.namespaces), listed, exceptions })
}
