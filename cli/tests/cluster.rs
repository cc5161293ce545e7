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
    let (scanned, audited) = (findings(&text(&scan.stdout)), findings(&text(&audit.stdout)));
    assert!(scanned.len() > 40, "{scanned:?}");
    let missing: Vec<_> = scanned.difference(&audited).collect();
    let extra: Vec<_> = audited.difference(&scanned).collect();
    assert!(missing.is_empty() && extra.is_empty(), "audit differs from scan: missing {missing:?}, extra {extra:?}");

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
