//! `palisade serve --cluster` against the test cluster: the live inventory follows
//! objects created after serve started, in-cluster PolicyExceptions waive and stop
//! waiving, the background audit writes its reports, the deployed ServiceAccount may do
//! exactly what this needs, and an unreachable API server keeps serve unready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{self, Applied, apply};
use common::{palisade, root, text};
use e2e::*;
use serde_json::Value;
use tls::Ca;

/// A Pod of the compliant payments-api Deployment, in namespace `ns`.
fn payments_pod(good: &[Value], ns: &str) -> Value {
    let template = &find(good, "Deployment", "payments-api")["spec"]["template"];
    let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "spec": template["spec"].clone(),
        "metadata": {"name": "live-probe", "namespace": ns, "labels": template["metadata"]["labels"].clone()}});
    pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
    pod
}

#[test]
fn serve_with_a_live_inventory_sees_a_network_policy_created_after_it_started() {
    let _guard = cluster::lock();
    remove_webhook();
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let good = cluster::manifests(&root().join("examples/compliant"));
    let mut ns = find(&good, "Namespace", "payments").clone();
    ns["metadata"]["name"] = Value::from("cde-live");
    let deny_all = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "cde-live"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = cluster::client().await;
        cluster::delete(&client, "networking.k8s.io/v1", "NetworkPolicy", Some("cde-live"), "default-deny").await;
        cluster::delete(&client, "palisade.dev/v1alpha1", "PolicyException", None, "cde-live-migration").await;
        // The pod's RuntimeClass must exist before admission webhooks see the pod.
        assert!(apply(&client, find(&good, "RuntimeClass", "gvisor"), false).await.ok());
        assert!(apply(&client, &ns, false).await.ok());
        client
    });

    let kubeconfig = kubeconfig_arg();
    let args = ["--cluster", "--kubeconfig", &kubeconfig, "--audit-interval", "2s", "--kube-api-qps", "50"];
    let serve = Serve::start(&ca, dir.path(), &args);
    let tls = ca.client();
    let addr = serve.addr();
    let ready = rt.block_on(async { tls::connect(&tls, addr).await.unwrap().request("GET", "/readyz", vec![]).await });
    assert!(ready.1.contains("inventory: ") && ready.1.contains(" objects from https://127.0.0.1:"), "{}", ready.1);
    rt.block_on(async {
        let webhook = Webhook::register(&client, &ca_file, &serve.url(), "Fail").await;
        // No NetworkPolicy selects the pod: network-pod-coverage denies it...
        let pod = payments_pod(&good, "cde-live");
        let r = apply_until(&client, &pod, |r| !r.ok()).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert!(r.message().contains("[network-pod-coverage] (PCI DSS 1.3.1)"), "{}", r.message());
        // An in-cluster PolicyException waives it while it exists (audit sees it too)...
        let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24)).unwrap();
        let exception = serde_json::json!({"apiVersion": "palisade.dev/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "cde-live-migration"},
            "spec": {"policies": ["network-pod-coverage", "pci-dss/network-default-deny"],
                "match": {"namespaces": ["cde-live"]}, "justification": "NetworkPolicies being migrated",
                "compensatingControl": "node firewall", "approvedBy": ["security-lead@example.com"],
                "expires": expires.to_string()}});
        assert!(apply(&client, &exception, false).await.ok());
        let r = apply_until(&client, &pod, Applied::ok).await;
        assert!(r.ok(), "not waived: {}", r.message());
        assert!(r.warnings.iter().any(|w| w.contains("waived by exception cde-live-migration")), "{:?}", r.warnings);
        let k = kubeconfig_arg();
        let audit = tokio::task::spawn_blocking(move || {
            palisade(&["audit", "--kubeconfig", &k, "-n", "cde-live", "-o", "json"])
        });
        let audit = audit.await.unwrap();
        let waived = waived(&text(&audit.stdout));
        assert!(
            waived.iter().any(|w| w.0 == "Namespace" && w.3 == "network-default-deny" && w.4 == "cde-live-migration"),
            "{waived:?}"
        );
        // The evidence report lists it under its requirement, and warns of its expiry.
        let k = kubeconfig_arg();
        let report = tokio::task::spawn_blocking(move || {
            palisade(&["report", "--cluster", "--kubeconfig", &k, "-n", "cde-live"])
        });
        let report = report.await.unwrap();
        let (md, err) = (text(&report.stdout), text(&report.stderr));
        assert!(md.contains("| `cde-live-migration` | `network-default-deny` | namespaces cde-live |"), "{md}");
        assert!(err.contains("warning: exception cde-live-migration expires in 0 days"), "{err}");
        cluster::delete(&client, "palisade.dev/v1alpha1", "PolicyException", None, "cde-live-migration").await;
        let r = apply_until(&client, &pod, |r| !r.ok()).await;
        assert_eq!(r.status, 403, "still waived after the exception was deleted: {:?}", r.body);
        // ...and a NetworkPolicy created: the watch brings it to serve, no restart.
        assert!(apply(&client, &deny_all, false).await.ok());
        let r = apply_until(&client, &pod, Applied::ok).await;
        assert!(r.ok(), "still denied after the NetworkPolicy was created: {}", r.message());
        drop(webhook);
        cluster::delete(&client, "networking.k8s.io/v1", "NetworkPolicy", Some("cde-live"), "default-deny").await;
    });
    // The inventory is current, and the background audit has run and written its reports.
    let metrics = rt.block_on(async {
        let start = Instant::now();
        loop {
            let m = tls::connect(&tls, addr).await.unwrap().request("GET", "/metrics", vec![]).await.1;
            if m.contains("palisade_audits_total{result=\"success\"}") || start.elapsed() > Duration::from_secs(30) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    assert!(metrics.contains("palisade_inventory_synced 1"), "{metrics}");
    assert!(metrics.contains("palisade_inventory_age_seconds 0.0"), "{metrics}");
    assert!(metrics.contains("palisade_audits_total{result=\"success\"}"), "{metrics}");
    assert!(!metrics.contains("palisade_audits_total{result=\"failure\"}"), "{metrics}");
    let report = rt.block_on(async {
        let client = cluster::client().await;
        get(&client, "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/palisade-pci-dss").await
    });
    assert_eq!(report["metadata"]["labels"]["app.kubernetes.io/managed-by"], "palisade", "{report}");
    let about_cde_live = |r: &Value| {
        r["resources"][0]["name"] == "cde-live"
            && r["policy"] == "pci-dss/network-default-deny"
            && r["result"] == "fail"
    };
    assert!(report["results"].as_array().unwrap().iter().any(about_cde_live), "{report}");
}

/// Asks the API server whether the palisade ServiceAccount may `verb` `resource`.
async fn service_account_may(client: &kube::Client, verb: &str, group: &str, resource: &str) -> bool {
    let sar = serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:palisade-system:palisade",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:palisade-system", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": "payments"}}});
    let req = http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&sar).unwrap())
        .unwrap();
    let answer: Value = client.request(req).await.unwrap();
    answer["status"]["allowed"].as_bool().unwrap_or(false)
}

/// [`service_account_may`], asked again for up to 10 s while the answer is no: the API
/// server's RBAC authorizer sees roles applied a moment ago only once its cache has them.
async fn service_account_comes_to_be_allowed(client: &kube::Client, verb: &str, group: &str, resource: &str) -> bool {
    let start = std::time::Instant::now();
    loop {
        if service_account_may(client, verb, group, resource).await {
            return true;
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The kinds the pci-dss bundle's referential policies read (`inventory = [...]` keys).
fn bundle_inventory_kinds() -> BTreeSet<String> {
    let toml = std::fs::read_to_string(root().join("policy-bundles/pci-dss/bundle.toml")).unwrap();
    let mut kinds = BTreeSet::new();
    for line in toml.lines().filter_map(|l| l.strip_prefix("inventory = ")) {
        let list: Vec<String> = serde_json::from_str(line).unwrap();
        kinds.extend(list);
    }
    kinds
}

#[test]
fn the_deployed_service_account_reads_the_inventory_writes_reports_and_nothing_else() {
    let _guard = cluster::lock();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster::client().await;
        for obj in cluster::manifests(&root().join("deploy")) {
            if matches!(
                obj["kind"].as_str(),
                Some("Namespace" | "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding")
            ) {
                assert!(apply(&client, &obj, false).await.ok(), "{}", obj["kind"]);
            }
        }
        let plural = |kind: &str| match kind.to_lowercase() {
            k if k.ends_with('y') => format!("{}ies", &k[..k.len() - 1]),
            k if k.ends_with('s') => format!("{k}es"),
            k => format!("{k}s"),
        };
        let mut inventory: Vec<(String, String)> = bundle_inventory_kinds()
            .iter()
            .map(|k| {
                let (group, kind) = k.split_once('/').unwrap();
                (if group == "core" { String::new() } else { group.to_string() }, plural(kind))
            })
            .collect();
        inventory.push((String::new(), "namespaces".into()));
        inventory.push(("palisade.dev".into(), "policyexceptions".into()));
        assert!(inventory.len() >= 4, "{inventory:?}");
        let mut denied = Vec::new();
        for (group, resource) in &inventory {
            for verb in ["list", "watch"] {
                if !service_account_comes_to_be_allowed(&client, verb, group, resource).await {
                    denied.push(format!("{verb} {group}/{resource}"));
                }
            }
        }
        for (group, resource) in [
            ("wgpolicyk8s.io", "policyreports"),
            ("wgpolicyk8s.io", "clusterpolicyreports"),
            ("openreports.io", "reports"),
        ] {
            for verb in ["list", "create", "patch", "delete"] {
                if !service_account_comes_to_be_allowed(&client, verb, group, resource).await {
                    denied.push(format!("{verb} {group}/{resource}"));
                }
            }
        }
        assert!(denied.is_empty(), "the ServiceAccount lacks: {denied:?}");
        for (verb, group, resource) in [
            ("get", "", "secrets"),
            ("list", "", "secrets"),
            ("watch", "", "secrets"),
            ("list", "", "configmaps"),
            ("create", "", "pods"),
            ("delete", "networking.k8s.io", "networkpolicies"),
            ("update", "apps", "daemonsets"),
            ("patch", "", "namespaces"),
            ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
            ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        ] {
            assert!(!service_account_may(&client, verb, group, resource).await, "may {verb} {group}/{resource}");
        }
    });
}

#[test]
fn serve_with_an_unreachable_cluster_stays_unready_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = kubeconfig_with(dir.path(), Some(&format!("https://127.0.0.1:{port}")), "x");
    let ca = Ca::new();
    let serve = Serve::spawn(&ca, dir.path(), &["--cluster", "--kubeconfig", &gone]);
    let addr = serve.addr();
    let client = ca.client();
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let start = Instant::now();
        loop {
            if let Ok(mut c) = tls::connect(&client, addr).await {
                let (status, body) = c.request("GET", "/readyz", vec![]).await;
                if body.contains("inventory") || start.elapsed() > Duration::from_secs(30) {
                    return (status, body);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    drop(serve);
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(answer.1.contains("not ready: inventory: the kinds to watch are not resolved yet"), "{}", answer.1);
}
