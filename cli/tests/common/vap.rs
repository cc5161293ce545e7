//! The ValidatingAdmissionPolicy conformance cases of `conformance/vap/`: reading
//! them, and what palisade answers to each request, in the API server's words
//! (`ValidatingAdmissionPolicy 'P' with binding 'B' denied request: …` and
//! `Validation failed for … : …` warnings) so both answers compare as text.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use palisade::decision::{Action, Decision};
use palisade::documents::{Document, Documents};
use palisade::{Engine, Input, Mode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::root;

/// One file of cases: objects to create first, the policies, the requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Created for real before the policies (Namespaces, CRDs, parameter objects).
    #[serde(default)]
    pub setup: Vec<Value>,
    /// ValidatingAdmissionPolicies and bindings.
    pub policies: Vec<Value>,
    pub requests: Vec<Request>,
    #[serde(skip)]
    pub path: PathBuf,
}

/// One request: `object` is applied (dry run); with `existing`, that object is created
/// first so that the request is an UPDATE.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub name: String,
    pub object: Value,
    #[serde(default)]
    pub existing: Option<Value>,
    pub expect: Outcome,
}

/// What the API server (or palisade) answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub allowed: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Every case file, in name order.
pub fn case_files() -> Vec<CaseFile> {
    let dir = root().join("conformance/vap");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            // YAML merge keys (`<<: *object`) let a request vary one field of another's object.
            let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            yaml.apply_merge().unwrap();
            let mut f: CaseFile = serde_yaml_ng::from_value(yaml).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            f.path = p;
            f
        })
        .collect()
}

fn documents(values: &[Value]) -> Vec<Document> {
    let mut docs = Documents::default();
    for v in values {
        docs.parse_text("case", &serde_json::to_string(v).unwrap(), palisade::documents::Format::Json);
    }
    assert!(docs.errors.is_empty(), "{:?}", docs.errors);
    docs.documents
}

/// The engine for a case file: its policies, with its setup objects as parameters.
pub fn engine(file: &CaseFile) -> Engine {
    let mut values = file.setup.clone();
    values.extend(file.policies.iter().cloned());
    let bundle = palisade::cel::source::bundle_from_documents(&file.path, &documents(&values)).unwrap();
    let engine = Engine::builder().mode(Mode::Admission).bundle(bundle).build().unwrap();
    // The setup objects are the cluster's inventory (RBAC objects for `authorizer`).
    let mut inventory = palisade::Inventory::new();
    for o in &file.setup {
        inventory.add(o);
    }
    engine.with_inventory(std::sync::Arc::new(inventory)).unwrap()
}

/// The Namespace objects as the API server keeps them (with the name label it adds).
fn namespace(file: &CaseFile, name: &str) -> Option<Value> {
    let mut ns = file.setup.iter().find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == name)?.clone();
    ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    Some(ns)
}

/// The AdmissionRequest the API server sends for `request`.
pub fn admission_request(request: &Request) -> Value {
    let o = &request.object;
    let (group, version) =
        o["apiVersion"].as_str().unwrap().split_once('/').unwrap_or(("", o["apiVersion"].as_str().unwrap()));
    let kind = o["kind"].as_str().unwrap();
    json!({
        "uid": "00000000-0000-0000-0000-000000000000",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": palisade::object::resource_name(group, kind)},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": o["metadata"]["name"],
        "namespace": o["metadata"]["namespace"].as_str().unwrap_or_default(),
        "operation": if request.existing.is_some() { "UPDATE" } else { "CREATE" },
        "userInfo": {"username": "palisade-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": o,
        "oldObject": request.existing.clone().unwrap_or(Value::Null),
        "dryRun": true,
    })
}

/// Palisade's answer to one request.
pub fn palisade_outcome(engine: &Engine, file: &CaseFile, request: &Request) -> Outcome {
    let mut input = Input::from_admission_request(admission_request(request)).unwrap();
    let ns = request.object["metadata"]["namespace"].as_str();
    let ns = if request.object["kind"] == "Namespace" { None } else { ns };
    if let Some(n) = ns.and_then(|n| namespace(file, n)) {
        input = input.with_namespace_object(n);
    }
    outcome(file, &engine.evaluate(&input))
}

fn names(details: &Option<Value>) -> (String, String) {
    let d = details.clone().unwrap_or_default();
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    (s("validatingAdmissionPolicy"), s("binding"))
}

/// (policy, binding) of a policy id `POLICY.BINDING` among the case's bindings.
fn binding_names(file: &CaseFile, id: &str) -> (String, String) {
    file.policies
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
        .map(|b| {
            (b["spec"]["policyName"].as_str().unwrap().to_string(), b["metadata"]["name"].as_str().unwrap().to_string())
        })
        .find(|(p, b)| palisade::cel::source::policy_id(p, b) == id)
        .unwrap_or_default()
}

/// A decision in the API server's words.
pub fn outcome(file: &CaseFile, d: &Decision) -> Outcome {
    let message = d
        .violations
        .iter()
        .find(|v| v.action == Action::Deny)
        .map(|v| {
            let (p, b) = names(&v.details);
            format!("ValidatingAdmissionPolicy '{p}' with binding '{b}' denied request: {}", v.message)
        })
        .or_else(|| {
            d.failing_errors().next().map(|e| {
                let (p, b) = binding_names(file, &e.policy);
                format!("ValidatingAdmissionPolicy '{p}' with binding '{b}' denied request: {}", e.message)
            })
        });
    let warnings = d
        .warnings
        .iter()
        .map(|v| {
            let (p, b) = names(&v.details);
            format!("Validation failed for ValidatingAdmissionPolicy '{p}' with binding '{b}': {}", v.message)
        })
        .collect();
    Outcome { allowed: d.allowed, message, warnings }
}

/// The API server's answer, from the status and body of a dry-run apply.
pub fn apiserver_outcome(status: u16, body: &Value, warning_headers: &[String]) -> Outcome {
    let allowed = (200..300).contains(&status);
    let message = (!allowed).then(|| {
        let m = body["message"].as_str().unwrap_or_default();
        m.find("ValidatingAdmissionPolicy '").map_or(m, |i| &m[i..]).to_string()
    });
    let warnings = warning_headers
        .iter()
        .filter_map(|h| {
            // `299 - "text"`, with `"` and `\` escaped.
            let q = h.split_once('"')?.1.strip_suffix('"')?;
            Some(q.replace("\\\"", "\"").replace("\\\\", "\\"))
        })
        .filter(|w| w.starts_with("Validation failed for ValidatingAdmissionPolicy"))
        .collect();
    Outcome { allowed, message, warnings }
}

/// The case file's path relative to the repository, for messages.
pub fn display(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}
