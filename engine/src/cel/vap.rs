//! ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) as the API server reads
//! it: the policy, its binding and its parameter objects parsed from documents, and the
//! matching of `matchConstraints` / binding `matchResources` (resource rules with
//! their exclusions, namespace and object selectors, `matchPolicy`). CEL expressions
//! are compiled elsewhere ([`super::policy`]).

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde_json::Value;

use crate::decision::Action;
use crate::input::Input;
use crate::matching::selector_matches;

/// The API version VAP objects are read in.
pub(crate) const API_VERSION: &str = "admissionregistration.k8s.io/v1";

/// Whether a document is a `ValidatingAdmissionPolicy`.
pub(crate) fn is_policy(v: &Value) -> bool {
    is(v, "ValidatingAdmissionPolicy")
}

/// Whether a document is a `ValidatingAdmissionPolicyBinding`.
pub(crate) fn is_binding(v: &Value) -> bool {
    is(v, "ValidatingAdmissionPolicyBinding")
}

fn is(v: &Value, kind: &str) -> bool {
    v.get("kind").and_then(Value::as_str) == Some(kind)
        && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("admissionregistration.k8s.io/"))
}

/// Parses a policy document; the error says which field is wrong.
pub(crate) fn parse_policy(v: &Value) -> Result<ValidatingAdmissionPolicy, String> {
    check_version(v)?;
    let p: ValidatingAdmissionPolicy =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a valid ValidatingAdmissionPolicy: {e}"))?;
    let name = p.metadata.name.clone().unwrap_or_default();
    let spec = p.spec.as_ref().ok_or_else(|| format!("ValidatingAdmissionPolicy {name}: spec is missing"))?;
    let validations = spec.validations.as_ref().map_or(0, Vec::len);
    let annotations = spec.audit_annotations.as_ref().map_or(0, Vec::len);
    if validations + annotations == 0 {
        return Err(format!(
            "ValidatingAdmissionPolicy {name}: spec.validations and spec.auditAnnotations may not both be empty"
        ));
    }
    if let Some(f) = spec.failure_policy.as_deref().filter(|f| !matches!(*f, "Fail" | "Ignore")) {
        return Err(format!("ValidatingAdmissionPolicy {name}: spec.failurePolicy must be Fail or Ignore, got {f:?}"));
    }
    Ok(p)
}

/// Parses a binding document.
pub(crate) fn parse_binding(v: &Value) -> Result<ValidatingAdmissionPolicyBinding, String> {
    check_version(v)?;
    let b: ValidatingAdmissionPolicyBinding =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a valid ValidatingAdmissionPolicyBinding: {e}"))?;
    let name = b.metadata.name.clone().unwrap_or_default();
    action(&b.spec.validation_actions).map_err(|e| format!("ValidatingAdmissionPolicyBinding {name}: {e}"))?;
    if let Some(r) = &b.spec.param_ref {
        match r.parameter_not_found_action.as_deref() {
            Some("Allow" | "Deny") => {}
            other => {
                return Err(format!(
                    "ValidatingAdmissionPolicyBinding {name}: spec.paramRef.parameterNotFoundAction must be Allow or Deny, got {}",
                    other.map_or("nothing".to_string(), |o| format!("{o:?}"))
                ));
            }
        }
    }
    Ok(b)
}

fn check_version(v: &Value) -> Result<(), String> {
    match v.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => Ok(()),
        other => Err(format!("apiVersion must be {API_VERSION}, got {}", other.unwrap_or("nothing"))),
    }
}

/// Palisade's action for a binding's `validationActions`: Deny wins, then Warn, then
/// Audit (Deny and Warn together are refused, as by the API server).
pub(crate) fn action(actions: &[String]) -> Result<Action, String> {
    if let Some(a) = actions.iter().find(|a| !matches!(a.as_str(), "Deny" | "Warn" | "Audit")) {
        return Err(format!("spec.validationActions: {a:?} is not one of Deny, Warn, Audit"));
    }
    let has = |a: &str| actions.iter().any(|x| x == a);
    match (has("Deny"), has("Warn"), has("Audit")) {
        (true, true, _) => Err("spec.validationActions: Deny and Warn may not be used together".into()),
        (true, _, _) => Ok(Action::Deny),
        (_, true, _) => Ok(Action::Warn),
        (_, _, true) => Ok(Action::Audit),
        _ => Err("spec.validationActions must not be empty".into()),
    }
}

/// What resource matching looks at for one object.
struct Target<'a> {
    group: &'a str,
    version: &'a str,
    resource: &'a str,
    subresource: &'a str,
    operation: Option<&'a str>,
    name: &'a str,
    namespaced: bool,
}

/// Whether the request is for a namespaced object, as the API server decides it: the
/// request has a namespace; outside admission, a well-known namespaced kind counts too
/// (manifests often leave the namespace to `kubectl -n`), an unknown kind does not.
pub(crate) fn namespaced(input: &Input) -> bool {
    let gvk = input.gvk();
    let is_namespace = gvk.group.is_empty() && gvk.kind == "Namespace";
    !is_namespace
        && (input.review()["namespace"].as_str().is_some_and(|n| !n.is_empty())
            || (crate::object::is_well_known(&gvk.group, &gvk.kind) && gvk.is_namespaced()))
}

fn target(input: &Input) -> Target<'_> {
    let review = input.review();
    let resource = &review["resource"];
    let gvk = input.gvk();
    Target {
        group: resource["group"].as_str().unwrap_or(&gvk.group),
        version: resource["version"].as_str().unwrap_or(&gvk.version),
        resource: resource["resource"].as_str().unwrap_or_default(),
        subresource: review["subResource"].as_str().unwrap_or_default(),
        operation: input.operation().map(|o| o.as_str()),
        name: review["name"].as_str().unwrap_or_default(),
        namespaced: namespaced(input),
    }
}

fn listed(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_ref().is_some_and(|l| l.iter().any(|x| x == "*" || x == value))
}

fn rule_matches(rule: &NamedRuleWithOperations, t: &Target<'_>, exact: bool) -> bool {
    let operation_ok = match t.operation {
        Some(op) => listed(&rule.operations, op),
        // Outside admission the object is judged as if created or updated.
        None => ["CREATE", "UPDATE"].iter().any(|op| listed(&rule.operations, op)),
    };
    let resource_ok = rule.resources.as_ref().is_some_and(|rs| {
        rs.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == t.resource) && (sub == "*" || sub == t.subresource)
        })
    });
    let scope_ok = match rule.scope.as_deref() {
        Some("Cluster") => !t.namespaced,
        Some("Namespaced") => t.namespaced,
        _ => true,
    };
    let names_ok = rule.resource_names.as_ref().is_none_or(|n| n.is_empty() || n.iter().any(|x| x == t.name));
    operation_ok
        && listed(&rule.api_groups, t.group)
        && (!exact || listed(&rule.api_versions, t.version))
        && resource_ok
        && scope_ok
        && names_ok
}

/// Whether `m` selects the object. `rules_required`: an absent rule list matches
/// nothing for a policy's `matchConstraints`, everything for a binding.
pub(crate) fn matches(m: Option<&MatchResources>, input: &Input, rules_required: bool) -> bool {
    let Some(m) = m else { return !rules_required };
    let t = target(input);
    let exact = m.match_policy.as_deref() == Some("Exact");
    let included = match &m.resource_rules {
        Some(rules) if !rules.is_empty() => rules.iter().any(|r| rule_matches(r, &t, exact)),
        _ => !rules_required,
    };
    let excluded = m.exclude_resource_rules.iter().flatten().any(|r| rule_matches(r, &t, exact));
    included && !excluded && namespace_ok(m, input) && object_ok(m, input)
}

/// The namespace selector looks at the Namespace of a namespaced object, at a
/// Namespace itself, and always holds for other cluster-scoped objects. An unknown
/// Namespace does not match a selector that requires something.
fn namespace_ok(m: &MatchResources, input: &Input) -> bool {
    let Some(sel) = &m.namespace_selector else { return true };
    if sel.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    {
        return true;
    }
    let gvk = input.gvk();
    if gvk.group.is_empty() && gvk.kind == "Namespace" {
        return selector_matches(sel, input.object());
    }
    if !namespaced(input) {
        return true;
    }
    input.namespace_object().is_some_and(|ns| selector_matches(sel, ns))
}

/// The object selector holds when the object or the old object matches.
fn object_ok(m: &MatchResources, input: &Input) -> bool {
    let Some(sel) = &m.object_selector else { return true };
    let review = input.review();
    [&review["object"], &review["oldObject"]].iter().any(|o| o.is_object() && selector_matches(sel, o))
}
