use palisade_sdk::Policy;
use palisade_sdk::testing::{evaluate, evaluate_batch, input_with};
use serde_json::{Value, json};

use crate::{DefaultCredentials, PciWorkloads, PodSecurity};

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "payments"}, "spec": {
        "hostPID": true,
        "containers": [{"name": "pg", "image": "postgres:16", "env": [{"name": "POSTGRES_PASSWORD", "value": "postgres"}]}]}})
}

fn messages(found: &[palisade_sdk::Violation]) -> Vec<&str> {
    found.iter().map(|v| v.message.as_str()).collect()
}

#[test]
fn each_check_finds_what_its_own_plugin_finds() {
    for settings in [
        json!({"check": "default-credentials", "min_length": 8}),
        json!({"check": "host-namespaces", "exempt_namespaces": ["kube-system"]}),
        json!({"check": "privileged"}),
    ] {
        let input = input_with(&pod(), "CREATE", &settings);
        let ours = evaluate::<PciWorkloads>(&input).unwrap();
        let theirs = if settings["check"] == "default-credentials" {
            evaluate::<DefaultCredentials>(&input).unwrap()
        } else {
            evaluate::<PodSecurity>(&input).unwrap()
        };
        assert_eq!(messages(&ours), messages(&theirs), "{settings}");
        assert_eq!(ours.len(), usize::from(settings["check"] != "privileged"), "{settings}: {:?}", messages(&ours));
    }
}

#[test]
fn one_batch_serves_both_plugins_checks_and_reads_configmaps_raw() {
    let review =
        serde_json::from_str::<Value>(&input_with(&pod(), "CREATE", &json!({}))).unwrap()["review"].to_string();
    let found = evaluate_batch::<PciWorkloads>(
        &review,
        &[r#"{"check": "host-namespaces"}"#, r#"{"check": "default-credentials"}"#],
    );
    let found: Vec<Vec<String>> =
        found.into_iter().map(|r| r.unwrap().into_iter().map(|v| v.message).collect()).collect();
    assert!(found[0][0].contains("hostPID"), "{found:?}");
    assert!(found[1][0].contains("POSTGRES_PASSWORD is a known vendor-default"), "{found:?}");

    // Pods are parsed with the review; a ConfigMap stays raw for default-credentials.
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"ADMIN_PASSWORD": ""}});
    let found = evaluate::<PciWorkloads>(&input_with(&cm, "", &json!({"check": "default-credentials"}))).unwrap();
    assert_eq!(messages(&found), ["ConfigMap app: ADMIN_PASSWORD is empty; set a strong, unique credential"]);
}

#[test]
fn settings_are_checked_by_the_selected_check() {
    assert!(PciWorkloads::validate_settings(r#"{"check": "default-credentials", "min_length": 12}"#).is_ok());
    assert!(PciWorkloads::validate_settings(r#"{"check": "privileged", "exempt_namespaces": []}"#).is_ok());
    let wrong =
        PciWorkloads::validate_settings(r#"{"check": "default-credentials", "allowed_types": []}"#).unwrap_err();
    assert!(wrong.contains("allowed_types"), "{wrong}");
    let unknown = PciWorkloads::validate_settings(r#"{"check": "nope"}"#).unwrap_err();
    for name in
        ["privileged", "default-credentials", "image-digest", "read-only-root-filesystem", "apiserver-audit-logging"]
    {
        assert!(unknown.contains(name), "names the valid checks: {unknown}");
    }
    assert!(
        PciWorkloads::validate_settings(r#"{"check": "trusted-registries", "allowed_registries": ["r/"]}"#).is_ok()
    );
    let misplaced = PciWorkloads::validate_settings(r#"{"check": "image-digest", "allowed_registries": []}"#);
    assert!(misplaced.unwrap_err().contains("does not apply"));
    assert!(PciWorkloads::validate_settings("{}").unwrap_err().contains("\"check\" is required"));
}

#[test]
fn metadata_covers_both_checks() {
    let m = PciWorkloads::metadata();
    assert_eq!(m.kinds, ["Pod", "ConfigMap", "Secret"]);
    for r in ["2.2.1", "2.2.2", "8.3.6", "6.3.1", "11.5.2", "10.2.1"] {
        assert!(m.requirements.iter().any(|x| x == r), "{r}: {:?}", m.requirements);
    }
    let schema: Value = serde_json::from_str(m.settings_schema.as_deref().unwrap()).unwrap();
    assert_eq!(schema["then"]["properties"]["check"]["const"], "default-credentials");
    assert!(
        schema["else"]["then"]["properties"]["check"]["enum"].as_array().unwrap().iter().any(|c| c == "image-digest")
    );
    assert_eq!(schema["else"]["else"]["then"]["properties"]["check"]["const"], "apiserver-audit-logging");
    let pss = &schema["else"]["else"]["else"];
    assert!(pss["properties"]["check"]["enum"].as_array().unwrap().iter().any(|c| c == "privileged"));
}

mod containers {
    use super::*;
    use crate::containers::{has_digest, trusted, versioned};

    fn run(check: &str, extra: Value, pod: &Value) -> Vec<String> {
        let mut settings = json!({"check": check, "exempt_namespaces": ["kube-*"]});
        settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let found = evaluate::<PciWorkloads>(&input_with(pod, "CREATE", &settings)).unwrap();
        found.into_iter().map(|v| format!("{} @ {}", v.message, v.path.unwrap_or_default())).collect()
    }

    fn pod(namespace: &str, containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace},
               "spec": {"initContainers": [{"name": "init", "image": "r.example/init"}], "containers": containers}})
    }

    #[test]
    fn image_helpers_follow_lib_pci() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(has_digest(&format!("r/a@sha256:{hex}")));
        assert!(has_digest(&format!("r/a:1@sha256:{hex}")));
        assert!(!has_digest(&format!("r/a@sha256:{}", hex.to_uppercase())));
        assert!(!has_digest(&format!("r/a@sha256:{hex}0")));
        assert!(!has_digest(&format!("r/a@sha256:{hex}@sha256:{hex}")));
        assert!(
            versioned("r:5000/a:1.2") && versioned("a:") && !versioned("r:5000/a") && !versioned("a:latest@sha256:x")
        );
        assert!(trusted("r.example/a", "r.example/") && trusted("r.example:5000/a", "r.example"));
        assert!(!trusted("r.example.evil/a", "r.example") && !trusted("other/a", "r.example/"));
    }

    #[test]
    fn findings_name_the_container_and_the_image() {
        let p = pod(
            "shop",
            json!([{"name": "a", "image": "r.example/a:latest", "securityContext": {"readOnlyRootFilesystem": true}},
                                  {"name": "a", "image": "r.example/a:latest"}]),
        );
        assert_eq!(
            run("no-latest-tag", json!({}), &p),
            [
                "container init of pod p uses image r.example/init, which floats with `latest`: pin a version tag or digest @ spec.initContainers[0].image",
                "container a of pod p uses image r.example/a:latest, which floats with `latest`: pin a version tag or digest @ spec.containers[0].image",
            ],
            "one finding for the two same containers"
        );
        assert_eq!(run("image-digest", json!({}), &p).len(), 2);
        assert!(
            run("image-digest", json!({}), &p)[1].contains(r#"uses image "r.example/a:latest", not pinned by digest"#)
        );
        assert_eq!(
            run("read-only-root-filesystem", json!({}), &p),
            [
                "container init of pod p does not set securityContext.readOnlyRootFilesystem=true @ spec.initContainers[0].securityContext.readOnlyRootFilesystem",
                "container a of pod p does not set securityContext.readOnlyRootFilesystem=true @ spec.containers[1].securityContext.readOnlyRootFilesystem",
            ]
        );
        let allowed = json!({"allowed_registries": ["r.example/", "other"]});
        assert!(run("trusted-registries", allowed.clone(), &p).is_empty());
        let elsewhere = pod("shop", json!([{"name": "x", "image": "evil.io/x:1"}]));
        assert_eq!(
            run("trusted-registries", allowed, &elsewhere),
            [
                "container x of pod p uses image evil.io/x:1 from an untrusted registry (allowed: r.example/, other) @ spec.containers[0].image"
            ]
        );
        assert!(
            run("trusted-registries", json!({}), &elsewhere).is_empty(),
            "no allowed list: no message, as in the Rego"
        );
        assert!(run("no-latest-tag", json!({}), &pod("kube-system", json!([]))).is_empty(), "exempt namespace");
    }
}

mod audit_logging {
    use super::*;

    fn run(command: Value, args: Value, extra: Value) -> Vec<String> {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver-cp", "namespace": "kube-system"},
            "spec": {"containers": [{"name": "api", "command": command, "args": args}, {"name": "sidecar", "command": ["kube-apiserver"]}]}});
        let mut settings = json!({"check": "apiserver-audit-logging", "container_names": ["kube-apiserver"],
            "allow_stdout": false, "min_log_maxage_days": 30, "min_log_maxbackup": 10, "min_log_maxsize_mb": 100});
        settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let found = evaluate::<PciWorkloads>(&input_with(&pod, "CREATE", &settings)).unwrap();
        found
            .into_iter()
            .map(|v| {
                v.message
                    .replace("kube-apiserver container ", "")
                    .replace(" of pod kube-apiserver-cp: audit logging:", ":")
            })
            .collect()
    }

    #[test]
    fn flags_as_lib_pci_reads_them() {
        // By program name (after the last `/`), flags split or joined, the last one wins.
        let good = run(
            json!(["/usr/bin/kube-apiserver", "--audit-policy-file", "p"]),
            json!(["--audit-log-path=/a", "--audit-log-maxage=1", "--audit-log-maxage", "45", 3]),
            json!({}),
        );
        assert_eq!(
            good,
            [
                "sidecar: --audit-policy-file is not set",
                "sidecar: neither --audit-log-path (to a file) nor --audit-webhook-config-file is set"
            ]
        );
        let short = run(
            json!([
                "kube-apiserver",
                "--audit-policy-file=p",
                "--audit-log-path=/a",
                "--audit-log-maxbackup=0",
                "--audit-log-maxsize=010",
                "--audit-log-maxage=x"
            ]),
            json!([]),
            json!({"container_names": ["api"]}),
        );
        assert_eq!(
            short,
            ["api: --audit-log-maxsize=010 is below the minimum of 100"],
            "0 and non-numbers are not checked"
        );
        let stdout = run(
            json!(["kube-apiserver", "--audit-policy-file=p", "--audit-log-path=-", "--audit-log-maxage=1"]),
            json!([]),
            json!({"container_names": ["api"]}),
        );
        assert_eq!(stdout, ["api: neither --audit-log-path (to a file) nor --audit-webhook-config-file is set"]);
        let allowed = run(
            json!(["kube-apiserver", "--audit-policy-file=p", "--audit-log-path=-", "--audit-log-maxage=1"]),
            json!([]),
            json!({"container_names": ["api"], "allow_stdout": true}),
        );
        assert_eq!(allowed, ["api: --audit-log-maxage=1 is below the minimum of 30"]);
        let empty = run(
            json!([
                "kube-apiserver",
                "--audit-policy-file=p",
                "--audit-policy-file=",
                "--audit-webhook-config-file",
                "w"
            ]),
            json!([]),
            json!({"container_names": ["api"]}),
        );
        assert_eq!(empty, ["api: --audit-policy-file is not set"], "an empty last value is unset");
        assert!(run(json!([]), json!([]), json!({"container_names": null})).is_empty(), "no names, no API server");
    }
}
