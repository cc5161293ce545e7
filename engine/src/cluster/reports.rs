//! Writing audit results into the cluster as aggregated reports: one PolicyReport per
//! namespace and one ClusterPolicyReport per bundle (or openreports.io Report /
//! ClusterReport), each with a bounded result list (see
//! [`crate::report::policy_report::render_capped`]). Reports are server-side applied
//! by the field manager `palisade`; reports palisade wrote earlier that the new audit
//! no longer produces are deleted, so a namespace that is gone leaves nothing behind.
//! An audit of one namespace prunes only that namespace's reports.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::Value;

use super::Cluster;
use crate::engine::Policy;
use crate::error::{Error, Result};
use crate::report::policy_report::{self, Flavor};
use crate::scan::ScanReport;

const MANAGED: &str = "app.kubernetes.io/managed-by=palisade";

/// What [`write()`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// Reports created or updated.
    pub reports: usize,
    /// Results written, over all reports.
    pub results: usize,
    /// Results left out by the cap (counted in each report's summary).
    pub omitted: usize,
    /// Bytes of the objects applied (their JSON), what the reports add to etcd.
    pub bytes: usize,
    /// Stale reports deleted.
    pub deleted: usize,
}

fn resources(flavor: Flavor) -> (ApiResource, ApiResource) {
    let (group, version, ns_kind, ns_plural, c_kind, c_plural) = match flavor {
        Flavor::WgPolicy => (
            "wgpolicyk8s.io",
            "v1alpha2",
            "PolicyReport",
            "policyreports",
            "ClusterPolicyReport",
            "clusterpolicyreports",
        ),
        Flavor::OpenReports => ("openreports.io", "v1alpha1", "Report", "reports", "ClusterReport", "clusterreports"),
    };
    let ar = |kind, plural| ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    (ar(ns_kind, ns_plural), ar(c_kind, c_plural))
}

/// Applies the aggregated reports of `report` to the cluster, `cap` results per report.
/// `namespace`: the audit covered that namespace alone, so reports elsewhere (and the
/// cluster-scoped ones) are left as they are.
pub async fn write(
    cluster: &Cluster,
    report: &ScanReport,
    policies: &[Policy],
    (flavor, cap): (Flavor, usize),
    namespace: Option<&str>,
) -> Result<Written> {
    // One report at a time: rendered, applied, dropped.
    let docs = policy_report::render_each(report, policies, flavor, jiff::Timestamp::now(), Some(cap));
    let (namespaced, clustered) = resources(flavor);
    let params = PatchParams::apply("palisade").force();
    let mut out = Written::default();
    let mut kept: Vec<(Option<String>, String)> = Vec::new();
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
        // An audit of one namespace also evaluates its Namespace object, which would make
        // a cluster-scoped report of that one object: keep the cluster's report whole.
        if namespace.is_some() && ns.is_none() {
            continue;
        }
        let (api, ar): (Api<DynamicObject>, &ApiResource) = match &ns {
            Some(ns) => (Api::namespaced_with(cluster.client().clone(), ns, &namespaced), &namespaced),
            None => (Api::all_with(cluster.client().clone(), &clustered), &clustered),
        };
        let what = describe("apply", ar, &name, ns.as_deref());
        api.patch(&name, &params, &Patch::Apply(&doc)).await.map_err(|e| hint(cluster.error(&what, &e)))?;
        out.reports += 1;
        out.bytes += serde_json::to_vec(&doc).map(|b| b.len()).unwrap_or(0);
        out.results += doc["results"].as_array().map_or(0, Vec::len);
        out.omitted += omitted(&doc);
        kept.push((ns, name));
    }
    out.deleted = prune(cluster, &namespaced, namespace, &kept).await?;
    if namespace.is_none() {
        out.deleted += prune(cluster, &clustered, None, &kept).await?;
    }
    Ok(out)
}

fn omitted(doc: &Value) -> usize {
    doc["metadata"]["annotations"]["palisade.dev/results-omitted"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn describe(verb: &str, ar: &ApiResource, name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{verb} {} {} {name} in namespace {ns}", ar.api_version, ar.kind),
        None => format!("{verb} {} {} {name}", ar.api_version, ar.kind),
    }
}

/// A 404 on a report kind almost always means its CRD is not installed.
fn hint(e: Error) -> Error {
    match e {
        Error::Cluster { cluster, what, status: Some(404), message } => Error::Cluster {
            cluster,
            what,
            status: Some(404),
            message: format!("{message}; is the report CRD installed? (deploy/crds)"),
        },
        e => e,
    }
}

/// Deletes reports labelled as palisade's (in `namespace`, or anywhere) that are not
/// in `kept`.
async fn prune(
    cluster: &Cluster,
    ar: &ApiResource,
    namespace: Option<&str>,
    kept: &[(Option<String>, String)],
) -> Result<usize> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(cluster.client().clone(), ns, ar),
        None => Api::all_with(cluster.client().clone(), ar),
    };
    let what = format!("list {} {}", ar.api_version, ar.kind);
    let list = api.list(&ListParams::default().labels(MANAGED)).await.map_err(|e| hint(cluster.error(&what, &e)))?;
    let mut deleted = 0;
    for item in list.items {
        let (ns, name) = (item.metadata.namespace.clone(), item.metadata.name.clone().unwrap_or_default());
        if kept.iter().any(|(n, m)| *n == ns && *m == name) {
            continue;
        }
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(cluster.client().clone(), ns, ar),
            None => Api::all_with(cluster.client().clone(), ar),
        };
        let what = describe("delete", ar, &name, ns.as_deref());
        api.delete(&name, &DeleteParams::default()).await.map_err(|e| cluster.error(&what, &e))?;
        deleted += 1;
    }
    Ok(deleted)
}
