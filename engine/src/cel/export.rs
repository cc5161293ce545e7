//! `palisade export vap`: a bundle's CEL policies as objects for the API server, so
//! enforcement can move into kube-apiserver while palisade keeps CI and audit. Each
//! policy gives its ValidatingAdmissionPolicy (with `matchConstraints` from the
//! policy's `match` when the document has none) and a binding whose
//! `validationActions` follow the policy's action and whose `matchResources` carry its
//! namespaces. Parameters travel as a cluster-scoped `PolicyParameters` object
//! (`palisade.dev/v1alpha1`, its CRD included once) whose top-level fields are the
//! policy's `[policy.parameters]`, so `params.KEY` reads the same in both places.

use serde_json::{Value, json};

use super::vap;
use crate::bundle::Bundle;
use crate::decision::Action;
use crate::documents::{Documents, Format};
use crate::error::{Error, Result};
use crate::matching::{KindSelector, MatchSpec, Operation};
use crate::object::{known_groups, resource_name};

/// The parameter kind exported policies read.
pub const PARAMS_API_VERSION: &str = "palisade.dev/v1alpha1";
/// See [`PARAMS_API_VERSION`].
pub const PARAMS_KIND: &str = "PolicyParameters";

/// The objects to apply for every CEL policy of `bundle`, in apply order (the CRD for
/// parameters first when any policy has parameters). Policies without CEL are left
/// out; the second value names them.
pub fn export(bundle: &Bundle) -> Result<(Vec<Value>, Vec<String>)> {
    let (mut out, mut skipped, mut needs_crd) = (Vec::new(), Vec::new(), false);
    for spec in bundle.policies() {
        let Some(file) = &spec.cel else {
            skipped.push(spec.id.clone());
            continue;
        };
        let err = |m: String| Error::input(format!("{}: policy {}", bundle.origin().display(), spec.id), m);
        let mut docs = Documents::default();
        docs.parse_text(file, bundle.text(file)?, Format::Detect);
        let mut policy = docs
            .documents
            .into_iter()
            .map(|d| d.value)
            .find(vap::is_policy)
            .ok_or_else(|| err(format!("{file} has no ValidatingAdmissionPolicy")))?;
        vap::parse_policy(&policy).map_err(|e| err(format!("{file}: {e}")))?;
        let name = policy["metadata"]["name"].as_str().unwrap_or(&spec.id).to_string();
        let params = spec.parameters.as_object().is_some_and(|p| !p.is_empty());
        if policy["spec"].get("matchConstraints").is_none() {
            policy["spec"]["matchConstraints"] = match_constraints(&spec.match_spec).map_err(err)?;
        }
        if params {
            if policy["spec"].get("paramKind").is_some() {
                return Err(err("has both [policy.parameters] and spec.paramKind; export needs one".into()));
            }
            policy["spec"]["paramKind"] = json!({"apiVersion": PARAMS_API_VERSION, "kind": PARAMS_KIND});
            let mut object =
                json!({"apiVersion": PARAMS_API_VERSION, "kind": PARAMS_KIND, "metadata": {"name": spec.id}});
            if let (Some(o), Some(p)) = (object.as_object_mut(), spec.parameters.as_object()) {
                o.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            needs_crd = true;
            out.push(policy);
            out.push(binding(&name, &spec.id, spec.action, &spec.match_spec, true).map_err(err)?);
            out.push(object);
        } else {
            out.push(policy);
            out.push(binding(&name, &spec.id, spec.action, &spec.match_spec, false).map_err(err)?);
        }
    }
    if needs_crd {
        out.insert(0, params_crd());
    }
    Ok((out, skipped))
}

/// `resourceRules` for the kinds and operations of a `match`.
fn match_constraints(m: &MatchSpec) -> std::result::Result<Value, String> {
    let operations: Vec<&str> = if m.operations.is_empty() || m.operations.contains(&Operation::All) {
        vec!["CREATE", "UPDATE"]
    } else {
        m.operations.iter().map(|o| o.as_str()).collect()
    };
    let mut rules = Vec::new();
    let kinds = if m.kinds.is_empty() { vec![KindSelector::Short("*".into())] } else { m.kinds.clone() };
    for k in &kinds {
        let (groups, kinds) = k.groups_and_kinds();
        for kind in kinds {
            let groups = match groups.as_slice() {
                [g] if g == "*" && kind != "*" => known_groups(&kind),
                _ => groups.clone(),
            };
            if groups.is_empty() {
                return Err(format!("kind {kind} has no known API group; write its group in `match.kinds`"));
            }
            for g in groups {
                let resource = if kind == "*" { "*".to_string() } else { resource_name(&g, &kind) };
                rules.push(
                    json!({"apiGroups": [g], "apiVersions": ["*"], "operations": operations, "resources": [resource]}),
                );
            }
        }
    }
    Ok(json!({"resourceRules": rules}))
}

fn binding(policy: &str, id: &str, action: Action, m: &MatchSpec, params: bool) -> std::result::Result<Value, String> {
    let actions = match action {
        Action::Deny => json!(["Deny"]),
        Action::Warn => json!(["Warn"]),
        Action::Audit => json!(["Audit"]),
    };
    let mut spec = json!({"policyName": policy, "validationActions": actions});
    let globs = m.namespaces.iter().chain(&m.exclude_namespaces).find(|n| n.contains('*'));
    if let Some(g) = globs {
        return Err(format!("namespace pattern {g:?} cannot be written as a namespace selector"));
    }
    let mut expressions = Vec::new();
    if !m.namespaces.is_empty() {
        expressions.push(json!({"key": "kubernetes.io/metadata.name", "operator": "In", "values": m.namespaces}));
    }
    if !m.exclude_namespaces.is_empty() {
        expressions
            .push(json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": m.exclude_namespaces}));
    }
    let mut selector = serde_json::to_value(&m.namespace_selector).unwrap_or(Value::Null);
    if !expressions.is_empty() {
        if !selector.is_object() {
            selector = json!({});
        }
        let existing = selector["matchExpressions"].as_array().cloned().unwrap_or_default();
        selector["matchExpressions"] = Value::Array(existing.into_iter().chain(expressions).collect());
    }
    if selector.is_object() {
        spec["matchResources"] = json!({"namespaceSelector": selector});
    }
    if let Some(sel) = &m.label_selector {
        spec["matchResources"]["objectSelector"] = serde_json::to_value(sel).unwrap_or(Value::Null);
    }
    if params {
        spec["paramRef"] = json!({"name": id, "parameterNotFoundAction": "Deny"});
    }
    Ok(json!({
        "apiVersion": vap::API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": format!("{id}-binding")},
        "spec": spec,
    }))
}

/// The CRD of exported parameter objects: cluster-scoped, any top-level fields.
fn params_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "policyparameters.palisade.dev"},
        "spec": {
            "group": "palisade.dev",
            "scope": "Cluster",
            "names": {"kind": PARAMS_KIND, "plural": "policyparameters", "singular": "policyparameters", "listKind": "PolicyParametersList"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    })
}
