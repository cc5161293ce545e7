//! deploy/: the manifests that run the webhook pass Palisade's own pci-dss bundle,
//! and the webhook configuration there is exactly what `palisade webhook-config`
//! derives from the bundle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::root;

#[test]
fn deploy_manifests_pass_the_pci_dss_bundle() {
    let o = common::command()
        .current_dir(root())
        .args(["scan", "-b", "policy-bundles/pci-dss", "deploy", "-o", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", serde_json::to_string_pretty(&report["results"]).unwrap());
    assert_eq!(report["summary"]["denied"], 0);
    assert_eq!(report["summary"]["input_errors"], 0);
    let kinds: Vec<&str> =
        report["results"].as_array().unwrap().iter().map(|r| r["object"]["kind"].as_str().unwrap()).collect();
    for k in [
        "Namespace",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Certificate",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(kinds.contains(&k), "deploy/ lacks a {k}: {kinds:?}");
    }
}

#[test]
fn webhook_configuration_is_the_generated_one() {
    let o = common::command()
        .current_dir(root())
        .args(["webhook-config", "--inject-ca-from", "palisade-system/palisade-webhook-tls"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let generated = String::from_utf8(o.stdout).unwrap();
    let committed = std::fs::read_to_string(root().join("deploy/60-webhook.yaml")).unwrap();
    let body: String = committed.lines().skip_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        body, generated,
        "deploy/60-webhook.yaml drifted from `palisade webhook-config`; regenerate it (deploy/README.md)"
    );
    let config: serde_json::Value = serde_yaml_ng::from_str(&generated).unwrap();
    let webhook = &config["webhooks"][0];
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(webhook["matchPolicy"], "Equivalent");
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "palisade-system/palisade-webhook-tls"
    );
    let resources: Vec<String> = webhook["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()))
        .collect();
    for r in ["pods", "deployments", "cronjobs", "networkpolicies", "clusterrolebindings", "pods/ephemeralcontainers"] {
        assert!(resources.iter().any(|x| x == r), "{r} not in {resources:?}");
    }
}
