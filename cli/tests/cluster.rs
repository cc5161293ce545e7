//! Palisade against a real kube-apiserver (the test cluster of
//! `scripts/test-cluster.sh`, started by the first test that needs it): `palisade
//! audit` lists what a scan of the same manifests reads and finds the same; the API
//! server itself calls `palisade serve` through a ValidatingWebhookConfiguration made
//! by `palisade webhook-config`, and follows its failure policy when serve is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{self, Applied, apply};
use common::{code, palisade, root, text};
use serde_json::Value;
use tls::{Ca, wait_ready};

/// (kind, namespace, name, policy) of every finding of a JSON scan/audit report.
fn findings(json: &str) -> BTreeSet<(String, String, String, String)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut out = BTreeSet::new();
    for r in v["results"].as_array().unwrap() {
        let o = &r["object"];
        let d = &r["decision"];
        for f in d["violations"].as_array().unwrap().iter().chain(d["warnings"].as_array().unwrap()) {
            out.insert((
                o["kind"].as_str().unwrap().to_string(),
                o["namespace"].as_str().unwrap_or_default().to_string(),
                o["name"].as_str().unwrap().to_string(),
                f["policy"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// (kind, namespace, name, policy, exception) of every waived finding of a JSON report.
fn waived(json: &str) -> BTreeSet<(String, String, String, String, String)> {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = BTreeSet::new();
    for r in v["results"].as_array().unwrap() {
        for w in r["decision"]["waived"].as_array().into_iter().flatten() {
            let o = &r["object"];
            out.insert((s(&o["kind"]), s(&o["namespace"]), s(&o["name"]), s(&w["policy"]), s(&w["exception"]["name"])));
        }
    }
    out
}

fn kubeconfig_arg() -> String {
    cluster::kubeconfig().display().to_string()
}

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
    rt.block_on(async {
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
    });
}

async fn get(client: &kube::Client, path: &str) -> Value {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(req).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `palisade serve` on a free loopback port with a fresh certificate.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(ca: &Ca, dir: &Path, args: &[&str]) -> Serve {
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        ca.issue(&cert, &key, "palisade-e2e");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = common::command()
            .arg("serve")
            .args(args)
            .args(["--addr", &format!("127.0.0.1:{port}"), "--log-format", "text"])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = ca.client();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(wait_ready(&client, addr, Duration::from_secs(60)));
        Serve { child, port }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.port)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway CA and its certificate written to `dir/ca.crt` (the webhook's caBundle).
fn ca_in(dir: &Path) -> (Ca, std::path::PathBuf) {
    let ca = Ca::new();
    let file = dir.join("ca.crt");
    std::fs::write(&file, ca.pem()).unwrap();
    (ca, file)
}

/// Registers the configuration `palisade webhook-config` prints; removed on drop.
struct Webhook;

impl Webhook {
    async fn register(client: &kube::Client, ca_file: &Path, url: &str, failure_policy: &str) -> Webhook {
        Webhook::register_with(client, ca_file, url, failure_policy, &["--timeout-seconds", "10"]).await
    }

    async fn register_with(client: &kube::Client, ca_file: &Path, url: &str, policy: &str, extra: &[&str]) -> Webhook {
        let ca = ca_file.to_str().unwrap();
        let mut args = vec!["webhook-config", "--name", "palisade-e2e", "--url", url, "--ca-bundle", ca];
        args.extend(["--failure-policy", policy]);
        args.extend(extra);
        let o = palisade(&args);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let config: Value = serde_yaml_ng::from_str(&text(&o.stdout)).unwrap();
        assert_eq!(config["webhooks"][0]["clientConfig"]["url"], url);
        let r = apply(client, &config, false).await;
        assert!(r.ok(), "{:?}", r.body);
        Webhook
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        remove_webhook();
    }
}

/// Deletes the test's webhook configuration (also a leftover of an aborted run). On a
/// thread of its own: drop may run inside a runtime.
fn remove_webhook() {
    std::thread::spawn(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let client = cluster::client().await;
            let api = "admissionregistration.k8s.io/v1";
            cluster::delete(&client, api, "ValidatingWebhookConfiguration", None, "palisade-e2e").await;
        })
    })
    .join()
    .unwrap();
}

/// Dry-run applies `obj` until `done` holds for the answer (the API server picks up a
/// new webhook configuration within a second or two), at most 30 s.
async fn apply_until(client: &kube::Client, obj: &Value, done: impl Fn(&Applied) -> bool) -> Applied {
    let start = Instant::now();
    loop {
        let r = apply(client, obj, true).await;
        if done(&r) || start.elapsed() > Duration::from_secs(30) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap()
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

    // The non-compliant one: every workload and RBAC object the scan denies is denied.
    let serve = Serve::start(&ca, dir.path(), &["--inventory", non_compliant.to_str().unwrap()]);
    rt.block_on(async {
        let webhook = Webhook::register(&client, &ca_file, &serve.url(), "Fail").await;
        let probe = find(&bad, "Deployment", "payments-api");
        assert_eq!(apply_until(&client, probe, |r| !r.ok()).await.status, 403);
        let mut denied = 0;
        for obj in bad.iter().filter(|o| o["kind"] != "Namespace") {
            let r = apply(&client, obj, true).await;
            if r.status == 403 {
                denied += 1;
                assert!(r.message().contains("(PCI DSS "), "{}", r.message());
            }
        }
        assert!(denied >= 15, "only {denied} non-compliant objects denied");
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

/// A kubeconfig for the test cluster's server with another token (or server).
fn kubeconfig_with(dir: &Path, server: Option<&str>, token: &str) -> String {
    let mut kc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(cluster::kubeconfig()).unwrap()).unwrap();
    if let Some(s) = server {
        kc["clusters"][0]["cluster"]["server"] = Value::from(s);
    }
    kc["users"][0]["user"]["token"] = Value::from(token);
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path.display().to_string()
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
    let addr = format!("127.0.0.1:{}", serve.port).parse().unwrap();
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
                if !service_account_may(&client, verb, group, resource).await {
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
                if !service_account_may(&client, verb, group, resource).await {
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
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    ca.issue(&cert, &key, "serving");
    let serve_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = common::command()
        .args(["serve", "--cluster", "--kubeconfig", &gone, "--addr", &format!("127.0.0.1:{serve_port}")])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{serve_port}").parse().unwrap();
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
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(answer.1.contains("not ready: inventory: the kinds to watch are not resolved yet"), "{}", answer.1);
}
