//! Scanning: evaluate a set of objects read from files with an [`Engine`], the way
//! `palisade scan` and `palisade report` do. Every object scanned (plus any extra
//! inventory) becomes `data.inventory` and the source of Namespace lookups.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::decision::Decision;
use crate::documents::Document;
use crate::engine::{BundleInfo, Engine};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::inventory::Inventory;
use crate::object::ObjectRef;

/// The decision about one scanned object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// The object (with its file and document).
    pub object: ObjectRef,
    /// What the policies decided.
    pub decision: Decision,
}

/// Everything a scan found.
#[derive(Debug, Default, Serialize)]
pub struct ScanReport {
    /// The bundles used.
    pub bundles: Vec<BundleInfo>,
    /// One result per object, in input order.
    pub results: Vec<ObjectResult>,
    /// Files or documents that could not be read or are not Kubernetes objects.
    #[serde(serialize_with = "errors_as_text")]
    pub errors: Vec<Error>,
}

fn errors_as_text<S: serde::Serializer>(errors: &[Error], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(|e| serde_json::json!({"code": e.code(), "message": e.to_string()})))
}

impl ScanReport {
    /// Whether any object was denied.
    pub fn denied(&self) -> bool {
        self.results.iter().any(|r| !r.decision.allowed)
    }

    /// Whether any object has warnings.
    pub fn warned(&self) -> bool {
        self.results.iter().any(|r| !r.decision.warnings.is_empty())
    }
}

/// Options of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Namespace given to namespaced objects that do not set one (like `kubectl -n`).
    pub default_namespace: Option<String>,
    /// Objects added to the inventory and Namespace lookups without being evaluated.
    pub inventory: Vec<Document>,
    /// Worker threads (default: available parallelism).
    pub threads: Option<usize>,
}

/// Evaluates every document. `progress` is called with the number of objects done.
pub fn scan(
    engine: &Engine,
    documents: Vec<Document>,
    options: &ScanOptions,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<ScanReport> {
    let mut documents = documents;
    if let Some(ns) = &options.default_namespace {
        for d in documents.iter_mut() {
            set_default_namespace(&mut d.value, ns);
        }
    }
    let (engine, inventory) = prepare(engine, options.inventory.iter().chain(&documents))?;
    let mut report = evaluate_all(&engine, &inventory, documents, options.threads, progress);
    report.bundles = engine.bundles().cloned().collect();
    Ok(report)
}

/// The inventory of `documents` (only the kinds referential policies read: the rest
/// would be held twice for nothing), and `engine` seeing it.
pub fn prepare<'a>(engine: &Engine, documents: impl Iterator<Item = &'a Document>) -> Result<(Engine, Arc<Inventory>)> {
    let kinds = engine.inventory_kinds();
    let read = |v: &serde_json::Value| {
        kinds.as_ref().is_none_or(|ks| crate::object::Gvk::of(v).is_some_and(|g| ks.iter().any(|k| k.matches(&g))))
    };
    let mut inventory = Inventory::new();
    for d in documents.filter(|d| read(&d.value)) {
        inventory.add(&d.value);
    }
    let inventory = Arc::new(inventory);
    let engine = if engine.policies().iter().any(|p| p.is_referential()) {
        engine.with_inventory(inventory.clone())?
    } else {
        engine.clone()
    };
    Ok((engine, inventory))
}

/// Evaluates `documents` with an engine from [`prepare`], on `threads` workers; the
/// results (and errors) in document order, without the bundle list. Each document is
/// moved into its evaluation input, not copied.
pub fn evaluate_all(
    engine: &Engine,
    inventory: &Inventory,
    documents: Vec<Document>,
    threads: Option<usize>,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> ScanReport {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let places: Vec<String> =
        documents.iter().map(|d| format!("{}: document {}", d.source.file, d.source.document)).collect();
    let workers = threads.min(documents.len().max(1));
    let queue = Mutex::new(documents.into_iter().enumerate());
    let done = AtomicUsize::new(0);
    let mut slots: Vec<Option<std::result::Result<ObjectResult, Error>>> = Vec::new();
    slots.resize_with(places.len(), || None);
    let work = |out: &mut Vec<(usize, std::result::Result<ObjectResult, Error>)>| {
        loop {
            let next = queue.lock().map(|mut q| q.next()).unwrap_or_else(|poisoned| poisoned.into_inner().next());
            let Some((i, doc)) = next else { break };
            out.push((i, evaluate_document(engine, inventory, doc)));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(p) = progress {
                p(n);
            }
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    work(&mut out);
                    out
                })
            })
            .collect();
        for h in handles {
            // A worker can only panic on a bug; its objects are then missing, never silently allowed.
            if let Ok(out) = h.join() {
                for (i, r) in out {
                    slots[i] = Some(r);
                }
            }
        }
    });
    let mut report = ScanReport::default();
    for (slot, place) in slots.into_iter().zip(places) {
        match slot {
            Some(Ok(r)) => report.results.push(r),
            Some(Err(e)) => report.errors.push(e),
            None => report.errors.push(Error::input(place, "internal error: the object was not evaluated")),
        }
    }
    report
}

fn evaluate_document(engine: &Engine, inventory: &Inventory, doc: Document) -> Result<ObjectResult> {
    let mut input = Input::from_object_at(doc.value, Some(doc.source))?;
    if let Some(ns) = input.namespace().filter(|_| input.gvk().kind != "Namespace").and_then(|n| inventory.namespace(n))
    {
        input = input.with_namespace_object(ns.clone());
    }
    let decision = engine.evaluate(&input);
    Ok(ObjectResult { object: input.object_ref().clone(), decision })
}

fn set_default_namespace(obj: &mut Value, ns: &str) {
    let namespaced = crate::object::Gvk::of(obj).is_some_and(|g| g.is_namespaced());
    if !namespaced || crate::object::namespace(obj).is_some() {
        return;
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(ns.to_string()));
    }
}

/// Counts of objects by kind, for summaries and reports.
pub fn counts_by_kind(results: &[ObjectResult]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in results {
        *m.entry(r.object.kind.clone()).or_insert(0) += 1;
    }
    m
}
