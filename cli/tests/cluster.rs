//! Palisade against a real kube-apiserver (the test cluster of
//! `scripts/test-cluster.sh`, started by the first test that needs it): `palisade
//! audit` lists what a scan of the same manifests reads and finds the same; the API
//! server itself calls `palisade serve` through a ValidatingWebhookConfiguration made
//! by `palisade webhook-config`, and follows its failure policy when serve is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::collections::{BTreeMap, BTreeSet};

use common::cluster::{self, Applied, apply};
use common::{code, palisade, root, text};
use e2e::*;
use serde_json::Value;

#[test]
fn audit_of_a_cluster_finds_what_a_scan_of_its_manifests_finds() {
    let _guard = cluster::lock();
    remove_webhook();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = root().join("examples/non-compliant");
    rt.block_on(async {
        let client = cluster::client().await;
        cluster::install_example_crds(&client).await;
        for obj in cluster::manifests(&dir) {
            let r = apply(&client, &obj, false).await;
            assert!(r.ok(), "{} {}: {:?}", obj["kind"], obj["metadata"]["name"], r.body);
        }
    });
    let scan = palisade(&["scan", "-o", "json", dir.to_str().unwrap()]);
    assert_eq!(code(&scan), 1, "{}", text(&scan.stderr));
    let audit = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "-o", "json", "--page-size", "3"]);
    assert_eq!(code(&audit), 1, "{}", text(&audit.stderr));
    // Other tests leave objects of their own in the cluster: compare the examples' objects.
    let examples: BTreeSet<(String, String, String)> = cluster::manifests(&dir)
        .iter()
        .map(|o| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&o["kind"]), s(&o["metadata"]["namespace"]), s(&o["metadata"]["name"]))
        })
        .collect();
    let scanned = findings(&text(&scan.stdout));
    let audited: BTreeSet<_> = findings(&text(&audit.stdout))
        .into_iter()
        .filter(|(k, ns, n, _)| examples.contains(&(k.clone(), ns.clone(), n.clone())))
        .collect();
    assert!(scanned.len() > 40, "{scanned:?}");
    let missing: Vec<_> = scanned.difference(&audited).collect();
    let extra: Vec<_> = audited.difference(&scanned).collect();
    assert!(missing.is_empty() && extra.is_empty(), "audit differs from scan: missing {missing:?}, extra {extra:?}");

    // ValidatingAdmissionPolicies (with their parameter objects) audit the cluster as
    // they scan its manifests.
    let vap = format!("vap:{}", root().join("policy-bundles/vap-example").display());
    let audit = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "-b", &vap]);
    assert_eq!(code(&audit), 1, "{}", text(&audit.stderr));
    assert!(text(&audit.stdout).contains("images from unapproved registries: postgres:16"), "{}", text(&audit.stdout));

    // A PolicyException waives the same findings in both.
    let tmp = tempfile::tempdir().unwrap();
    let ex = tmp.path().join("exception.yaml");
    let expires = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 30)).unwrap();
    std::fs::write(
        &ex,
        format!(
            "apiVersion: palisade.dev/v1alpha1\nkind: PolicyException\nmetadata: {{name: payments-latest}}\n\
        spec: {{policies: [no-latest-tag], match: {{namespaces: [payments]}}, justification: j, compensatingControl: c,\
        approvedBy: [a], expires: \"{expires}\"}}\n"
        ),
    )
    .unwrap();
    let ex = ex.to_str().unwrap();
    let scan = palisade(&["scan", "-o", "json", "--exceptions", ex, dir.to_str().unwrap()]);
    let audit = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "-o", "json", "--exceptions", ex]);
    let (scanned, audited) = (waived(&text(&scan.stdout)), waived(&text(&audit.stdout)));
    assert!(!scanned.is_empty(), "{}", text(&scan.stderr));
    let audited: BTreeSet<_> =
        audited.into_iter().filter(|(k, ns, n, _, _)| examples.contains(&(k.clone(), ns.clone(), n.clone()))).collect();
    assert_eq!(scanned, audited);

    // Aggregated reports: one PolicyReport per namespace, one ClusterPolicyReport per
    // bundle, at most --report-results-cap results each, the rest counted.
    let w = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "--write-reports", "--report-results-cap", "5"]);
    assert_eq!(code(&w), 1, "{}", text(&w.stderr));
    assert!(text(&w.stderr).contains("omitted by the cap"), "{}", text(&w.stderr));
    let cluster_summary = rt.block_on(async {
        let client = cluster::client().await;
        let report =
            get(&client, "/apis/wgpolicyk8s.io/v1alpha2/namespaces/payments/policyreports/palisade-payments").await;
        assert_eq!(report["results"].as_array().unwrap().len(), 5, "{report}");
        assert!(report["summary"]["fail"].as_u64().unwrap() > 5, "{}", report["summary"]);
        assert!(report["results"].as_array().unwrap().iter().all(|r| r["result"] == "fail"), "failures come first");
        let omitted = report["metadata"]["annotations"]["palisade.dev/results-omitted"].as_str().unwrap();
        assert!(omitted.parse::<u64>().unwrap() > 0);
        let cluster_report = get(&client, "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/palisade-pci-dss").await;
        assert_eq!(cluster_report["kind"], "ClusterPolicyReport");
        // A report palisade wrote that no audit produces any more...
        let stale = serde_json::json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "palisade-stale", "namespace": "payments",
                "labels": {"app.kubernetes.io/managed-by": "palisade"}}, "results": []});
        assert!(apply(&client, &stale, false).await.ok());
        cluster_report["summary"].clone()
    });
    // ...is deleted by the next audit that writes reports; an audit of one namespace
    // leaves the other namespaces' and the cluster-scoped reports alone.
    let w = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "--write-reports", "-n", "payments"]);
    assert!(text(&w.stderr).contains("deleted 1 stale"), "{}", text(&w.stderr));
    rt.block_on(async {
        let client = cluster::client().await;
        let wg = "/apis/wgpolicyk8s.io/v1alpha2";
        assert!(!exists(&client, &format!("{wg}/namespaces/payments/policyreports/palisade-stale")).await);
        assert!(exists(&client, &format!("{wg}/namespaces/payments/policyreports/palisade-payments")).await);
        assert!(exists(&client, &format!("{wg}/namespaces/edge/policyreports/palisade-edge")).await);
        let cluster_report = get(&client, &format!("{wg}/clusterpolicyreports/palisade-pci-dss")).await;
        assert_eq!(cluster_report["summary"], cluster_summary, "the cluster's report was rewritten");
    });
    // The openreports.io API, on request.
    let w = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "--write-reports", "--report-api", "openreports"]);
    assert_eq!(code(&w), 1, "{}", text(&w.stderr));
    rt.block_on(async {
        let client = cluster::client().await;
        let report = get(&client, "/apis/openreports.io/v1alpha1/namespaces/payments/reports/palisade-payments").await;
        assert_eq!(report["kind"], "Report");
        assert!(report["summary"]["fail"].as_u64().unwrap() > 0, "{}", report["summary"]);
    });
}

#[test]
fn kube_apiserver_calls_the_webhook_and_follows_its_failure_policy() {
    let _guard = cluster::lock();
    remove_webhook();
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let (compliant, non_compliant) = (root().join("examples/compliant"), root().join("examples/non-compliant"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let good = cluster::manifests(&compliant);
    let bad = cluster::manifests(&non_compliant);
    let client = rt.block_on(async {
        let client = cluster::client().await;
        cluster::install_example_crds(&client).await;
        // Objects the audit test left (same names, some immutable fields differ): the
        // dry runs below are judged as creates of the examples, not as updates.
        for o in bad.iter().chain(&good).filter(|o| o["kind"] != "Namespace") {
            let (v, k, n) = (
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            );
            cluster::delete(&client, v, k, o["metadata"]["namespace"].as_str(), n).await;
        }
        client
    });

    // The compliant platform is admitted, object by object, as a dry run through the API server.
    let serve = Serve::start(&ca, dir.path(), &["--inventory", compliant.to_str().unwrap()]);
    rt.block_on(async {
        for ns in good.iter().filter(|o| o["kind"] == "Namespace") {
            assert!(apply(&client, ns, false).await.ok());
        }
        let webhook = Webhook::register(&client, &ca_file, &serve.url(), "Fail").await;
        // Wait until the API server calls the webhook: a non-compliant Deployment is denied.
        let probe = find(&bad, "Deployment", "payments-api");
        let r = apply_until(&client, probe, |r| !r.ok()).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert!(
            r.message().contains("admission webhook \"validate.palisade.dev\" denied the request"),
            "{}",
            r.message()
        );
        assert!(r.message().contains("[no-latest-tag] (PCI DSS 6.3.2)"), "{}", r.message());
        for obj in &good {
            let r = apply(&client, obj, true).await;
            assert!(r.ok(), "{} {} denied: {}", obj["kind"], obj["metadata"]["name"], r.message());
        }
        drop(webhook);
    });
    drop(serve);

    // The non-compliant one: every object the scan denies is denied.
    let scan = palisade(&["scan", "-o", "json", non_compliant.to_str().unwrap()]);
    let scan: Value = serde_json::from_slice(&scan.stdout).unwrap();
    let scan_denials: BTreeMap<(String, String, String), BTreeSet<String>> = scan["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"]["allowed"] == false && r["object"]["kind"] != "Namespace")
        // The webhook configuration leaves kube-system and kube-public to audit (a broken
        // webhook must not lock the control plane out), so their objects are not asked.
        .filter(|r| !matches!(r["object"]["namespace"].as_str(), Some("kube-system" | "kube-public")))
        .map(|r| {
            let deny = r["decision"]["violations"].as_array().unwrap().iter().filter(|v| v["action"] == "deny");
            (object_key(&r["object"]), deny.map(|v| v["policy"].as_str().unwrap().to_string()).collect())
        })
        .collect();
    let serve = Serve::start(&ca, dir.path(), &["--inventory", non_compliant.to_str().unwrap()]);
    rt.block_on(async {
        let webhook = Webhook::register(&client, &ca_file, &serve.url(), "Fail").await;
        let probe = find(&bad, "Deployment", "payments-api");
        assert_eq!(apply_until(&client, probe, |r| !r.ok()).await.status, 403);
        // Every object the scan denies is denied through the API server, and the message
        // names the policies that deny it, with their requirements.
        let mut through_api = BTreeMap::new();
        for obj in bad.iter().filter(|o| o["kind"] != "Namespace") {
            let r = apply(&client, obj, true).await;
            if r.status == 403 {
                through_api.insert(object_key(obj), r.message().to_string());
            }
        }
        let mut missing = Vec::new();
        for (key, policies) in &scan_denials {
            match through_api.get(key) {
                None => missing.push(format!("{key:?} (scan: {policies:?})")),
                Some(message) => {
                    for p in policies {
                        assert!(message.contains(&format!("[{p}] (PCI DSS ")), "{key:?}: no [{p}] in {message}");
                    }
                }
            }
        }
        assert!(missing.is_empty(), "denied by scan, admitted by the API server: {missing:#?}");
        assert_eq!(through_api.len(), scan_denials.len(), "{:#?}", through_api.keys());
        // A `warn` policy comes back as an API warning on an admitted object.
        let cm = find(&bad, "ConfigMap", "payments-api-config");
        let r = apply(&client, cm, true).await;
        assert!(r.ok(), "{:?}", r.body);
        assert!(r.warnings.iter().any(|w| w.contains("immutable-config")), "{:?}", r.warnings);
        drop(webhook);
    });

    // serve gone: failurePolicy Fail refuses every request it would have judged, Ignore admits.
    let url = serve.url();
    drop(serve);
    rt.block_on(async {
        let obj = find(&good, "Deployment", "payments-api");
        let webhook = Webhook::register(&client, &ca_file, &url, "Fail").await;
        let r = apply_until(&client, obj, |r| !r.ok()).await;
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert!(r.message().contains("failed calling webhook"), "{}", r.message());
        drop(webhook);
        let webhook = Webhook::register(&client, &ca_file, &url, "Ignore").await;
        let r = apply_until(&client, obj, Applied::ok).await;
        assert!(r.ok(), "{:?}", r.body);
        drop(webhook);
    });
}

#[test]
fn a_webhook_slower_than_timeout_seconds_follows_the_failure_policy() {
    let _guard = cluster::lock();
    remove_webhook();
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    // Every Pod takes the slow bundle seconds to judge; the API server waits 1 s.
    let slow = ["-b", "tests/fixtures/bad-bundles/slow"];
    let serve = Serve::start(
        &ca,
        dir.path(),
        &[&slow[..], &["--rego-timeout", "3000", "--evaluation-deadline-ms", "20000"]].concat(),
    );
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow-probe", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}});
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster::client().await;
        let extra = [&slow[..], &["--timeout-seconds", "1"]].concat();
        let webhook = Webhook::register_with(&client, &ca_file, &serve.url(), "Fail", &extra).await;
        let r = apply_until(&client, &pod, |r| !r.ok()).await;
        assert_eq!(r.status, 500, "{:?}", r.body);
        assert!(r.message().contains("failed calling webhook"), "{}", r.message());
        drop(webhook);
        let webhook = Webhook::register_with(&client, &ca_file, &serve.url(), "Ignore", &extra).await;
        let r = apply_until(&client, &pod, Applied::ok).await;
        assert!(r.ok(), "{:?}", r.body);
        drop(webhook);
    });
}

#[test]
fn deploy_manifests_pass_server_side_validation() {
    let _guard = cluster::lock();
    remove_webhook();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster::client().await;
        cluster::install_example_crds(&client).await;
        for obj in cluster::manifests(&root().join("deploy")) {
            // The namespace for real (the others are dry runs inside it), the rest as a dry run.
            let r = apply(&client, &obj, obj["kind"] != "Namespace").await;
            assert!(r.ok(), "deploy/ {} {}: {}", obj["kind"], obj["metadata"]["name"], r.message());
        }
    });
}

#[test]
fn an_unreachable_or_unauthorised_cluster_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad_token = kubeconfig_with(dir.path(), None, "not-a-valid-token");
    let o = palisade(&["audit", "--kubeconfig", &bad_token]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("cluster https://127.0.0.1:") && err.contains("(HTTP 401)"), "{err}");
    assert!(o.stdout.is_empty(), "no partial results on stdout: {}", text(&o.stdout));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = kubeconfig_with(dir.path(), Some(&format!("https://127.0.0.1:{port}")), "x");
    let o = palisade(&["audit", "--kubeconfig", &gone]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!("cluster https://127.0.0.1:{port}: discover API resources")),
        "{}",
        text(&o.stderr)
    );

    let o = palisade(&["audit", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("/nonexistent/kubeconfig"), "{}", text(&o.stderr));
}

/// The pci-dss `image-signature` policy against a real registry, through the real API
/// server: a Deployment whose image is unsigned is denied by the webhook, the same
/// Deployment with a signed image is admitted, and `palisade audit` reports the
/// unsigned one once it runs in the cluster.
#[test]
fn an_unsigned_image_is_denied_through_kube_apiserver_and_reported_by_audit() {
    use common::registry::{Registry, cosign_key, cosign_sign, push_image};
    let _guard = cluster::lock();
    remove_webhook();
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = ca_in(dir.path());
    let registry = Registry::start(None);
    let addr = &registry.addr;
    let (signer, public) = cosign_key(7);
    let signed = push_image(addr, "payments/api", "1.0", b"api");
    cosign_sign(addr, "payments/api", &signed, &signed, &signer);
    let unsigned = push_image(addr, "payments/api", "unsigned", b"api-unsigned");
    let parameters = dir.path().join("parameters.yaml");
    let keys = serde_json::to_string(&[&public]).unwrap();
    std::fs::write(
        &parameters,
        format!(
            "image-signature: {{images: [\"{addr}/*\"], plain_http: true, keys: {keys}}}\n\
             trusted-registries: {{allowed_registries: [\"{addr}/\"]}}\n"
        ),
    )
    .unwrap();
    let compliant = root().join("examples/compliant");
    let good = cluster::manifests(&compliant);
    let with_image = |name: &str, digest: &str| {
        let mut d = find(&good, "Deployment", "payments-api").clone();
        d["metadata"]["name"] = name.into();
        let spec = &mut d["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                c["image"] = format!("{addr}/payments/api@{digest}").into();
            }
        }
        d
    };
    let (signed_deploy, unsigned_deploy) = (with_image("signed-api", &signed), with_image("unsigned-api", &unsigned));
    let params = parameters.to_str().unwrap();
    let serve = Serve::start(&ca, dir.path(), &["--inventory", compliant.to_str().unwrap(), "--parameters", params]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = cluster::client().await;
        for ns in good.iter().filter(|o| o["kind"] == "Namespace") {
            assert!(apply(&client, ns, false).await.ok());
        }
        cluster::delete(&client, "apps/v1", "Deployment", Some("payments"), "unsigned-api").await;
        let webhook = Webhook::register(&client, &ca_file, &serve.url(), "Fail").await;
        let r = apply_until(&client, &unsigned_deploy, |r| !r.ok()).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        let m = r.message();
        assert!(m.contains("[image-signature] (PCI DSS 6.3.2, 11.5.1)"), "{m}");
        assert!(m.contains(&format!("no cosign signature for {unsigned}")), "{m}");
        let r = apply(&client, &signed_deploy, true).await;
        assert!(r.ok(), "the signed image was denied: {}", r.message());
        // A bare Pod of the same template: denied unsigned, admitted signed (the API
        // server admits Pods only of RuntimeClasses that exist).
        let gvisor = serde_json::json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "gvisor"}, "handler": "runsc"});
        assert!(apply(&client, &gvisor, false).await.ok());
        let pod_of = |d: &Value, name: &str| {
            let t = &d["spec"]["template"];
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "spec": t["spec"],
                "metadata": {"name": name, "namespace": "payments", "labels": t["metadata"]["labels"]}})
        };
        let r = apply(&client, &pod_of(&unsigned_deploy, "unsigned-pod"), true).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert!(r.message().contains("[image-signature]"), "{}", r.message());
        let r = apply(&client, &pod_of(&signed_deploy, "signed-pod"), true).await;
        assert!(r.ok(), "the signed pod was denied: {}", r.message());
        drop(webhook);
        client
    });
    drop(serve);

    // Running in the cluster (admitted while no webhook was registered): audit finds it.
    rt.block_on(async { assert!(apply(&client, &unsigned_deploy, false).await.ok()) });
    let audit = palisade(&["audit", "--kubeconfig", &kubeconfig_arg(), "-o", "json", "--parameters", params]);
    assert_eq!(code(&audit), 1, "{}", text(&audit.stderr));
    let found = findings(&text(&audit.stdout));
    let key = |name: &str| ("Deployment".into(), "payments".into(), name.into(), "image-signature".into());
    assert!(found.contains(&key("unsigned-api")), "{found:?}");
    assert!(!found.iter().any(|f| f.3 == "image-signature" && f.2 != "unsigned-api"), "{found:?}");
    rt.block_on(cluster::delete(&client, "apps/v1", "Deployment", Some("payments"), "unsigned-api"));
}

/// (kind, namespace, name) of a manifest or of a report's object reference.
fn object_key(o: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let meta = if o["metadata"].is_object() { &o["metadata"] } else { o };
    (s(&o["kind"]), s(&meta["namespace"]), s(&meta["name"]))
}
