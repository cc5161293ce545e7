//! The ValidatingAdmissionPolicy conformance cases (`conformance/vap/`) through
//! palisade: every request gets the answer the case records, which is what
//! kube-apiserver answers (checked against the real one in `cluster_vap.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use common::vap::{self, case_files};
use serde_json::{Value, json};

#[test]
fn every_vap_case_gets_the_api_servers_answer_from_palisade() {
    let files = case_files();
    let total: usize = files.iter().map(|f| f.requests.len()).sum();
    assert!(total >= 40, "the suite has {total} cases, at least 40 are required");
    let mut failures = Vec::new();
    for file in &files {
        let engine = vap::engine(file);
        for request in &file.requests {
            let got = vap::palisade_outcome(&engine, file, request);
            if got != request.expect {
                failures.push(format!(
                    "{} / {}:\n  expected {:?}\n  palisade {:?}",
                    vap::display(&file.path),
                    request.name,
                    request.expect,
                    got
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn vap_manifests_are_tested_scanned_and_refused_like_any_bundle() {
    let example = common::root().join("policy-bundles/vap-example");
    let vap = format!("vap:{}", example.display());
    let test = common::palisade(&["test", &vap]);
    assert_eq!(common::code(&test), 0, "{}{}", common::text(&test.stdout), common::text(&test.stderr));
    assert!(common::text(&test.stdout).contains("6 passed, 0 failed"), "{}", common::text(&test.stdout));

    let examples = common::root().join("examples/non-compliant");
    let scan = common::palisade(&["scan", "-b", &vap, examples.to_str().unwrap()]);
    let out = common::text(&scan.stdout);
    assert_eq!(common::code(&scan), 1, "{out}");
    assert!(out.contains("images from unapproved registries: postgres:16"), "{out}");
    assert!(out.contains("warn  loadbalancer-source-ranges.loadbalancer-source-ranges-warn"), "{out}");

    // A function the evaluator lacks is a load error naming the file, policy, field,
    // expression and function (exit 2), never a pass.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example.join("policies.yaml")).unwrap();
    let broken = text.replace("variables.unapproved.join(', ')", "variables.unapproved.sortedJoin(', ')");
    std::fs::write(dir.path().join("policies.yaml"), broken).unwrap();
    let scan = common::palisade(&["scan", "-b", &format!("vap:{}", dir.path().display()), examples.to_str().unwrap()]);
    let err = common::text(&scan.stderr);
    assert_eq!(common::code(&scan), 2, "{err}");
    assert!(
        err.contains("ValidatingAdmissionPolicy approved-registries: spec.validations[0].messageExpression")
            && err.contains("`sortedJoin`"),
        "{err}"
    );
}

/// `eval` and `serve` answer an AdmissionReview with the same VAPs, alike.
#[test]
fn eval_and_serve_answer_with_vap_policies() {
    let vap = format!("vap:{}", common::root().join("policy-bundles/vap-example").display());
    let examples = common::root().join("examples/non-compliant");
    let objects = common::cluster::manifests(&examples);
    let find = |kind: &str, name: &str| {
        objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap().clone()
    };
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "vap-1", "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
        "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
        "namespace": "payments", "name": "postgres", "operation": "CREATE", "userInfo": {"username": "alice"},
        "object": find("StatefulSet", "postgres"), "namespaceObject": find("Namespace", "payments")}});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("review.json");
    std::fs::write(&file, review.to_string()).unwrap();
    let eval = common::palisade(&["eval", "-b", &vap, file.to_str().unwrap()]);
    assert_eq!(common::code(&eval), 1, "{}", common::text(&eval.stderr));
    let eval: Value = serde_json::from_slice(&eval.stdout).unwrap();
    let message = eval["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("images from unapproved registries: postgres:16"), "{message}");

    let (ca, _) = e2e::ca_in(dir.path());
    let serve = e2e::Serve::start(&ca, dir.path(), &["-b", &vap, "--inventory", examples.to_str().unwrap()]);
    let served = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { tls::connect(&ca.client(), serve.addr()).await.unwrap().review(&review).await });
    assert_eq!(served["response"]["uid"], "vap-1");
    assert_eq!(served["response"]["allowed"], false);
    assert_eq!(served["response"]["status"]["message"].as_str(), Some(message));
}

#[test]
fn export_writes_only_cel_policies_and_names_the_rest() {
    let bundle = common::root().join("policy-bundles/pci-dss");
    let out = common::palisade(&["export", "vap", "-b", bundle.to_str().unwrap()]);
    assert_eq!(common::code(&out), 0, "{}", common::text(&out.stderr));
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&common::text(&out.stdout))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "PolicyParameters"
        ]
    );
    assert_eq!(docs[3]["exempt_namespaces"][0], "kube-system", "parameters travel as top-level fields");
    assert!(common::text(&out.stderr).contains("have no CEL implementation and are not exported"));
}
