//! The webhook as the API server meets it: the real server on a loopback port with
//! a throwaway CA, spoken to over real HTTPS.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/server.rs"]
mod fixture;
#[path = "common/tls.rs"]
mod tls;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::Fixture;
use palisade::decision_log::Verdict;
use palisade::server::{DecisionLogConfig, EngineLoader, Server, ServerConfig};
use palisade::{Bundle, Engine, FailureMode, Mode};
use rcgen::KeyPair;
use serde_json::{Value, json};
use tls::{Ca, connect, review, write_atomic};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_reviews_and_bad_requests() {
    let f = Fixture::start("tests/bundles/basic", |_, _| {}).await;
    let mut c = f.conn().await;
    assert_eq!(c.request("GET", "/healthz", vec![]).await, (200, "ok\n".into()));

    let ok = c.review(&review("uid-ok", "nginx:1.27.2")).await;
    assert_eq!(ok["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(ok["kind"], "AdmissionReview");
    assert_eq!(ok["response"]["uid"], "uid-ok");
    assert_eq!(ok["response"]["allowed"], true);

    let denied = c.review(&review("uid-denied", "nginx:latest")).await;
    let r = &denied["response"];
    assert_eq!(r["uid"], "uid-denied");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.contains("[no-latest-tag] (PCI DSS 6.3.2) container web uses image nginx:latest"), "{msg}");
    assert_eq!(r["auditAnnotations"]["denied-by"], "no-latest-tag");

    let (status, body) = c.request("POST", "/validate", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid JSON at line 1"), "{body}");
    // kube-apiserver sends v1beta1 to webhooks that list only it: answered in v1beta1.
    let mut old = review("uid-v1beta1", "nginx:latest");
    old["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = c.review(&old).await;
    assert_eq!(
        (r["apiVersion"].as_str(), r["response"]["uid"].as_str()),
        (Some("admission.k8s.io/v1beta1"), Some("uid-v1beta1"))
    );
    assert_eq!(r["response"]["allowed"], false);

    let (_, metrics) = f.get("/metrics").await;
    assert!(metrics.contains("palisade_admission_requests_total{result=\"denied\"} 2"), "{metrics}");
    assert!(metrics.contains("palisade_admission_requests_total{result=\"bad_request\"} 1"), "{metrics}");
    assert!(
        metrics
            .contains("palisade_policy_evaluation_duration_seconds_count{bundle=\"basic\",policy=\"no-latest-tag\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("palisade_bundle_info{name=\"basic\",version=\"1.2.0\""), "{metrics}");
    f.server.shutdown();
    f.server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_past_the_deadline_follows_the_failure_mode() {
    for (mode, allowed) in [(FailureMode::Fail, false), (FailureMode::Ignore, true)] {
        let f = Fixture::start("tests/fixtures/bad-bundles/slow", |c, _| {
            c.evaluation_deadline = Duration::from_millis(300);
            c.failure_mode = mode;
        })
        .await;
        // The evaluation itself takes about 2 s; the answer says the deadline cut it
        // short (no wall-clock assertion: the machine may be slow).
        let r = f.conn().await.review(&review("uid-slow", "nginx:1")).await;
        assert_eq!(r["response"]["uid"], "uid-slow");
        assert_eq!(r["response"]["allowed"], allowed, "{r}");
        let text = r.to_string();
        assert!(text.contains("evaluation exceeded the 300 ms deadline"), "{text}");
        f.server.shutdown();
        f.server.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_atomically_and_keeps_the_last_good_set() {
    let f = Fixture::start("tests/bundles/basic", |c, root| c.watch = vec![root.join("bundle")]).await;
    let rule = f.root.join("bundle/rules/no_latest_tag.rego");
    // Requests keep flowing while the bundle changes under them.
    let addr = f.server.local_addr();
    let client = f.client.clone();
    let load = tokio::spawn(async move {
        let mut c = connect(&client, addr).await.unwrap();
        let mut answers = Vec::new();
        for i in 0..150 {
            let r = c.review(&review(&format!("uid-{i}"), "nginx:latest")).await;
            answers.push(r["response"]["status"]["message"].as_str().unwrap_or_default().to_string());
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = std::fs::read_to_string(&rule).unwrap();
    std::fs::write(&rule, text.replace("pin a version tag or digest, not latest", "use a pinned image")).unwrap();
    let answers = load.await.unwrap();
    assert!(answers.iter().all(|m| m.contains("pin a version tag") || m.contains("use a pinned image")), "{answers:?}");
    f.wait_for("/readyz", "ready: revision 2").await;
    let r = f.conn().await.review(&review("after", "nginx:latest")).await;
    assert!(r.to_string().contains("use a pinned image"), "{r}");

    // A broken bundle is refused; revision 2 keeps serving.
    std::fs::write(&rule, "package broken\ndeny contains x if {").unwrap();
    let ready = f.wait_for("/readyz", "last reload failed").await;
    assert!(ready.starts_with("ready: revision 2"), "{ready}");
    assert!(ready.contains("Rego does not compile"), "{ready}");
    let r = f.conn().await.review(&review("still", "nginx:latest")).await;
    assert!(r.to_string().contains("use a pinned image"), "{r}");
    let (_, metrics) = f.get("/metrics").await;
    assert!(metrics.contains("palisade_bundle_reloads_total{result=\"failure\"}"), "{metrics}");
    assert!(metrics.contains("palisade_bundle_revision 2"), "{metrics}");
    f.server.shutdown();
    f.server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_without_a_failed_request() {
    let f = Fixture::start("tests/bundles/basic", |_, _| {}).await;
    let mut existing = f.conn().await;
    let first = existing.peer.clone();
    existing.review(&review("before", "nginx:1.27")).await;

    let cert = f.root.join("tls/tls.crt");
    let key = f.root.join("tls/tls.key");
    let second = f.ca.issue(&cert, &key, "serving-2");
    assert_ne!(first, second);
    let start = Instant::now();
    loop {
        // Every request during the rotation succeeds, on new connections and the old one.
        let mut c = f.conn().await;
        c.review(&review("during", "nginx:1.27")).await;
        existing.review(&review("existing", "nginx:1.27")).await;
        if c.peer == second {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A mismatched pair is refused and the current one kept.
    let other = KeyPair::generate().unwrap();
    write_atomic(&key, other.serialize_pem().as_bytes());
    f.wait_for("/metrics", "palisade_tls_reloads_total{result=\"failure\"}").await;
    let mut c = f.conn().await;
    assert_eq!(c.peer, second);
    c.review(&review("after-bad-pair", "nginx:1.27")).await;
    f.server.shutdown();
    f.server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_bodies_are_answered_over_http1_and_http2() {
    let f = Fixture::start("tests/bundles/basic", |c, root| {
        c.decision_log = Some(DecisionLogConfig { path: root.join("decisions.jsonl"), max_size: 1 << 20, keep: 3 });
    })
    .await;
    let addr = f.server.local_addr();
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(5 * 1024 * 1024)).into_bytes();
    let mut no_uid = review("", "nginx:1");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut wrong_uid_type = review("", "nginx:1");
    wrong_uid_type["request"]["uid"] = json!(42);
    for client in [f.ca.client(), f.ca.client_h2()] {
        let mut c = connect(&client, addr).await.unwrap();
        let proto = if c.is_http2() { "HTTP/2" } else { "HTTP/1.1" };
        let (status, body) = c
            .try_request("POST", "/validate", huge.clone())
            .await
            .unwrap_or_else(|e| panic!("{proto}: no answer to a 5 MB body: {e}"));
        assert_eq!(status, 413, "{proto}: {body}");
        let s: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((s["kind"].as_str(), s["code"].as_u64()), (Some("Status"), Some(413)), "{proto}: {body}");
        assert!(s["message"].as_str().unwrap().contains("is larger than the 3145728-byte limit"), "{proto}: {body}");

        // The server keeps serving (HTTP/2: on the same connection).
        if !c.is_http2() {
            c = connect(&client, addr).await.unwrap();
        }
        let (status, body) = c.request("POST", "/validate", b"[1, 2".to_vec()).await;
        assert_eq!(status, 400, "{proto}: {body}");
        assert!(body.contains("invalid JSON at line 1"), "{proto}: {body}");
        // Valid JSON of the wrong shape: an AdmissionReview naming what was wrong.
        let r = c.review(&no_uid).await;
        assert_eq!(r["response"]["allowed"], false, "{proto}: {r}");
        assert_eq!(r["response"]["status"]["code"], 400, "{proto}: {r}");
        let msg = r["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.ends_with("malformed AdmissionReview: AdmissionReview.request.uid: missing"), "{proto}: {msg}");
        let r = c.review(&wrong_uid_type).await;
        assert!(r["response"]["status"]["message"].as_str().unwrap().contains("got a number"), "{proto}: {r}");
        let ok = c.review(&review("after-bad-input", "nginx:1.27.2")).await;
        assert_eq!(ok["response"]["allowed"], true, "{proto}: {ok}");
    }
    f.server.shutdown();
    f.server.wait().await;
    // Every refused request is in the decision log with what was wrong.
    let text = std::fs::read_to_string(f.root.join("decisions.jsonl")).unwrap();
    let entries: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let errors: Vec<&str> =
        entries.iter().filter(|e| e["result"] == "error").map(|e| e["error"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 8, "{text}");
    assert_eq!(errors.iter().filter(|e| e.contains("byte limit")).count(), 2, "{text}");
    assert_eq!(errors.iter().filter(|e| e.contains("request.uid: missing")).count(), 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_log_verifies_and_detects_an_edited_line() {
    let f = Fixture::start("tests/bundles/basic", |c, root| {
        c.decision_log = Some(DecisionLogConfig { path: root.join("decisions.jsonl"), max_size: 1 << 20, keep: 3 });
    })
    .await;
    let mut c = f.conn().await;
    for i in 0..5u32 {
        c.review(&review(&format!("uid-{i}"), if i.is_multiple_of(2) { "nginx:latest" } else { "nginx:1.27" })).await;
    }
    let log = f.root.join("decisions.jsonl");
    f.server.shutdown();
    f.server.wait().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let entry: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(entry["uid"], "uid-0");
    assert_eq!(entry["user"], "oidc:alice@example.com");
    assert_eq!(entry["result"], "denied");
    assert_eq!(entry["object"], "Pod/shop/web");
    assert!(entry["bundles"][0].as_str().unwrap().starts_with("basic@1.2.0 (sha256:"));

    let verify = |path: &Path| palisade::decision_log::verify(&[path.to_path_buf()]).unwrap();
    assert_eq!(verify(&log), Verdict::Ok { lines: 5, first_seq: 1, gaps: 0, lost: 0 });
    std::fs::write(&log, text.replacen("\"result\":\"denied\"", "\"result\":\"allowed\"", 1)).unwrap();
    match verify(&log) {
        Verdict::Broken { line, problem, .. } => {
            assert_eq!((line, problem.as_str()), (1, "altered: the line's content does not match its hash"));
        }
        other => panic!("an edited line must break the chain: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_gives_namespace_labels_and_referential_policies_at_admission() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    ca.issue(&cert, &key, "serving");
    let bundle_dir = Path::new(MANIFEST).join("../policy-bundles/pci-dss");
    let with_inventory = |inventory: bool| -> EngineLoader {
        let bundle_dir = bundle_dir.clone();
        Arc::new(move || {
            let engine = Engine::builder().bundle(Bundle::from_dir(&bundle_dir)?).mode(Mode::Admission).build()?;
            if !inventory {
                return Ok(engine);
            }
            let mut inv = palisade::Inventory::new();
            inv.add(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"pci-dss.palisade.dev/scope": "cde"}}}));
            engine.with_inventory(Arc::new(inv))
        })
    };
    let mut messages = Vec::new();
    for inventory in [false, true] {
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), cert.clone(), key.clone());
        let server = Server::start(config, with_inventory(inventory)).await.unwrap();
        let client = ca.client();
        let start = Instant::now();
        loop {
            let mut c = connect(&client, server.local_addr()).await.unwrap();
            if c.request("GET", "/readyz", vec![]).await.0 == 200 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = connect(&client, server.local_addr()).await.unwrap().review(&review("ns", "nginx:1.27.2")).await;
        messages.push(r.to_string());
        if !inventory {
            // A referential policy that matches is reported as skipped, with the reason,
            // in the response's audit annotations and in /metrics.
            let ns = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "ns-create", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
                "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                "name": "payments", "operation": "CREATE", "userInfo": {"username": "oidc:alice@example.com"},
                "object": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments",
                    "labels": {"pci-dss.palisade.dev/scope": "cde", "pci-dss.palisade.dev/security-level": "high"}}}
            }});
            let r = connect(&client, server.local_addr()).await.unwrap().review(&ns).await;
            let skipped = r["response"]["auditAnnotations"]["skipped"].as_str().unwrap_or_default();
            assert!(
                skipped.contains("network-default-deny (referential policy: no inventory is configured at admission)"),
                "{r}"
            );
            let (_, metrics) =
                connect(&client, server.local_addr()).await.unwrap().request("GET", "/metrics", vec![]).await;
            assert!(
                metrics.contains("palisade_policy_skipped_total{bundle=\"pci-dss\",policy=\"network-default-deny\"} 1"),
                "{metrics}"
            );
        }
        server.shutdown();
        server.wait().await;
    }
    // Without the Namespace the cde-only rules cannot apply; with it they do.
    assert!(!messages[0].contains("pss-run-as-non-root"), "{}", messages[0]);
    assert!(messages[1].contains("[pss-run-as-non-root]"), "{}", messages[1]);
    assert!(
        messages[1].contains("[network-pod-coverage]"),
        "referential policies run with an inventory: {}",
        messages[1]
    );
}
