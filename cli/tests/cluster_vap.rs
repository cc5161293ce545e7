//! The ValidatingAdmissionPolicy conformance cases (`conformance/vap/`) through the
//! real kube-apiserver of the test cluster and through palisade: for every request
//! both answer the same (allowed, message text, warnings), and that answer is the one
//! the case records. A disagreement names the case file and request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::time::{Duration, Instant};

use common::cluster::{self, apply};
use common::vap::{self, CaseFile, Outcome, Request};
use e2e::{apply_until, remove_webhook};
use kube::core::GroupVersionKind;
use serde_json::Value;

/// Applies `obj` for real once the API server serves its kind (a custom resource's
/// CRD takes a moment to be established).
async fn apply_when_served(client: &kube::Client, obj: &Value) {
    let (group, version) = obj["apiVersion"].as_str().unwrap().split_once('/').unwrap_or(("", "v1"));
    let gvk = GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap());
    let start = Instant::now();
    while kube::discovery::pinned_kind(client, &gvk).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "{gvk:?} is not served after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = apply(client, obj, false).await;
    assert!(r.ok(), "apply {} {}: {}", obj["kind"], obj["metadata"]["name"], r.message());
}

async fn delete(client: &kube::Client, obj: &Value) {
    let ns = obj["metadata"]["namespace"].as_str();
    let (api, kind, name) =
        (obj["apiVersion"].as_str().unwrap(), obj["kind"].as_str().unwrap(), obj["metadata"]["name"].as_str().unwrap());
    cluster::delete(client, api, kind, ns, name).await;
}

/// Runs one case file against the API server; the differences found.
async fn run_file(client: &kube::Client, file: &CaseFile) -> Vec<String> {
    let engine = vap::engine(file);
    // Namespaces stay (the test cluster has no namespace controller to finish deleting
    // them); everything is applied server-side, so a second run finds the same state.
    for obj in &file.setup {
        apply_when_served(client, obj).await;
    }
    for existing in file.requests.iter().filter_map(|r| r.existing.as_ref()) {
        apply_when_served(client, existing).await;
    }
    for obj in &file.policies {
        let r = apply(client, obj, false).await;
        if !r.ok() {
            return vec![format!(
                "{}: the API server refused {}: {}",
                vap::display(&file.path),
                obj["metadata"]["name"],
                r.message()
            )];
        }
    }
    // Requests the policies deny or warn about go first: the API server is seen to
    // enforce the new policies before any request that should pass is asked.
    let mut order: Vec<&Request> = file.requests.iter().collect();
    order.sort_by_key(|r| r.expect.allowed && r.expect.warnings.is_empty());
    let mut failures = Vec::new();
    for request in order {
        let ours = vap::palisade_outcome(&engine, file, request);
        let expect = request.expect.clone();
        let applied = apply_until(client, &request.object, |a| outcome(a) == expect).await;
        let theirs = outcome(&applied);
        if theirs != ours || theirs != request.expect {
            failures.push(format!(
                "{} / {}:\n  case           {:?}\n  kube-apiserver {:?}\n  palisade       {:?}",
                vap::display(&file.path),
                request.name,
                request.expect,
                theirs,
                ours
            ));
        }
    }
    for obj in file.policies.iter().rev() {
        delete(client, obj).await;
    }
    failures
}

fn outcome(a: &cluster::Applied) -> Outcome {
    vap::apiserver_outcome(a.status, &a.body, &a.warnings)
}

#[test]
fn every_vap_case_gets_the_same_answer_from_kube_apiserver_and_palisade() {
    let _guard = cluster::lock();
    remove_webhook();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files = vap::case_files();
    let total: usize = files.iter().map(|f| f.requests.len()).sum();
    let failures: Vec<String> = rt.block_on(async {
        let client = cluster::client().await;
        let mut failures = Vec::new();
        for file in &files {
            failures.extend(run_file(&client, file).await);
        }
        failures
    });
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn exported_cel_policies_enforce_in_kube_apiserver_what_palisade_enforces() {
    let _guard = cluster::lock();
    remove_webhook();
    let out =
        common::palisade(&["export", "vap", "-b", common::root().join("policy-bundles/pci-dss").to_str().unwrap()]);
    assert_eq!(common::code(&out), 0, "{}", common::text(&out.stderr));
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&common::text(&out.stdout))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert!(objects.iter().any(|o| o["kind"] == "ValidatingAdmissionPolicy"), "{objects:?}");
    let pod = |ns: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
            "spec": {"hostNetwork": true, "hostPID": true, "containers": [{"name": "app", "image": "app:1"}]}})
    };
    // What palisade says about the pod, through the CEL implementation.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, serde_json::to_string(&pod("vapc-export")).unwrap()).unwrap();
    let bundle = common::root().join("policy-bundles/pci-dss");
    let scan = common::palisade(&[
        "scan",
        "-o",
        "json",
        "--backend",
        "cel",
        "-b",
        bundle.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&common::text(&scan.stdout)).unwrap();
    let violations = report["results"][0]["decision"]["violations"].as_array().unwrap().clone();
    let ours = violations.iter().find(|v| v["policy"] == "pss-host-namespaces").expect("palisade finds it");
    let expected = format!(
        "ValidatingAdmissionPolicy 'pss-host-namespaces' with binding 'pss-host-namespaces-binding' denied request: {}",
        ours["message"].as_str().unwrap()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster::client().await;
        apply_when_served(
            &client,
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vapc-export"}}),
        )
        .await;
        for o in &objects {
            apply_when_served(&client, o).await;
        }
        // The API server maps a new CRD for a paramKind a moment after it is established
        // (until then it denies with "failed to find resource referenced by paramKind").
        let denied = apply_until(&client, &pod("vapc-export"), |a| a.message().ends_with(&expected)).await;
        let exempt = apply(&client, &pod("kube-system"), true).await;
        for o in
            objects.iter().filter(|o| o["kind"].as_str().is_some_and(|k| k.starts_with("ValidatingAdmissionPolicy")))
        {
            delete(&client, o).await;
        }
        assert!(denied.message().ends_with(&expected), "kube-apiserver: {}\npalisade: {expected}", denied.message());
        assert!(exempt.ok(), "kube-system is exempt by the policy's parameters: {}", exempt.message());
    });
}
