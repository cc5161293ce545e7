//! `palisade webhook-config`: the ValidatingWebhookConfiguration that sends the API
//! server's requests to Palisade, with rules derived from the loaded bundles' match
//! criteria (groups, resources, operations; workload kinds for Pod policies, since
//! Palisade judges workloads through their pod templates).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::matching::{KindSelector, Operation};
use crate::object;

/// Options of the generated configuration.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// `metadata.name` of the configuration.
    pub name: String,
    /// Name of the webhook (three dot-separated parts at least).
    pub webhook_name: String,
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// Service port.
    pub port: u16,
    /// `Fail` or `Ignore`.
    pub failure_policy: String,
    /// Seconds (1–30); keep above the server's evaluation deadline.
    pub timeout_seconds: u32,
    /// Namespaces never sent to the webhook (system namespaces, Palisade's own).
    pub exclude_namespaces: Vec<String>,
    /// PEM of the CA that signed the serving certificate (goes to `caBundle`).
    pub ca_bundle: Option<String>,
    /// `namespace/name` of a cert-manager Certificate whose CA to inject instead.
    pub inject_ca_from: Option<String>,
    /// Call this HTTPS URL (`clientConfig.url`) instead of the Service, for a webhook
    /// running outside the cluster.
    pub url: Option<String>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            name: "palisade".into(),
            webhook_name: "validate.palisade.dev".into(),
            namespace: "palisade-system".into(),
            service: "palisade".into(),
            port: 443,
            failure_policy: "Fail".into(),
            timeout_seconds: 5,
            exclude_namespaces: ["kube-system", "kube-public", "kube-node-lease", "palisade-system", "cert-manager"]
                .map(String::from)
                .to_vec(),
            ca_bundle: None,
            inject_ca_from: None,
            url: None,
        }
    }
}

const DEFAULT_OPERATIONS: [&str; 3] = ["CREATE", "UPDATE", "DELETE"];

/// The group a kind belongs to when a selector names only the kind.
fn groups_of(kind: &str) -> Vec<String> {
    let known: Vec<String> = object::known_groups(kind);
    if known.is_empty() { vec!["*".to_string()] } else { known }
}

/// Builds the configuration for the engine's policies.
pub fn webhook_config(engine: &Engine, o: &WebhookOptions) -> Value {
    // operations -> group -> resources
    let mut rules: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for p in engine.policies() {
        let spec = p.spec();
        let ops: Vec<String> =
            if spec.match_spec.operations.is_empty() || spec.match_spec.operations.contains(&Operation::All) {
                DEFAULT_OPERATIONS.iter().map(|s| s.to_string()).collect()
            } else {
                let mut v: Vec<String> = spec.match_spec.operations.iter().map(|o| o.as_str().to_string()).collect();
                v.sort();
                v
            };
        let mut targets: Vec<(String, String)> = Vec::new();
        let selectors: Vec<KindSelector> = if spec.match_spec.kinds.is_empty() {
            vec![KindSelector::Short("*".into())]
        } else {
            spec.match_spec.kinds.clone()
        };
        for sel in &selectors {
            let (groups, kinds) = sel.groups_and_kinds();
            for kind in &kinds {
                let groups =
                    if groups.iter().any(|g| g == "*") && kind != "*" { groups_of(kind) } else { groups.clone() };
                for g in groups {
                    let resource = if kind == "*" { "*".to_string() } else { object::resource_name(&g, kind) };
                    targets.push((g, resource));
                }
            }
        }
        if spec.match_spec.matches_pods() {
            // `kubectl debug` adds ephemeral containers through this subresource.
            targets.push((String::new(), "pods/ephemeralcontainers".into()));
            if spec.expand_workloads {
                for (g, k, _) in object::WORKLOAD_TEMPLATES {
                    targets.push((g.to_string(), object::resource_name(g, k)));
                }
            }
        }
        let by_group = rules.entry(ops).or_default();
        for (g, r) in targets {
            by_group.entry(g).or_default().insert(r);
        }
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .flat_map(|(ops, groups)| {
            groups.into_iter().map(move |(g, resources)| {
                let resources: Vec<String> =
                    if resources.contains("*") { vec!["*".to_string()] } else { resources.into_iter().collect() };
                json!({"apiGroups": [g], "apiVersions": ["*"], "operations": ops, "resources": resources, "scope": "*"})
            })
        })
        .collect();
    let mut client = match &o.url {
        Some(url) => json!({"url": url}),
        None => json!({"service": {"namespace": o.namespace, "name": o.service, "path": "/validate", "port": o.port}}),
    };
    if let Some(ca) = &o.ca_bundle {
        client["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(ca.as_bytes()));
    }
    let mut metadata = json!({"name": o.name, "labels": {"app.kubernetes.io/name": "palisade", "app.kubernetes.io/component": "admission-webhook"}});
    if let Some(from) = &o.inject_ca_from {
        metadata["annotations"] = json!({"cert-manager.io/inject-ca-from": from});
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [{
            "name": o.webhook_name,
            "admissionReviewVersions": ["v1", "v1beta1"],
            "sideEffects": "None",
            "timeoutSeconds": o.timeout_seconds,
            "failurePolicy": o.failure_policy,
            "matchPolicy": "Equivalent",
            "clientConfig": client,
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": o.exclude_namespaces
            }]},
            "rules": rules,
        }]
    })
}
