//! PolicyReport output: `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace and
//! ClusterPolicyReport per bundle for cluster-scoped objects, or the same in the
//! `openreports.io/v1alpha1` shape (Report, ClusterReport). One result per policy
//! evaluated on each object: `pass`, or one `fail`/`warn` per finding, `error` when
//! the policy failed to evaluate, `skip` when it was skipped.

use std::collections::BTreeMap;

use serde::Serialize;
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
    render_each(report, policies, flavor, now, cap).collect()
}

/// [`render_capped`] one report at a time, for a writer that sends each as it comes:
/// results are held in a compact form and trimmed to the cap as they are found, and
/// only the kept ones become JSON, so memory follows the cap, not the cluster.
pub fn render_each<'a>(
    report: &'a ScanReport,
    policies: &'a [Policy],
    flavor: Flavor,
    now: jiff::Timestamp,
    cap: Option<usize>,
) -> impl Iterator<Item = Value> + 'a {
    let timestamp = Stamp { seconds: now.as_second(), nanos: 0 };
    let info: BTreeMap<(&str, &str), &Policy> =
        policies.iter().map(|p| ((p.bundle().name.as_str(), p.spec().id.as_str()), p)).collect();
    // (namespace, "") or ("", bundle) for cluster-scoped objects -> results
    let mut groups: BTreeMap<(String, String), Group<'a>> = BTreeMap::new();
    for r in &report.results {
        for (bundle, e) in entries(r, &info, flavor, timestamp) {
            let ns = r.object.namespace.clone().unwrap_or_default();
            let key = if ns.is_empty() { (String::new(), bundle) } else { (ns, String::new()) };
            groups.entry(key).or_default().push(e, cap);
        }
    }
    groups.into_iter().map(move |((ns, bundle), group)| document(flavor, &ns, &bundle, group, cap))
}

/// One result, as both report APIs write it; serialised only if it is kept.
#[derive(Serialize)]
struct Entry<'a> {
    source: &'static str,
    policy: String,
    rule: &'a str,
    result: &'static str,
    scored: bool,
    timestamp: Stamp,
    resources: [Value; 1],
    message: String,
    properties: serde_json::Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
}

/// A result's time, as both report APIs write it.
#[derive(Clone, Copy, Serialize)]
struct Stamp {
    seconds: i64,
    nanos: i32,
}

/// The results of one report as they are found: all counted, at most twice the cap
/// held (trimmed to the cap, best first, whenever that is reached).
#[derive(Default)]
struct Group<'a> {
    results: Vec<Entry<'a>>,
    counts: BTreeMap<&'static str, usize>,
    omitted: usize,
}

impl<'a> Group<'a> {
    fn push(&mut self, e: Entry<'a>, cap: Option<usize>) {
        *self.counts.entry(e.result).or_default() += 1;
        self.results.push(e);
        if let Some(cap) = cap
            && self.results.len() >= cap.saturating_mul(2).max(cap + 1)
        {
            self.trim(cap);
        }
    }

    /// Keeps the first `cap` results in order of [`rank`], then of arrival (a stable
    /// sort: the same results as sorting them all at the end).
    fn trim(&mut self, cap: usize) {
        if self.results.len() > cap {
            self.results.sort_by_key(|e| rank(Some(e.result)));
            self.omitted += self.results.len() - cap;
            self.results.truncate(cap);
        }
    }
}

/// The entries of one object's decision, each with its bundle's name.
fn entries<'a>(
    r: &'a crate::scan::ObjectResult,
    info: &BTreeMap<(&str, &str), &'a Policy>,
    flavor: Flavor,
    timestamp: Stamp,
) -> Vec<(String, Entry<'a>)> {
    let d = &r.decision;
    let mut out = Vec::new();
    let mut push = |bundle: &'a str,
                    policy: &'a str,
                    result: &'static str,
                    message: String,
                    action: Option<Action>,
                    ex: Option<&ExceptionRef>,
                    expired: Option<&ExceptionRef>| {
        let mut e = Entry {
            source: "palisade",
            policy: format!("{bundle}/{policy}"),
            rule: policy,
            result,
            scored: true,
            timestamp,
            resources: [resource(&r.object)],
            message,
            properties: serde_json::Map::new(),
            category: None,
            severity: None,
        };
        // Properties are string-valued in both report APIs.
        let props = &mut e.properties;
        put(props, "bundle", bundle);
        if let Some(p) = info.get(&(bundle, policy)) {
            let s = p.spec();
            put(props, "bundleVersion", &p.bundle().version);
            put(props, "title", &s.title);
            if !s.requirements.is_empty() {
                // The framework the bundle declares; PCI DSS ids are those of v4.0.1.
                let framework = match p.bundle().framework.as_deref() {
                    Some("PCI DSS") => "PCI DSS v4.0.1",
                    Some(other) => other,
                    None => "requirements",
                };
                e.category = Some(format!("{framework} {}", s.requirements.join(", ")));
            }
            e.severity = Some(severity(s.severity, flavor));
        }
        if let Some(a) = action {
            put(props, "action", &a.to_string());
        }
        if let Some(x) = expired {
            put(props, "expiredException", &x.name);
            put(props, "exceptionExpired", &x.expires);
        }
        if let Some(x) = ex {
            put(props, "exception", &x.name);
            put(props, "exceptionExpires", &x.expires);
            put(props, "approvedBy", &x.approved_by.join(", "));
            if let Some(t) = &x.ticket {
                put(props, "ticket", t);
            }
        }
        out.push((bundle.to_string(), e));
    };
    for ev in &d.evaluated {
        let mine = |b: &str, p: &str| p == ev.policy && b == ev.bundle;
        let found: Vec<_> = d.violations.iter().chain(&d.warnings).filter(|v| mine(&v.bundle, &v.policy)).collect();
        let errors: Vec<_> = d.errors.iter().filter(|x| mine(&x.bundle, &x.policy)).collect();
        let waived: Vec<_> = d.waived.iter().filter(|w| mine(&w.violation.bundle, &w.violation.policy)).collect();
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
            push(&ev.bundle, &ev.policy, "pass", "no finding".into(), None, None, None);
        }
    }
    for s in &d.skipped {
        push(&s.bundle, &s.policy, "skip", s.reason.clone(), None, None, None);
    }
    out
}

fn put(properties: &mut serde_json::Map<String, Value>, key: &str, value: &str) {
    properties.insert(key.to_string(), json!(value));
}

/// The report of one namespace (or of one bundle's cluster-scoped objects).
fn document(flavor: Flavor, ns: &str, bundle: &str, mut group: Group<'_>, cap: Option<usize>) -> Value {
    let (api, ns_kind, cluster_kind) = match flavor {
        Flavor::WgPolicy => ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "ClusterPolicyReport"),
        Flavor::OpenReports => ("openreports.io/v1alpha1", "Report", "ClusterReport"),
    };
    if let Some(cap) = cap {
        group.trim(cap);
    }
    let mut summary = json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
    for (k, n) in &group.counts {
        summary[*k] = json!(n);
    }
    let mut metadata = json!({"labels": {"app.kubernetes.io/managed-by": "palisade"}});
    if group.omitted > 0 {
        metadata["annotations"] = json!({"palisade.dev/results-omitted": group.omitted.to_string()});
    }
    let kind = if ns.is_empty() {
        metadata["name"] = json!(format!("palisade-{bundle}"));
        cluster_kind
    } else {
        metadata["name"] = json!(format!("palisade-{ns}"));
        metadata["namespace"] = json!(ns);
        ns_kind
    };
    let results = serde_json::to_value(&group.results).unwrap_or_else(|_| json!([]));
    let mut doc =
        json!({"apiVersion": api, "kind": kind, "metadata": metadata, "summary": summary, "results": results});
    if flavor == Flavor::OpenReports {
        doc["source"] = json!("palisade");
    }
    doc
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Document;
    use crate::object::SourceLocation;

    /// Trimming as results arrive keeps exactly what sorting them all at the end and
    /// cutting at the cap keeps, and the summary still counts every result.
    #[test]
    fn capped_reports_keep_what_needs_attention_first_and_count_the_rest() {
        let bundle = crate::Bundle::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bundles/basic")).unwrap();
        let engine = crate::Engine::builder().bundle(bundle).build().unwrap();
        let docs = (0..30)
            .map(|i| {
                let image = if i % 3 == 0 { "nginx:latest" } else { "nginx:1.27" };
                let value = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p{i}"), "namespace": "shop", "labels": {"app": "a", "owner": "o"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}});
                Document { value, source: SourceLocation { file: "t.yaml".into(), document: i + 1, line: 1 } }
            })
            .collect();
        let report = crate::scan::scan(&engine, docs, &Default::default(), None).unwrap();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let full = render(&report, engine.policies(), Flavor::WgPolicy, now);
        let total = full[0]["results"].as_array().unwrap().len();
        assert!(total > 30, "{total}");
        for cap in [1, 4, 11, total - 1, total, 1000] {
            let capped = render_capped(&report, engine.policies(), Flavor::WgPolicy, now, Some(cap));
            assert_eq!(capped.len(), full.len());
            // As before: under the cap in arrival order; over it, sorted, then cut.
            let mut expected = full[0]["results"].as_array().unwrap().clone();
            if total > cap {
                expected.sort_by_key(|r| rank(r["result"].as_str()));
                expected.truncate(cap);
            }
            assert!(capped[0]["results"].as_array().unwrap() == &expected, "cap {cap}: other results kept");
            assert_eq!(capped[0]["summary"], full[0]["summary"]);
            let omitted = capped[0]["metadata"]["annotations"]["palisade.dev/results-omitted"].as_str();
            assert_eq!(omitted.map(|n| n.parse::<usize>().unwrap()).unwrap_or(0), total.saturating_sub(cap));
        }
    }
}
