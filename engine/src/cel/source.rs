//! VAP manifests as a bundle (`-b vap:PATH`): every ValidatingAdmissionPolicyBinding
//! in the files becomes one policy (id `POLICY.BINDING`) that runs its
//! ValidatingAdmissionPolicy with the binding's `matchResources`, `paramRef` (among the
//! parameter objects in the same files) and `validationActions` (Deny → deny, Warn →
//! warn, Audit → audit). A policy without a binding does nothing, as in the API server.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::vap;
use crate::bundle::{BackendKind, Bundle, BundleMeta, Manifest, PolicySpec, RegoExecution, RegoVersion};
use crate::decision::{Action, FailureMode, Severity};
use crate::documents::{Document, Documents};
use crate::error::{Error, Result};
use crate::matching::{KindSelector, MatchSpec};

fn place(d: &Document) -> String {
    format!("{}: document {}", d.source.file, d.source.document)
}

/// The ValidatingAdmissionPolicy that runs a Gatekeeper template's
/// `K8sNativeValidation` source the way Gatekeeper's CEL driver does: the constraint's
/// parameters are `params` and `variables.params`, and `variables.anyObject` is the
/// object (the old object on DELETE); the constraint's `match` selects objects.
pub(crate) fn from_gatekeeper(template: &str, source: &Value) -> Value {
    let mut variables = vec![
        serde_json::json!({"name": "anyObject", "expression": "object != null ? object : oldObject"}),
        serde_json::json!({"name": "params", "expression": "params"}),
    ];
    variables.extend(source["variables"].as_array().cloned().unwrap_or_default());
    serde_json::json!({
        "apiVersion": vap::API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": template},
        "spec": {
            "failurePolicy": source.get("failurePolicy").cloned().unwrap_or_else(|| Value::from("Fail")),
            "matchConditions": source.get("matchConditions").cloned().unwrap_or_else(|| Value::Array(Vec::new())),
            "variables": variables,
            "validations": source.get("validations").cloned().unwrap_or_else(|| Value::Array(Vec::new())),
        },
    })
}

/// The policy id of a binding: `POLICY.BINDING`.
pub fn policy_id(policy: &str, binding: &str) -> String {
    format!("{policy}.{binding}")
}

/// Loads every ValidatingAdmissionPolicy, binding and parameter object under `path`
/// (a file or a directory, recursively). A directory's `tests/` holds `palisade test`
/// cases for them (and the objects those cases read), not manifests.
pub fn load(path: &Path) -> Result<Bundle> {
    let tests = path.join("tests");
    let mut docs = Documents::default();
    docs.read_path(&path.display().to_string());
    if let Some(e) = docs.errors.into_iter().next() {
        return Err(e);
    }
    let tests_prefix = tests.display().to_string();
    docs.documents.retain(|d| !d.source.file.starts_with(&tests_prefix));
    let mut files = BTreeMap::new();
    if tests.is_dir() {
        read_tests(&tests, "tests", &mut files)?;
    }
    build(path, &docs.documents, files)
}

fn read_tests(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot read", e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, "cannot read", e))?.path();
        let name = format!("{prefix}/{}", path.file_name().unwrap_or_default().to_string_lossy());
        if path.is_dir() {
            read_tests(&path, &name, files)?;
        } else {
            files.insert(name, std::fs::read(&path).map_err(|e| Error::io(&path, "cannot read", e))?);
        }
    }
    Ok(())
}

/// Builds one bundle from the VAP objects among `docs`; other objects are candidate
/// parameter objects.
pub fn bundle_from_documents(origin: &Path, docs: &[Document]) -> Result<Bundle> {
    build(origin, docs, BTreeMap::new())
}

fn build(origin: &Path, docs: &[Document], mut files: BTreeMap<String, Vec<u8>>) -> Result<Bundle> {
    let mut policies: BTreeMap<String, &Document> = BTreeMap::new();
    for d in docs.iter().filter(|d| vap::is_policy(&d.value)) {
        let p = vap::parse_policy(&d.value).map_err(|e| Error::input(place(d), e))?;
        let name = p.metadata.name.unwrap_or_default();
        if policies.insert(name.clone(), d).is_some() {
            return Err(Error::input(place(d), format!("a second ValidatingAdmissionPolicy named {name}")));
        }
    }
    let params: Vec<&Value> =
        docs.iter().map(|d| &d.value).filter(|v| !vap::is_policy(v) && !vap::is_binding(v)).collect();
    let mut specs = Vec::new();
    for d in docs.iter().filter(|d| vap::is_binding(&d.value)) {
        let b = vap::parse_binding(&d.value).map_err(|e| Error::input(place(d), e))?;
        let name = b.metadata.name.clone().unwrap_or_default();
        let spec = b.spec;
        let policy_doc = policies.get(&spec.policy_name).ok_or_else(|| {
            Error::input(
                place(d),
                format!(
                    "ValidatingAdmissionPolicyBinding {name}: spec.policyName {} is not among the documents",
                    spec.policy_name
                ),
            )
        })?;
        let kind = &policy_doc.value["spec"]["paramKind"];
        let mut text = yaml(&policy_doc.value)? + &yaml(&d.value)?;
        for p in params.iter().filter(|p| p["kind"] == kind["kind"] && p["apiVersion"] == kind["apiVersion"]) {
            text += &yaml(p)?;
        }
        let file = format!("vap/{name}.yaml");
        files.insert(file.clone(), text.into_bytes());
        let action = vap::action(&spec.validation_actions).map_err(|e| Error::input(place(d), e))?;
        specs.push(policy_spec(&policy_doc.value, &spec.policy_name, &name, action, file));
    }
    if specs.is_empty() {
        return Err(Error::Manifest {
            path: origin.to_path_buf(),
            message: "no ValidatingAdmissionPolicyBinding (with its ValidatingAdmissionPolicy) here".into(),
        });
    }
    Bundle::from_manifest(origin, manifest(origin, specs), files)
}

fn yaml(v: &Value) -> Result<String> {
    serde_yaml_ng::to_string(v)
        .map(|t| format!("---\n{t}"))
        .map_err(|e| Error::input("vap", format!("cannot re-serialise a document: {e}")))
}

fn policy_spec(policy: &Value, policy_name: &str, binding: &str, action: Action, file: String) -> PolicySpec {
    let annotation = |k: &str| policy["metadata"]["annotations"].get(k).and_then(Value::as_str).map(str::to_string);
    let requirements = crate::bundle::requirements_annotation(policy);
    let fail = policy["spec"]["failurePolicy"].as_str() != Some("Ignore");
    // `authorizer` is answered from RBAC objects: `audit` and `serve --cluster` list them.
    let authorizer = policy["spec"].to_string().contains("authorizer");
    let rbac = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]
        .map(|k| KindSelector::Short(format!("rbac.authorization.k8s.io/{k}")));
    PolicySpec {
        id: policy_id(policy_name, binding),
        title: format!("ValidatingAdmissionPolicy {policy_name} (binding {binding})"),
        description: annotation("description").unwrap_or_default(),
        requirements,
        severity: Severity::Medium,
        action,
        admission_action: None,
        rego: None,
        libs: Vec::new(),
        unsupported: None,
        rego_version: None,
        rego_execution: None,
        backend: None,
        wasm: None,
        cel: Some(file),
        sha256: None,
        match_spec: MatchSpec { kinds: kinds(policy), ..MatchSpec::default() },
        parameters: Value::Object(Default::default()),
        // Expression errors follow the binding's actions (they are findings); what reaches
        // the failure mode (a binding that cannot be configured) denies under Fail.
        failure_mode: if fail { FailureMode::Fail } else { FailureMode::Ignore },
        memory_mb: None,
        grants: Vec::new(),
        budget_ms: None,
        schema: None,
        timeout_ms: None,
        referential: Some(authorizer),
        inventory: if authorizer { rbac.to_vec() } else { Vec::new() },
        expand_workloads: false,
        enabled_by: None,
    }
}

/// The kinds `matchConstraints.resourceRules` name, when every rule names well-known
/// resources (so that objects meet only the policies that may match them, and `audit`
/// lists only those kinds); empty (any kind) otherwise. The rules themselves still decide.
fn kinds(policy: &Value) -> Vec<KindSelector> {
    let rules = policy["spec"]["matchConstraints"]["resourceRules"].as_array().cloned().unwrap_or_default();
    let mut kinds = Vec::new();
    for rule in &rules {
        let strings = |k: &str| -> Vec<String> {
            rule[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                let plain = resource.split('/').next().unwrap_or_default();
                match crate::object::kind_of_resource(&group, plain) {
                    Some(kind) => kinds
                        .push(KindSelector::Full { api_groups: vec![group.clone()], kinds: vec![kind.to_string()] }),
                    None => return Vec::new(),
                }
            }
        }
    }
    kinds
}

fn manifest(origin: &Path, policies: Vec<PolicySpec>) -> Manifest {
    let name = crate::bundle::name_from_path(origin, "vap");
    Manifest {
        bundle: BundleMeta {
            name,
            version: semver::Version::new(0, 0, 0),
            engine: semver::VersionReq::STAR,
            description: format!("ValidatingAdmissionPolicies and bindings from {}", origin.display()),
            framework: None,
            libs: Vec::new(),
            rego_version: RegoVersion::V1,
            rego_execution: RegoExecution::Interpreter,
            backend: BackendKind::Cel,
        },
        dependencies: BTreeMap::new(),
        policies,
    }
}
