//! Gatekeeper compatibility: ConstraintTemplates and Constraints written for this
//! project (engine/tests/gatekeeper, see its README for every expected outcome) run
//! unchanged through `palisade test` (gator verify suites) and `palisade scan`, and
//! scans come out as PolicyReports in both published shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::text;
use serde_json::Value;

fn palisade(args: &[&str]) -> Output {
    common::palisade_in(&common::engine_dir().join("tests/gatekeeper"), args)
}

#[test]
fn gator_suites_pass() {
    let o = palisade(&["test", "suites", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases: usize = v["bundles"].as_array().unwrap().iter().map(|b| b["cases"].as_array().unwrap().len()).sum();
    assert_eq!(cases, 57);
    assert_eq!(v["passed"], true);
}

#[test]
fn cel_only_templates_run_on_the_cel_engine_as_gator_runs_them() {
    let o = palisade(&["test", "suites/...", "-v"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "PASS  suites/cel-only/cel-only.yaml k8scelonly.max-replicas: max-replicas / fifty-replicas-warned"
        ),
        "{out}"
    );
}

fn scan(args: &[&str]) -> Value {
    let mut all = vec!["scan", "-b", "gatekeeper:.", "-o", "json"];
    all.extend_from_slice(args);
    let o = palisade(&all);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// (object, policy, what) for every finding and error.
fn outcomes(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in report["results"].as_array().unwrap() {
        let o = &r["object"];
        let obj = format!("{}/{}", o["kind"].as_str().unwrap(), o["name"].as_str().unwrap());
        let d = &r["decision"];
        for v in d["violations"].as_array().unwrap().iter().chain(d["warnings"].as_array().unwrap()) {
            out.push((
                obj.clone(),
                v["policy"].as_str().unwrap().into(),
                format!("{}: {}", v["action"].as_str().unwrap(), v["message"].as_str().unwrap()),
            ));
        }
        for e in d["errors"].as_array().unwrap() {
            out.push((
                obj.clone(),
                e["policy"].as_str().unwrap().into(),
                format!("error: {}", e["message"].as_str().unwrap()),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn scan_with_a_cluster_snapshot_as_inventory() {
    let r = scan(&["--inventory", "scan/cluster-snapshot.yaml", "scan/changes.yaml"]);
    assert_eq!(r["summary"]["objects"], 5, "only the changes are judged");
    let got = outcomes(&r);
    let want = [
        ("Deployment/checkout", "k8scelonly.max-replicas", "warn: replicas must be at most 10, got 12"),
        (
            "Ingress/shop",
            "k8suniqueingresshost.unique-ingress-host",
            "deny: ingress host <shop.example.com> is already used by ingress <marketing/storefront>",
        ),
        (
            "Namespace/team-data",
            "k8srequiredlabels.team-ns-cost-center",
            "warn: team namespaces must carry a cost-center label",
        ),
        (
            "Pod/tool",
            "k8sallowedrepos.staging-allowed-repos",
            "audit: container <tool> uses image <quay.io/example/tool:1.0> from a repository that is not allowed",
        ),
        (
            "Pod/tool",
            "k8spspprivilegedcontainer.psp-privileged-container",
            "deny: privileged container is not allowed: <tool>",
        ),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn scan_without_the_snapshot_reports_gatekeepers_autoreject() {
    let got = outcomes(&scan(&["scan/changes.yaml"]));
    assert!(
        got.contains(&(
            "Pod/tool".into(),
            "k8sallowedrepos.staging-allowed-repos".into(),
            "error: unable to match constraints: namespace selector for namespace-scoped object but missing Namespace"
                .into()
        ))
    );
    assert!(!got.iter().any(|(o, p, _)| o == "Ingress/shop" && p.contains("unique")), "{got:?}");
}

#[test]
fn a_directory_without_bundle_toml_is_detected_as_gatekeeper() {
    let explicit = outcomes(&scan(&["scan/changes.yaml"]));
    let o = palisade(&["scan", "-b", ".", "-o", "json", "scan/changes.yaml"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o.stderr));
    let detected = outcomes(&serde_json::from_slice(&o.stdout).unwrap());
    assert!(!explicit.is_empty());
    assert_eq!(detected, explicit);
}

#[test]
fn referential_check_over_the_snapshot_itself() {
    let got = outcomes(&scan(&["scan/cluster-snapshot.yaml"]));
    assert_eq!(
        got,
        [
            (
                "Ingress/shop".to_string(),
                "k8suniqueingresshost.unique-ingress-host".to_string(),
                "deny: ingress host <shop.example.com> is already used by ingress <marketing/storefront>".to_string()
            ),
            (
                "Ingress/storefront".to_string(),
                "k8suniqueingresshost.unique-ingress-host".to_string(),
                "deny: ingress host <shop.example.com> is already used by ingress <prod/shop>".to_string()
            ),
        ]
    );
}

/// Checks one report against the structure the published CRDs define.
fn check_report(doc: &Value, api: &str, namespaced_kind: &str, cluster_kind: &str, severities: &[&str]) {
    assert_eq!(doc["apiVersion"], api);
    let kind = doc["kind"].as_str().unwrap();
    assert!(kind == namespaced_kind || kind == cluster_kind, "{kind}");
    let meta = &doc["metadata"];
    assert!(meta["name"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(kind == namespaced_kind, meta["namespace"].is_string(), "namespace only on namespaced reports");
    let results = doc["results"].as_array().unwrap();
    let mut counted = std::collections::BTreeMap::new();
    for r in results {
        let obj = r.as_object().unwrap();
        for k in obj.keys() {
            assert!(
                [
                    "source",
                    "policy",
                    "rule",
                    "category",
                    "severity",
                    "timestamp",
                    "result",
                    "scored",
                    "resources",
                    "message",
                    "properties"
                ]
                .contains(&k.as_str()),
                "unknown result field {k}"
            );
        }
        assert!(r["policy"].as_str().is_some_and(|p| !p.is_empty()), "policy is required");
        let result = r["result"].as_str().unwrap();
        assert!(["pass", "fail", "warn", "error", "skip"].contains(&result), "{result}");
        *counted.entry(result.to_string()).or_insert(0u64) += 1;
        if let Some(s) = r.get("severity") {
            assert!(severities.contains(&s.as_str().unwrap()), "{s}");
        }
        let ts = &r["timestamp"];
        assert!(ts["seconds"].as_i64().unwrap() > 1_700_000_000 && ts["nanos"].as_i64().unwrap() >= 0);
        assert!(r["scored"].is_boolean());
        for res in r["resources"].as_array().unwrap() {
            for k in ["apiVersion", "kind", "name"] {
                assert!(res[k].as_str().is_some_and(|s| !s.is_empty()), "resource lacks {k}: {res}");
            }
            assert_eq!(
                res.get("namespace").and_then(Value::as_str),
                meta["namespace"].as_str(),
                "resources sit in the report's namespace"
            );
        }
        for (_, v) in r["properties"].as_object().unwrap() {
            assert!(v.is_string(), "properties are strings");
        }
    }
    for k in ["pass", "fail", "warn", "error", "skip"] {
        assert_eq!(doc["summary"][k].as_u64().unwrap(), *counted.get(k).unwrap_or(&0), "summary.{k}");
    }
}

fn reports(format: &str) -> Vec<Value> {
    let o = palisade(&[
        "scan",
        "-b",
        "gatekeeper:.",
        "--inventory",
        "scan/cluster-snapshot.yaml",
        "-o",
        format,
        "scan/changes.yaml",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o.stderr));
    let mut docs = palisade::documents::Documents::default();
    docs.parse_text("-", &text(&o.stdout), palisade::documents::Format::Yaml);
    assert!(docs.errors.is_empty(), "{:?}", docs.errors);
    docs.documents.into_iter().map(|d| d.value).collect()
}

#[test]
fn policy_reports_follow_the_wgpolicyk8s_crd() {
    let docs = reports("policy-report");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"ClusterPolicyReport") && kinds.contains(&"PolicyReport"), "{kinds:?}");
    for d in &docs {
        check_report(d, "wgpolicyk8s.io/v1alpha2", "PolicyReport", "ClusterPolicyReport", &["high", "medium", "low"]);
    }
    let staging = docs.iter().find(|d| d["metadata"]["namespace"] == "staging").unwrap();
    let fail = staging["results"].as_array().unwrap().iter().find(|r| r["result"] == "fail").unwrap();
    assert_eq!(fail["policy"], "gatekeeper/k8spspprivilegedcontainer.psp-privileged-container");
    assert_eq!(fail["resources"][0]["kind"], "Pod");
    assert_eq!(fail["message"], "privileged container is not allowed: <tool>");
    let prod = docs.iter().find(|d| d["metadata"]["namespace"] == "prod").unwrap();
    assert!(
        prod["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["result"] == "warn" && r["policy"] == "gatekeeper/k8scelonly.max-replicas"),
        "the CEL-only template's warning is reported"
    );
}

#[test]
fn openreports_follow_their_crd() {
    let docs = reports("openreports");
    for d in &docs {
        check_report(
            d,
            "openreports.io/v1alpha1",
            "Report",
            "ClusterReport",
            &["critical", "high", "medium", "low", "info"],
        );
        assert_eq!(d["source"], "palisade");
    }
    assert!(docs.iter().any(|d| d["kind"] == "ClusterReport"));
}
