//! Helpers of the end-to-end tests against the test cluster (cli/tests/cluster*.rs):
//! `palisade serve` on loopback, the webhook configuration `palisade webhook-config`
//! prints, registered through the API server, and readers of JSON reports. Included with
//! `#[path]` next to `mod common` and `mod tls`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::cluster::{self, Applied, apply};
use crate::common::{code, palisade, text};
use crate::tls::{Ca, wait_ready};
use serde_json::Value;

/// (kind, namespace, name, policy) of every finding of a JSON scan/audit report.
pub fn findings(json: &str) -> BTreeSet<(String, String, String, String)> {
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
pub fn waived(json: &str) -> BTreeSet<(String, String, String, String, String)> {
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

pub fn kubeconfig_arg() -> String {
    cluster::kubeconfig().display().to_string()
}

pub async fn get(client: &kube::Client, path: &str) -> Value {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(req).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Whether GET `path` finds an object (200; 404 when not).
pub async fn exists(client: &kube::Client, path: &str) -> bool {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let status = client.send(req.map(kube::client::Body::from)).await.unwrap().status();
    assert!(status == 200 || status == 404, "GET {path}: {status}");
    status == 200
}

/// `palisade serve` on a free loopback port with a fresh certificate.
pub struct Serve {
    child: Child,
    pub port: u16,
}

impl Serve {
    /// Starts serve and waits until `/readyz` answers 200.
    pub fn start(ca: &Ca, dir: &Path, args: &[&str]) -> Serve {
        Serve::start_with_env(ca, dir, args, &[])
    }

    /// [`Serve::start`] with these environment variables set for serve.
    pub fn start_with_env(ca: &Ca, dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Serve {
        let serve = Serve::spawn_with_env(ca, dir, args, env);
        let addr = serve.addr();
        tokio::runtime::Runtime::new().unwrap().block_on(wait_ready(&ca.client(), addr, Duration::from_secs(60)));
        serve
    }

    /// Starts serve without waiting for it.
    pub fn spawn(ca: &Ca, dir: &Path, args: &[&str]) -> Serve {
        Serve::spawn_with_env(ca, dir, args, &[])
    }

    fn spawn_with_env(ca: &Ca, dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Serve {
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        ca.issue(&cert, &key, "palisade-e2e");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = crate::common::command()
            .envs(env.iter().copied())
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
        Serve { child, port }
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    pub fn url(&self) -> String {
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
pub fn ca_in(dir: &Path) -> (Ca, std::path::PathBuf) {
    let ca = Ca::new();
    let file = dir.join("ca.crt");
    std::fs::write(&file, ca.pem()).unwrap();
    (ca, file)
}

/// Registers the configuration `palisade webhook-config` prints; removed on drop.
pub struct Webhook;

impl Webhook {
    pub async fn register(client: &kube::Client, ca_file: &Path, url: &str, failure_policy: &str) -> Webhook {
        Webhook::register_with(client, ca_file, url, failure_policy, &["--timeout-seconds", "10"]).await
    }

    pub async fn register_with(
        client: &kube::Client,
        ca_file: &Path,
        url: &str,
        policy: &str,
        extra: &[&str],
    ) -> Webhook {
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
pub fn remove_webhook() {
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
pub async fn apply_until(client: &kube::Client, obj: &Value, done: impl Fn(&Applied) -> bool) -> Applied {
    let start = Instant::now();
    loop {
        let r = apply(client, obj, true).await;
        if done(&r) || start.elapsed() > Duration::from_secs(30) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap()
}

/// A kubeconfig for the test cluster's server with another token (or server).
pub fn kubeconfig_with(dir: &Path, server: Option<&str>, token: &str) -> String {
    let mut kc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(cluster::kubeconfig()).unwrap()).unwrap();
    if let Some(s) = server {
        kc["clusters"][0]["cluster"]["server"] = Value::from(s);
    }
    kc["users"][0]["user"]["token"] = Value::from(token);
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path.display().to_string()
}
