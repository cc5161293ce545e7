//! PolicyReport output: `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace and
//! ClusterPolicyReport per bundle for cluster-scoped objects, or the same in the
//! `openreports.io/v1alpha1` shape (Report, ClusterReport). One result per policy
//! evaluated on each object: `pass`, or one `fail`/`warn` per finding, `error` when
//! the policy failed to evaluate, `skip` when it was skipped.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::decision::{Action, ExceptionRef, Severity};
use crate::engine::Policy;
use crate::object::ObjectRef;
use crate::scan::ScanReport;

/// Which CRDs to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport / ClusterPolicyReport.
    WgPolicy,
    /// `openreports.io/v1alpha1` Report / ClusterReport.
    OpenReports,
}

/// Severities both CRD generations accept (the older wgpolicyk8s CRD knows only these three).
fn severity(s: Severity, flavor: Flavor) -> &'static str {
    match (s, flavor) {
        (Severity::Critical, Flavor::OpenReports) => "critical",
        (Severity::Info, Flavor::OpenReports) => "info",
        (Severity::Critical | Severity::High, _) => "high",
        (Severity::Medium, _) => "medium",
        (Severity::Low | Severity::Info, _) => "low",
    }
}

fn resource(o: &ObjectRef) -> Value {
    let mut r = json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name});
    if let Some(ns) = &o.namespace {
        r["namespace"] = json!(ns);
    }
    r
}

/// Builds the reports (one per namespace, one per bundle for cluster-scoped objects),
/// with every result.
pub fn render(report: &ScanReport, policies: &[Policy], flavor: Flavor, now: jiff::Timestamp) -> Vec<Value> {
    render_capped(report, policies, flavor, now, None)
}

/// Like [`render`], with at most `cap` results per report: findings and errors are
/// kept first, then skips, then passes. The summary still counts every result, and
/// the annotation `palisade.dev/results-omitted` says how many were left out.
pub fn render_capped(
    report: &ScanReport,
    policies: &[Policy],
    flavor: Flavor,
    now: jiff::Timestamp,
    cap: Option<usize>,
) -> Vec<Value> {
    let timestamp = json!({"seconds": now.as_second(), "nanos": 0});
    let info: BTreeMap<(&str, &str), &Policy> =
        policies.iter().map(|p| ((p.bundle().name.as_str(), p.spec().id.as_str()), p)).collect();
    // (namespace, "") or ("", bundle) for cluster-scoped objects -> results
    let mut groups: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for r in &report.results {
        let ns = r.object.namespace.clone().unwrap_or_default();
        let d = &r.decision;
        let mut push = |bundle: &str,
                        policy: &str,
                        result: &str,
                        message: String,
                        action: Option<Action>,
                        ex: Option<&ExceptionRef>,
                        expired: Option<&ExceptionRef>| {
            let p = info.get(&(bundle, policy));
            let mut v = json!({
                "source": "palisade",
                "policy": format!("{bundle}/{policy}"),
                "rule": policy,
                "result": result,
                "scored": true,
                "timestamp": timestamp,
                "resources": [resource(&r.object)],
                "message": message,
                "properties": {"bundle": bundle},
            });
            if let Some(p) = p {
                let s = p.spec();
                if !s.requirements.is_empty() {
                    // The framework the bundle declares; PCI DSS ids are those of v4.0.1.
                    let framework = match p.bundle().framework.as_deref() {
                        Some("PCI DSS") => "PCI DSS v4.0.1",
                        Some(other) => other,
                        None => "requirements",
                    };
                    v["category"] = json!(format!("{framework} {}", s.requirements.join(", ")));
                }
                v["severity"] = json!(severity(s.severity, flavor));
                v["properties"]["bundleVersion"] = json!(p.bundle().version);
                v["properties"]["title"] = json!(s.title);
            }
            if let Some(a) = action {
                v["properties"]["action"] = json!(a.to_string());
            }
            if let Some(e) = expired {
                v["properties"]["expiredException"] = json!(e.name);
                v["properties"]["exceptionExpired"] = json!(e.expires);
            }
            if let Some(e) = ex {
                // Properties are string-valued in both report APIs.
                v["properties"]["exception"] = json!(e.name);
                v["properties"]["exceptionExpires"] = json!(e.expires);
                v["properties"]["approvedBy"] = json!(e.approved_by.join(", "));
                if let Some(t) = &e.ticket {
                    v["properties"]["ticket"] = json!(t);
                }
            }
            let key = if ns.is_empty() { (String::new(), bundle.to_string()) } else { (ns.clone(), String::new()) };
            groups.entry(key).or_default().push(v);
        };
        for e in &d.evaluated {
            let found: Vec<_> = d
                .violations
                .iter()
                .chain(&d.warnings)
                .filter(|v| v.policy == e.policy && v.bundle == e.bundle)
                .collect();
            let errors: Vec<_> = d.errors.iter().filter(|x| x.policy == e.policy && x.bundle == e.bundle).collect();
            let waived: Vec<_> =
                d.waived.iter().filter(|w| w.violation.policy == e.policy && w.violation.bundle == e.bundle).collect();
            for v in &found {
                let result = if v.action == Action::Warn { "warn" } else { "fail" };
                let message = format!("{}{}", v.message, v.expired_note());
                push(&v.bundle, &v.policy, result, message, Some(v.action), None, v.expired_exception.as_ref());
            }
            for w in &waived {
                let (v, x) = (&w.violation, &w.exception);
                let message = format!("waived by exception {}: {}", x.name, v.message);
                push(&v.bundle, &v.policy, "skip", message, Some(v.action), Some(x), None);
            }
            for x in &errors {
                push(&x.bundle, &x.policy, "error", x.message.clone(), None, None, None);
            }
            if found.is_empty() && errors.is_empty() && waived.is_empty() {
                push(&e.bundle, &e.policy, "pass", "no finding".into(), None, None, None);
            }
        }
        for s in &d.skipped {
            push(&s.bundle, &s.policy, "skip", s.reason.clone(), None, None, None);
        }
    }
    let (api, ns_kind, cluster_kind) = match flavor {
        Flavor::WgPolicy => ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "ClusterPolicyReport"),
        Flavor::OpenReports => ("openreports.io/v1alpha1", "Report", "ClusterReport"),
    };
    groups
        .into_iter()
        .map(|((ns, bundle), mut results)| {
            let mut summary = json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
            for r in &results {
                if let Some(k) = r["result"].as_str() {
                    summary[k] = json!(summary[k].as_u64().unwrap_or(0) + 1);
                }
            }
            let mut metadata = json!({"labels": {"app.kubernetes.io/managed-by": "palisade"}});
            if let Some(cap) = cap.filter(|c| results.len() > *c) {
                results.sort_by_key(|r| rank(r["result"].as_str()));
                let omitted = results.len() - cap;
                results.truncate(cap);
                metadata["annotations"] = json!({"palisade.dev/results-omitted": omitted.to_string()});
            }
            let kind = if ns.is_empty() {
                metadata["name"] = json!(format!("palisade-{bundle}"));
                cluster_kind
            } else {
                metadata["name"] = json!(format!("palisade-{ns}"));
                metadata["namespace"] = json!(ns);
                ns_kind
            };
            let mut doc =
                json!({"apiVersion": api, "kind": kind, "metadata": metadata, "summary": summary, "results": results});
            if flavor == Flavor::OpenReports {
                doc["source"] = json!("palisade");
            }
            doc
        })
        .collect()
}

/// Order of results kept under a cap: what needs attention first.
fn rank(result: Option<&str>) -> u8 {
    match result {
        Some("fail" | "error") => 0,
        Some("warn") => 1,
        Some("skip") => 2,
        _ => 3,
    }
}
