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
    assert!(unknown.contains("privileged"), "names the valid checks: {unknown}");
    assert!(PciWorkloads::validate_settings("{}").unwrap_err().contains("\"check\" is required"));
}

#[test]
fn metadata_covers_both_checks() {
    let m = PciWorkloads::metadata();
    assert_eq!(m.kinds, ["Pod", "ConfigMap", "Secret"]);
    for r in ["2.2.1", "2.2.2", "8.3.6"] {
        assert!(m.requirements.iter().any(|x| x == r), "{r}: {:?}", m.requirements);
    }
    let schema: Value = serde_json::from_str(m.settings_schema.as_deref().unwrap()).unwrap();
    assert_eq!(schema["then"]["properties"]["check"]["const"], "default-credentials");
    assert!(schema["else"]["properties"]["check"]["enum"].as_array().unwrap().iter().any(|c| c == "privileged"));
}
