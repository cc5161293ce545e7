//! `gator verify`-style suites (`test.gatekeeper.sh/v1alpha1`, kind `Suite`), run as
//! gator runs them: each test loads a template and a constraint (paths relative to
//! the suite file), each case reviews exactly one object (or an AdmissionReview),
//! with an inventory taken only from the case's `inventory` files, and each
//! assertion counts the results whose message matches its regex against
//! `violations: yes | no | N` (default `yes`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::admission::Review;
use crate::documents::{Document, Documents};
use crate::engine::{Engine, Mode};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::inventory::Inventory;
use crate::tester::{BundleReport, CaseResult, Status};

#[derive(Debug, Deserialize)]
struct Suite {
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    tests: Vec<Test>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Test {
    #[serde(default)]
    name: String,
    template: String,
    constraint: String,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    skip: bool,
    #[serde(default)]
    invalid: bool,
}

#[derive(Debug, Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<Assertion>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Assertion {
    #[serde(default)]
    violations: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

/// Whether a document is a gator Suite.
pub fn is_suite(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Suite")
        && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("test.gatekeeper.sh/"))
}

/// The suite files of a path: a file, a directory (its files), or `DIR/...` (recursively).
pub fn suite_files(arg: &str) -> Result<Vec<PathBuf>> {
    let (dir, recursive) = match arg.strip_suffix("/...") {
        Some(d) => (PathBuf::from(d), true),
        None => (PathBuf::from(arg), false),
    };
    if dir.is_file() {
        return Ok(vec![dir]);
    }
    let mut out = Vec::new();
    walk(&dir, recursive, &mut out)?;
    out.retain(|p| {
        let Ok(text) = std::fs::read_to_string(p) else { return false };
        let mut docs = Documents::default();
        docs.parse_text(&p.display().to_string(), &text, crate::documents::Format::Yaml);
        docs.documents.iter().any(|d| is_suite(&d.value))
    });
    Ok(out)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot read", e))?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if recursive {
                walk(&p, true, out)?;
            }
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_docs(path: &Path) -> Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
    let mut docs = Documents::default();
    docs.parse_text(&path.display().to_string(), &text, crate::documents::Format::Detect);
    match docs.errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(docs.documents),
    }
}

/// Runs one suite file.
pub fn run_suite(path: &Path) -> Result<BundleReport> {
    let docs = read_docs(path)?;
    let doc = docs
        .iter()
        .find(|d| is_suite(&d.value))
        .ok_or_else(|| Error::input(path.display().to_string(), "not a gator Suite"))?;
    let suite: Suite = serde_json::from_value(doc.value.clone())
        .map_err(|e| Error::input(path.display().to_string(), format!("not a valid Suite: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = suite
        .metadata
        .as_ref()
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| path.display().to_string());
    let mut report = BundleReport {
        bundle: name,
        version: "gator suite".into(),
        cases: Vec::new(),
        problems: Vec::new(),
        untested: Vec::new(),
        expiring: Vec::new(),
    };
    if suite.skip {
        return Ok(report);
    }
    let file = path.display().to_string();
    for test in suite.tests.iter().filter(|t| !t.skip) {
        let loaded = load_test(dir, test);
        if test.invalid {
            let (status, failures) = match loaded {
                Err(_) => (Status::Passed, vec![]),
                Ok(_) => {
                    (Status::Failed, vec!["expected the template or constraint to be invalid, but it loaded".into()])
                }
            };
            report.cases.push(CaseResult { status, failures, ..CaseResult::new(&file, &test.name, None) });
            continue;
        }
        for case in test.cases.iter().filter(|c| !c.skip) {
            let start = Instant::now();
            let outcome = match &loaded {
                Err(e) => Err(e.to_string()),
                Ok((engine, policy)) => run_case(dir, engine, policy, case).map_err(|e| e.to_string()),
            };
            let (status, failures) = match outcome {
                Ok(f) if f.is_empty() => (Status::Passed, f),
                Ok(f) => (Status::Failed, f),
                Err(e) => (Status::Error, vec![e]),
            };
            let policy = loaded.as_ref().ok().map(|(_, p)| p.clone());
            let name = format!("{} / {}", test.name, case.name);
            report.cases.push(CaseResult {
                status,
                failures,
                duration: start.elapsed(),
                ..CaseResult::new(&file, name, policy)
            });
        }
    }
    Ok(report)
}

fn load_test(dir: &Path, test: &Test) -> Result<(Engine, String)> {
    let mut docs = read_docs(&dir.join(&test.template))?;
    docs.extend(read_docs(&dir.join(&test.constraint))?);
    let bundle = super::bundle_from_documents(dir, &docs)?;
    let policy = bundle.policies().first().map(|p| p.id.clone()).ok_or_else(|| {
        Error::input(format!("test {}", test.name), "the constraint file holds no Constraint of the template's kind")
    })?;
    if let Some(reason) = &bundle.policies()[0].unsupported {
        return Err(Error::input(format!("test {}", test.name), format!("unsupported: {reason}")));
    }
    Ok((Engine::builder().bundle(bundle).build()?, policy))
}

fn run_case(dir: &Path, engine: &Engine, policy: &str, case: &Case) -> Result<Vec<String>> {
    let object_path = dir.join(&case.object);
    let objects = read_docs(&object_path)?;
    if objects.len() != 1 {
        return Err(Error::input(
            object_path.display().to_string(),
            format!("expected exactly one object, found {}", objects.len()),
        ));
    }
    let doc = &objects[0];
    let is_review = doc.value.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
    let (mut input, mode) = if is_review {
        let mut review = doc.value.clone();
        let req = &mut review["request"];
        // gator reviews the old object on DELETE (SetObjectOnDelete).
        if req["operation"] == "DELETE" && req.get("object").is_none_or(Value::is_null) {
            req["object"] = req["oldObject"].clone();
        }
        (Review::from_value(review, false)?.input, Mode::Admission)
    } else {
        (Input::from_object_at(doc.value.clone(), Some(doc.source.clone()))?, Mode::Scan)
    };
    let mut inventory = Inventory::new();
    for f in &case.inventory {
        for d in read_docs(&dir.join(f))? {
            inventory.add(&d.value);
        }
    }
    let namespace = crate::object::namespace(input.object())
        .or_else(|| input.review().get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()))
        .map(str::to_string);
    if let Some(ns) =
        namespace.as_deref().filter(|_| input.gvk().kind != "Namespace").and_then(|n| inventory.namespace(n))
    {
        input = input.with_namespace_object(ns.clone());
    }
    let mut engine = engine.with_mode(mode);
    if engine.policies().iter().any(|p| p.is_referential()) {
        engine = engine.with_inventory(Arc::new(inventory))?;
    }
    let decision = engine.evaluate(&input);
    let mut results: Vec<&str> = decision
        .violations
        .iter()
        .chain(&decision.warnings)
        .filter(|v| v.policy == policy)
        .map(|v| v.message.as_str())
        .collect();
    for e in decision.errors.iter().filter(|e| e.policy == policy) {
        if e.kind != crate::decision::PolicyErrorKind::MatchError {
            return Err(Error::input(format!("case {}", case.name), e.message.clone()));
        }
        results.push(e.message.as_str());
    }
    let assertions: Vec<&Assertion> = case.assertions.iter().collect();
    if assertions.is_empty() {
        return Err(Error::input(format!("case {}", case.name), "a case needs at least one assertion"));
    }
    let mut failures = Vec::new();
    for (i, a) in assertions.iter().enumerate() {
        let re = match &a.message {
            Some(m) => Some(Regex::new(m).map_err(|e| {
                Error::input(format!("case {}", case.name), format!("assertion {}: bad regex: {e}", i + 1))
            })?),
            None => None,
        };
        let count = results.iter().filter(|m| re.as_ref().is_none_or(|r| r.is_match(m))).count();
        let (ok, want) = match &a.violations {
            None => (count >= 1, "at least one".to_string()),
            Some(Value::String(s)) if s == "yes" => (count >= 1, "at least one".to_string()),
            Some(Value::String(s)) if s == "no" => (count == 0, "no".to_string()),
            Some(Value::Bool(true)) => (count >= 1, "at least one".to_string()),
            Some(Value::Bool(false)) => (count == 0, "no".to_string()),
            Some(Value::Number(n)) if n.as_u64().is_some() => (Some(count as u64) == n.as_u64(), n.to_string()),
            Some(other) => {
                return Err(Error::input(
                    format!("case {}", case.name),
                    format!("assertion {}: violations must be yes, no or a number, got {other}", i + 1),
                ));
            }
        };
        if !ok {
            let filter = a.message.as_ref().map(|m| format!(" matching /{m}/")).unwrap_or_default();
            failures
                .push(format!("assertion {}: expected {want} violation(s){filter}, got {count}: {results:?}", i + 1));
        }
    }
    Ok(failures)
}
