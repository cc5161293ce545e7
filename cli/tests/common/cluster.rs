//! The test cluster (`scripts/test-cluster.sh`): a real etcd and kube-apiserver on
//! loopback, started once per test binary and shared by its tests (which serialise
//! on [`lock`]), and a `kube` client that applies manifests the way `kubectl apply
//! --server-side` does, keeping the HTTP status and the API server's warnings.
//! A cluster that does not start fails the test: it is never skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use http_body_util::BodyExt;
use kube::api::{Patch, PatchParams};
use kube::core::{GroupVersionKind, Request};
use kube::discovery::Scope;
use serde_json::{Value, json};

use super::root;

/// Path of the admin kubeconfig of the running test cluster (started on first use).
pub fn kubeconfig() -> &'static PathBuf {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(|| {
        let out = Command::new(root().join("scripts/test-cluster.sh"))
            .arg("up")
            .output()
            .expect("run scripts/test-cluster.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the test cluster did not start (scripts/test-cluster.sh up):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(stdout.lines().last().expect("kubeconfig path on the last line").trim())
    })
}

/// Serialises the tests that change cluster-wide state (webhook configurations).
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client of the test cluster (one per runtime: kube's client lives on the runtime
/// that made it).
pub async fn client() -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// What the API server answered to an apply.
#[derive(Debug)]
pub struct Applied {
    pub status: u16,
    pub body: Value,
    /// `Warning` headers (admission webhook warnings among them).
    pub warnings: Vec<String>,
}

impl Applied {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// Server-side applies `obj` (field manager `palisade-e2e`, forced), as a dry run when asked.
pub async fn apply(client: &kube::Client, obj: &Value, dry_run: bool) -> Applied {
    let (api_version, kind) = (obj["apiVersion"].as_str().unwrap(), obj["kind"].as_str().unwrap());
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) =
        kube::discovery::pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
    let ns = obj["metadata"]["namespace"].as_str().filter(|_| caps.scope == Scope::Namespaced);
    let name = obj["metadata"]["name"].as_str().unwrap();
    let mut params = PatchParams::apply("palisade-e2e").force();
    params.dry_run = dry_run;
    let req = Request::new(<kube::api::DynamicObject as kube::Resource>::url_path(&ar, ns))
        .patch(name, &params, &Patch::Apply(obj))
        .unwrap();
    let res = client.send(req.map(kube::client::Body::from)).await.unwrap();
    let status = res.status().as_u16();
    let warnings =
        res.headers().get_all("warning").iter().map(|v| v.to_str().unwrap_or_default().to_string()).collect();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Applied { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), warnings }
}

/// Deletes an object; a missing one is fine.
pub async fn delete(client: &kube::Client, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (ar, _) = kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await.unwrap();
    let req = Request::new(<kube::api::DynamicObject as kube::Resource>::url_path(&ar, ns))
        .delete(name, &Default::default())
        .unwrap();
    let res = client.send(req.map(kube::client::Body::from)).await.unwrap();
    assert!(res.status().is_success() || res.status() == 404, "delete {kind} {name}: {}", res.status());
}

/// Minimal CRDs (any schema) for the third-party kinds the examples use, so that
/// every example object can be created.
pub async fn install_example_crds(client: &kube::Client) {
    for (group, kind, plural, scope) in [
        ("cert-manager.io", "Certificate", "certificates", "Namespaced"),
        ("cert-manager.io", "ClusterIssuer", "clusterissuers", "Cluster"),
        ("cert-manager.io", "Issuer", "issuers", "Namespaced"),
        ("external-secrets.io", "ExternalSecret", "externalsecrets", "Namespaced"),
    ] {
        let versions: Vec<Value> = ["v1", "v1beta1"]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"name": v, "served": true, "storage": i == 0, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
            })
            .collect();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural,
                "singular": kind.to_lowercase(), "listKind": format!("{kind}List")}, "versions": versions},
        });
        let r = apply(client, &crd, false).await;
        assert!(r.ok(), "CRD {plural}.{group}: {:?}", r.body);
    }
    for _ in 0..100 {
        let gvk = GroupVersionKind::gvk("external-secrets.io", "v1beta1", "ExternalSecret");
        if kube::discovery::pinned_kind(client, &gvk).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("example CRDs not served after 10 s");
}

/// Every object of the YAML files of `dir` (sorted by file name), Namespaces first.
pub fn manifests(dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out: Vec<Value> = Vec::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.is_object() {
                out.push(v);
            }
        }
    }
    out.sort_by_key(|v| v["kind"] != "Namespace");
    out
}
