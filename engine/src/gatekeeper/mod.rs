//! Gatekeeper sources: ConstraintTemplates (`templates.gatekeeper.sh` v1, v1beta1)
//! and Constraints loaded as they are, run with Gatekeeper's semantics — the
//! template's Rego (v0 unless its `code` says `version: "v1"`) and `libs`, the
//! constraint's parameters and `match` (Gatekeeper's matching rules), its
//! `enforcementAction` (deny, warn, dryrun → audit) and no workload expansion. A
//! template's CEL code (`engine: K8sNativeValidation`) runs on palisade's CEL engine
//! with Gatekeeper's variables (`variables.params`, `variables.anyObject`): alone, or
//! as the twin of its Rego (CEL runs by default, as in gator; `--backend rego` runs the Rego). [`suite`] runs `gator verify` suites.

pub mod suite;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::bundle::{BackendKind, Bundle, BundleMeta, Manifest, PolicySpec, RegoExecution, RegoVersion};
use crate::decision::{Action, FailureMode, Severity};
use crate::documents::{Document, Documents};
use crate::error::{Error, Result};
use crate::matching::{MatchSpec, Semantics};

/// The only Gatekeeper target Palisade runs.
const TARGET: &str = "admission.k8s.gatekeeper.sh";

/// A parsed ConstraintTemplate.
#[derive(Debug, Clone)]
pub struct Template {
    /// `metadata.name`.
    pub name: String,
    /// The constraint kind it defines.
    pub kind: String,
    /// Rego entry module (absent for CEL-only templates).
    pub rego: Option<String>,
    /// The `source` of its `K8sNativeValidation` code (validations, variables,
    /// matchConditions), if any.
    pub cel: Option<Value>,
    /// Rego library modules.
    pub libs: Vec<String>,
    /// Syntax version of the Rego.
    pub version: RegoVersion,
    /// Title (annotation `metadata.gatekeeper.sh/title`, else the kind).
    pub title: String,
    /// Description annotation.
    pub description: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn is_template(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("ConstraintTemplate")
        && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("templates.gatekeeper.sh/"))
}

fn is_constraint(v: &Value) -> bool {
    v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("constraints.gatekeeper.sh/"))
}

fn place(d: &Document) -> String {
    format!("{}: document {}", d.source.file, d.source.document)
}

/// Parses a ConstraintTemplate.
pub fn template(doc: &Document) -> Result<Template> {
    let v = &doc.value;
    let err = |m: String| Error::input(place(doc), m);
    let name =
        str_at(v, &["metadata", "name"]).ok_or_else(|| err("ConstraintTemplate without metadata.name".into()))?;
    let kind = str_at(v, &["spec", "crd", "spec", "names", "kind"])
        .ok_or_else(|| err(format!("ConstraintTemplate {name}: spec.crd.spec.names.kind is missing")))?;
    if !kind.eq_ignore_ascii_case(name) {
        return Err(err(format!(
            "ConstraintTemplate {name}: its name must equal its kind {kind} (case-insensitively)"
        )));
    }
    let targets = v["spec"]["targets"].as_array().cloned().unwrap_or_default();
    if targets.len() != 1 {
        return Err(err(format!("ConstraintTemplate {name}: expected exactly one target, found {}", targets.len())));
    }
    let target = &targets[0];
    if target.get("target").and_then(Value::as_str) != Some(TARGET) {
        return Err(err(format!("ConstraintTemplate {name}: target must be {TARGET}")));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    // The legacy `rego`/`libs` fields are always Rego v0 and win over `code`.
    let (rego, libs, version) = if let Some(r) = target.get("rego").and_then(Value::as_str) {
        (Some(r.to_string()), strings(&target["libs"]), RegoVersion::V0)
    } else {
        let code = target.get("code").and_then(Value::as_array).cloned().unwrap_or_default();
        match code.iter().find(|c| c.get("engine").and_then(Value::as_str) == Some("Rego")) {
            Some(c) => {
                let src = &c["source"];
                let version = if src.get("version").and_then(Value::as_str) == Some("v1") {
                    RegoVersion::V1
                } else {
                    RegoVersion::V0
                };
                (src.get("rego").and_then(Value::as_str).map(str::to_string), strings(&src["libs"]), version)
            }
            None => (None, Vec::new(), RegoVersion::V0),
        }
    };
    let annotation = |k: &str| v["metadata"]["annotations"].get(k).and_then(Value::as_str).map(str::to_string);
    let cel = target["code"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c.get("engine").and_then(Value::as_str) == Some("K8sNativeValidation"))
        .map(|c| c["source"].clone());
    Ok(Template {
        name: name.to_string(),
        kind: kind.to_string(),
        rego,
        cel,
        libs,
        version,
        title: annotation("metadata.gatekeeper.sh/title").unwrap_or_else(|| kind.to_string()),
        description: annotation("description").unwrap_or_default().trim().to_string(),
    })
}

/// The enforcement action of a constraint (`dryrun` is Palisade's `audit`).
fn action(spec: &Value) -> Action {
    let scoped = || {
        spec["scopedEnforcementActions"].as_array().into_iter().flatten().find_map(|s| {
            let points = s["enforcementPoints"].as_array()?;
            points
                .iter()
                .any(|p| matches!(p["name"].as_str(), Some("validation.gatekeeper.sh" | "*")))
                .then(|| s["action"].as_str().unwrap_or("deny").to_string())
        })
    };
    let name = match spec.get("enforcementAction").and_then(Value::as_str) {
        Some("scoped") => scoped().unwrap_or_else(|| "dryrun".into()),
        Some(a) => a.to_string(),
        None => "deny".into(),
    };
    match name.as_str() {
        "warn" => Action::Warn,
        "dryrun" => Action::Audit,
        _ => Action::Deny,
    }
}

/// Builds one bundle from the ConstraintTemplates and Constraints among `docs`
/// (everything else is ignored).
pub fn bundle_from_documents(origin: &Path, docs: &[Document]) -> Result<Bundle> {
    let mut templates: BTreeMap<String, (Template, String)> = BTreeMap::new();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for d in docs.iter().filter(|d| is_template(&d.value)) {
        let t = template(d)?;
        let dir = format!("templates/{}", t.name);
        if let Some(r) = &t.rego {
            files.insert(format!("{dir}/template.rego"), r.clone().into_bytes());
        }
        for (i, lib) in t.libs.iter().enumerate() {
            files.insert(format!("{dir}/lib/lib{i}.rego"), lib.clone().into_bytes());
        }
        if let Some(source) = &t.cel {
            let policy = crate::cel::source::from_gatekeeper(&t.name, source);
            let text = serde_json::to_string(&policy).map_err(|e| Error::input(place(d), e.to_string()))?;
            files.insert(format!("{dir}/template.cel.json"), text.into_bytes());
        }
        if templates.insert(t.kind.clone(), (t, dir)).is_some() {
            return Err(Error::input(place(d), "a second ConstraintTemplate defines the same kind"));
        }
    }
    let mut policies = Vec::new();
    for d in docs.iter().filter(|d| is_constraint(&d.value)) {
        let v = &d.value;
        let kind = v["kind"].as_str().unwrap_or_default();
        let name = str_at(v, &["metadata", "name"])
            .ok_or_else(|| Error::input(place(d), "constraint without metadata.name"))?;
        let (t, dir) = templates.get(kind).ok_or_else(|| {
            Error::input(place(d), format!("constraint {name}: no ConstraintTemplate defines kind {kind}"))
        })?;
        let spec = &v["spec"];
        let mut m = spec.get("match").cloned().unwrap_or_else(|| json!({}));
        if let Some(o) = m.as_object_mut() {
            o.remove("source");
        }
        let mut match_spec: MatchSpec = serde_json::from_value(m)
            .map_err(|e| Error::input(place(d), format!("constraint {name}: spec.match is not valid: {e}")))?;
        match_spec.semantics = Semantics::Gatekeeper;
        let action = action(spec);
        let requirements = crate::bundle::requirements_annotation(v);
        policies.push(PolicySpec {
            id: format!("{}.{}", kind.to_lowercase(), name),
            title: format!("{} ({name})", t.title),
            description: t.description.clone(),
            requirements,
            severity: Severity::Medium,
            action,
            admission_action: None,
            libs: if t.libs.is_empty() { Vec::new() } else { vec![format!("{dir}/lib")] },
            unsupported: (t.rego.is_none() && t.cel.is_none()).then(|| {
                format!("ConstraintTemplate {} (kind {}) has neither Rego nor K8sNativeValidation code", t.name, t.kind)
            }),
            cel: t.cel.as_ref().map(|_| format!("{dir}/template.cel.json")),
            rego: t.rego.as_ref().map(|_| format!("{dir}/template.rego")),
            rego_version: Some(t.version),
            rego_execution: None,
            // gator prefers a template's CEL when it has both engines.
            backend: (t.rego.is_some() && t.cel.is_some()).then_some(BackendKind::Cel),
            wasm: None,
            sha256: None,
            match_spec,
            parameters: spec.get("parameters").filter(|p| p.is_object()).cloned().unwrap_or_else(|| json!({})),
            failure_mode: if action == Action::Deny { FailureMode::Fail } else { FailureMode::Ignore },
            memory_mb: None,
            grants: Vec::new(),
            timeout_ms: None,
            budget_ms: None,
            schema: None,
            referential: None,
            inventory: Vec::new(),
            expand_workloads: false,
            enabled_by: None,
        });
    }
    let name = crate::bundle::name_from_path(origin, "gatekeeper");
    let manifest = Manifest {
        bundle: BundleMeta {
            name,
            version: semver::Version::new(0, 0, 0),
            engine: semver::VersionReq::STAR,
            description: format!("Gatekeeper templates and constraints from {}", origin.display()),
            framework: None,
            libs: Vec::new(),
            rego_version: RegoVersion::V0,
            rego_execution: RegoExecution::Interpreter,
            backend: BackendKind::Rego,
        },
        dependencies: BTreeMap::new(),
        policies,
    };
    Bundle::from_manifest(origin, manifest, files)
}

/// Whether a directory is a Gatekeeper source (no `bundle.toml`).
pub fn is_source_dir(dir: &Path) -> bool {
    dir.is_dir() && !dir.join("bundle.toml").exists()
}

/// Loads every ConstraintTemplate and Constraint under a directory (recursively).
pub fn load_dir(dir: &Path) -> Result<Bundle> {
    let mut docs = Documents::default();
    docs.read_path(&dir.display().to_string());
    if let Some(e) = docs.errors.into_iter().next() {
        return Err(e);
    }
    let bundle = bundle_from_documents(dir, &docs.documents)?;
    if bundle.policies().is_empty() {
        return Err(Error::Manifest {
            path: dir.to_path_buf(),
            message: "no bundle.toml, and no Gatekeeper Constraint (with its ConstraintTemplate) in this directory"
                .into(),
        });
    }
    Ok(bundle)
}
