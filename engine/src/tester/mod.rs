//! Runs a bundle's test cases (`tests/*.yaml`, format in [`case`]) and reports
//! which passed. Strict by design: a case expecting a finding that gets none fails,
//! a case naming a policy the bundle lacks fails, and a policy without at least one
//! passing and one failing case is reported as a problem.

pub mod case;
mod inputs;
pub mod output;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Serialize;

use crate::bundle::Bundle;
use crate::bundle::{BackendKind, RegoExecution};
use crate::decision::{Action, Decision, FailureMode};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exception::Exceptions;
use crate::input::Input;
use crate::inventory::Inventory;
use crate::object::SourceLocation;
use case::{Case, TestFile};
use inputs::{admission_input, objects_in, one_object};

/// Outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every expectation held.
    Passed,
    /// An expectation did not hold.
    Failed,
    /// The case itself is broken (bad object, bad regex, missing file).
    Error,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Test file, relative to the bundle.
    pub file: String,
    /// Case name.
    pub name: String,
    /// The policy the case is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Outcome.
    pub status: Status,
    /// Why it failed (one line per unmet expectation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Where two ways of running the policy (VM and interpreter, Rego and
    /// WebAssembly) answered differently.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
    /// Where evaluating the same input again gave a different answer
    /// ([`TestOptions::repeat`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nondeterminism: Vec<String>,
    /// What each evaluated policy cost: the fastest of the repeated evaluations and
    /// the largest plugin memory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub costs: Vec<Cost>,
    /// Wall time of the case, all engines and repeats included.
    #[serde(serialize_with = "micros")]
    pub duration: Duration,
}

impl CaseResult {
    /// A passing result with nothing recorded yet.
    pub fn new(file: impl Into<String>, name: impl Into<String>, policy: Option<String>) -> CaseResult {
        CaseResult {
            file: file.into(),
            name: name.into(),
            policy,
            status: Status::Passed,
            failures: Vec::new(),
            disagreements: Vec::new(),
            nondeterminism: Vec::new(),
            costs: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Every reason the case did not pass, one line each.
    pub fn reasons(&self) -> impl Iterator<Item = &String> {
        self.failures.iter().chain(&self.disagreements).chain(&self.nondeterminism)
    }
}

/// The cost of evaluating one policy on a case's object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Policy id.
    pub policy: String,
    /// The fastest evaluation, in microseconds.
    pub duration_us: u64,
    /// The largest linear memory of the plugin instance (WebAssembly policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// The results of one bundle's tests.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// Bundle name.
    pub bundle: String,
    /// Bundle version.
    pub version: String,
    /// Every case run.
    pub cases: Vec<CaseResult>,
    /// Problems outside cases: unreadable test files.
    pub problems: Vec<String>,
    /// Policies lacking a passing or a failing case (not checked when a filter is set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untested: Vec<Untested>,
    /// Exceptions applied to the cases that expire within the warning window, as
    /// `exception NAME expires in N days (TIME)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<String>,
}

/// A policy without a case of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untested {
    /// Policy id.
    pub policy: String,
    /// The kind of case it lacks.
    pub lacks: CaseKind,
}

/// What a case expects of its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseKind {
    /// A passing case: it expects no finding.
    Passing,
    /// A failing case: it expects a finding.
    Failing,
}

impl std::fmt::Display for Untested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lacks {
            CaseKind::Passing => write!(f, "policy {} has no passing case (a case expecting no finding)", self.policy),
            CaseKind::Failing => write!(f, "policy {} has no failing case (a case expecting a finding)", self.policy),
        }
    }
}

impl BundleReport {
    /// True when every case passed and there is no problem.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.untested.is_empty() && self.cases.iter().all(|c| c.status == Status::Passed)
    }

    /// (passed, failed, errors) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.cases.iter().filter(|c| c.status == s).count();
        (n(Status::Passed), n(Status::Failed), n(Status::Error))
    }
}

/// Options of a test run.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Only cases whose `policy/name` matches.
    pub filter: Option<Regex>,
    /// Evaluate each case this many times (at least once) and report a case whose
    /// answers differ.
    pub repeat: usize,
    /// Record Rego line coverage here (policies then run on the interpreter).
    pub coverage: Option<crate::coverage::Coverage>,
    /// PolicyException files or directories applied to every case (checked against
    /// the bundle's policies, as `scan --exceptions` does).
    pub exceptions: Vec<String>,
    /// How strictly they are loaded.
    pub exception_options: crate::exception::LoadOptions,
}

/// Runs every case of the bundle. Fails only when the bundle does not compile.
pub fn run_bundle(bundle: &Bundle, options: &TestOptions) -> Result<BundleReport> {
    let engine = builder(bundle, options).build()?;
    let exceptions = if options.exceptions.is_empty() {
        None
    } else {
        let clock = Arc::new(crate::exception::SystemClock);
        let known = |id: &str| engine.names_policy(id);
        Some(Arc::new(Exceptions::load(&options.exceptions, &options.exception_options, clock, &known)?))
    };
    let waiving = |e: Engine| match &exceptions {
        Some(x) => e.with_exceptions(x.clone()),
        None => e,
    };
    let engine = waiving(engine);
    // Policies on regorus's VM are checked against the interpreter, and policies with
    // several implementations (Rego, WebAssembly, CEL) run each, on every case.
    let mut references = Vec::new();
    let ids = |keep: fn(&crate::engine::Policy) -> bool| -> Vec<String> {
        engine.policies().iter().filter(|p| keep(p)).map(|p| p.spec().id.clone()).collect()
    };
    let on_vm = ids(|p| p.rego_execution() == Some(RegoExecution::Vm));
    if !on_vm.is_empty() {
        let e = waiving(builder(bundle, options).rego_execution(RegoExecution::Interpreter).build()?);
        references.push(Reference {
            label: "the Rego VM and the interpreter",
            engine: e,
            execution: Some(RegoExecution::Interpreter),
            backend: None,
            policies: on_vm,
        });
    }
    let dual = ids(|p| p.has_both_backends());
    if !dual.is_empty() {
        let kinds: BTreeSet<BackendKind> = engine
            .policies()
            .iter()
            .filter(|p| p.has_both_backends())
            .flat_map(|p| crate::backend::implementations(p.spec()))
            .collect();
        for backend in kinds {
            let e = waiving(builder(bundle, options).backend(backend).build()?);
            references.push(Reference {
                label: "the implementations (Rego, WebAssembly, CEL)",
                engine: e,
                execution: None,
                backend: Some(backend),
                policies: dual.clone(),
            });
        }
    }
    let engines = Engines { main: &engine, references: &references };
    let mut report = BundleReport {
        bundle: bundle.name().to_string(),
        version: bundle.version().to_string(),
        cases: Vec::new(),
        problems: Vec::new(),
        untested: Vec::new(),
        expiring: exceptions.as_ref().map(|x| x.expiry_warnings()).unwrap_or_default(),
    };
    // (policy) -> (has passing case, has failing case)
    let mut coverage: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in bundle.test_files() {
        let parsed = bundle.text(file).and_then(|text| {
            serde_yaml_ng::from_str::<TestFile>(text).map_err(|e| Error::Document {
                file: file.to_string(),
                document: 1,
                line: e.location().map(|l| l.line()),
                column: e.location().map(|l| l.column()),
                message: format!("not a valid test file: {}", strip_location(&e.to_string())),
            })
        });
        let tf = match parsed {
            Ok(tf) => tf,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        for (index, case) in tf.cases.iter().enumerate() {
            let policy = case.policy.clone().or_else(|| tf.policy.clone());
            let key = format!("{}/{}", policy.as_deref().unwrap_or("*"), case.name);
            if options.filter.as_ref().is_some_and(|f| !f.is_match(&key)) {
                continue;
            }
            if let Some(p) = &policy {
                let entry = coverage.entry(p.clone()).or_default();
                entry.0 |= case.expect.expects_clean();
                entry.1 |= case.expect.expects_findings();
            }
            let start = Instant::now();
            let mut result = CaseResult::new(file, case.name.clone(), policy.clone());
            if let Err(e) = run_case(bundle, &engines, options, file, index, case, policy.as_deref(), &mut result) {
                result.status = Status::Error;
                result.failures.push(e.to_string());
            } else if result.reasons().next().is_some() {
                result.status = Status::Failed;
            }
            result.duration = start.elapsed();
            report.cases.push(result);
        }
    }
    if options.filter.is_none() {
        for p in bundle.policies() {
            let (clean, findings) = coverage.get(&p.id).copied().unwrap_or_default();
            if !findings {
                report.untested.push(Untested { policy: p.id.clone(), lacks: CaseKind::Failing });
            }
            if !clean {
                report.untested.push(Untested { policy: p.id.clone(), lacks: CaseKind::Passing });
            }
        }
    }
    Ok(report)
}

fn strip_location(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_string()
}

/// The engine a case runs on, and the engines its answer is compared with.
struct Engines<'a> {
    main: &'a Engine,
    references: &'a [Reference],
}

/// An engine running the same bundle differently (interpreter instead of VM, or one
/// backend of dual policies), whose answers must agree with the main engine's.
struct Reference {
    label: &'static str,
    engine: Engine,
    execution: Option<RegoExecution>,
    backend: Option<BackendKind>,
    /// The policies that run differently on this engine: only their answers are compared.
    policies: Vec<String>,
}

/// Evaluates one case and records its unmet expectations, disagreements,
/// nondeterminism and costs in `result`.
#[allow(clippy::too_many_arguments)]
fn run_case(
    bundle: &Bundle,
    engines: &Engines<'_>,
    options: &TestOptions,
    file: &str,
    index: usize,
    case: &Case,
    policy: Option<&str>,
    result: &mut CaseResult,
) -> Result<()> {
    let ctx = format!("{file}: case {:?}", case.name);
    if let Some(p) = policy
        && !bundle.policies().iter().any(|s| s.id == p)
    {
        result.failures.push(format!("policy {p} does not exist in bundle {}", bundle.name()));
        return Ok(());
    }
    let e = &case.expect;
    if e.allowed.is_none()
        && e.violations.is_none()
        && e.message.is_none()
        && e.warnings.is_none()
        && e.error.is_none()
        && e.waived.is_none()
    {
        return Err(Error::input(
            ctx,
            "`expect` sets nothing: give allowed, violations, message, warnings, error or waived",
        ));
    }
    // The findings (of `policy`, when set, and of the policies `keep` accepts), sorted.
    let findings = |d: &Decision, keep: &dyn Fn(&str) -> bool| {
        let mut m: Vec<String> = d
            .violations
            .iter()
            .chain(&d.warnings)
            .filter(|v| policy.is_none_or(|p| p == v.policy) && keep(&v.policy))
            .map(|v| format!("[{}] {}", v.policy, v.message))
            .collect();
        m.sort();
        m
    };
    let view = |d: &Decision| findings(d, &|_| true);
    let errors = |d: &Decision| d.errors.iter().map(|x| format!("[{}] {}", x.policy, x.message)).collect::<Vec<_>>();
    // Prepared once (engine with the case's parameters and inventory, input), evaluated N times.
    let (engine, input) = prepare_case(bundle, engines.main, options, file, index, case, policy, None)?;
    let decision = engine.evaluate(&input);
    let mut costs: BTreeMap<String, Cost> = decision
        .evaluated
        .iter()
        .map(|x| {
            let cost = Cost { policy: x.policy.clone(), duration_us: x.duration_us, memory_bytes: x.memory_bytes };
            (x.policy.clone(), cost)
        })
        .collect();
    let first = (view(&decision), decision.allowed, errors(&decision));
    for run in 2..=options.repeat.max(1) {
        let again = engine.evaluate(&input);
        for x in &again.evaluated {
            if let Some(c) = costs.get_mut(&x.policy) {
                c.duration_us = c.duration_us.min(x.duration_us);
                c.memory_bytes = c.memory_bytes.max(x.memory_bytes);
            }
        }
        let then = (view(&again), again.allowed, errors(&again));
        if then != first {
            result.nondeterminism.push(format!(
                "the same input gave a different answer on evaluation {run}: first {} {:?}{}, then {} {:?}{}",
                verdict(first.1),
                first.0,
                error_suffix(&first.2),
                verdict(then.1),
                then.0,
                error_suffix(&then.2),
            ));
            break;
        }
    }
    result.costs = costs.into_values().collect();
    for reference in engines.references {
        if policy.is_some_and(|p| !reference.policies.iter().any(|r| r == p)) {
            continue;
        }
        let (other, input) =
            prepare_case(bundle, &reference.engine, options, file, index, case, policy, Some(reference))?;
        let expected = other.evaluate(&input);
        let compared = |d: &Decision| findings(d, &|p| reference.policies.iter().any(|r| r == p));
        if compared(&decision) != compared(&expected) {
            let (ours, theirs) = match (reference.execution, reference.backend) {
                (Some(_), _) => ("the VM".to_string(), "the interpreter".to_string()),
                (_, Some(b)) => ("the bundle's choice".to_string(), format!("the {b} implementation")),
                _ => ("one".to_string(), "the other".to_string()),
            };
            result.disagreements.push(format!(
                "{} disagree: {ours} found {:?}, {theirs} {:?}",
                reference.label,
                compared(&decision),
                compared(&expected)
            ));
        }
    }
    result.failures.extend(check(&ctx, &decision, policy, e, bundle.name())?);
    Ok(())
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

fn error_suffix(errors: &[String]) -> String {
    if errors.is_empty() { String::new() } else { format!(" with errors {errors:?}") }
}

/// An engine builder for the bundle under test (recording coverage when asked).
fn builder(bundle: &Bundle, options: &TestOptions) -> crate::engine::EngineBuilder {
    let b = Engine::builder().bundle(bundle.clone());
    match &options.coverage {
        Some(c) => b.coverage(c.clone()),
        None => b,
    }
}

/// Builds the case's engine (its parameters, inventory and mode) and input.
#[allow(clippy::too_many_arguments)]
fn prepare_case(
    bundle: &Bundle,
    engine: &Engine,
    options: &TestOptions,
    file: &str,
    index: usize,
    case: &Case,
    policy: Option<&str>,
    reference: Option<&Reference>,
) -> Result<(Engine, Input)> {
    let ctx = format!("{file}: case {:?}", case.name);
    let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let object =
        one_object(bundle, dir, &ctx, "object", case.object.as_ref(), case.object_file.as_deref(), case.document)?
            .ok_or_else(|| Error::input(&ctx, "needs `object` or `object_file`"))?;
    let old =
        one_object(bundle, dir, &ctx, "old_object", case.old_object.as_ref(), case.old_object_file.as_deref(), None)?;
    let namespace =
        one_object(bundle, dir, &ctx, "namespace", case.namespace.as_ref(), case.namespace_file.as_deref(), None)?;

    let source = SourceLocation { file: file.to_string(), document: index + 1, line: 1 };
    let mut input = match &case.operation {
        None => Input::from_object_at(object.clone(), Some(source))?,
        Some(op) => admission_input(&ctx, op, &object, old.as_ref(), case.user_info.as_ref())?,
    };
    if let Some(ns) = &namespace {
        input = input.with_namespace_object(ns.clone());
    }

    let mode = if case.operation.is_some() { crate::engine::Mode::Admission } else { crate::engine::Mode::Scan };
    let mut engine = engine.with_mode(mode);
    if let Some(params) = &case.parameters {
        let p = policy.ok_or_else(|| Error::input(&ctx, "`parameters` needs the case's `policy`"))?;
        let mut builder = builder(bundle, options).parameters(p, params.clone());
        if let Some(execution) = reference.and_then(|r| r.execution) {
            builder = builder.rego_execution(execution);
        }
        if let Some(backend) = reference.and_then(|r| r.backend) {
            builder = builder.backend(backend);
        }
        let rebuilt = builder.mode(mode).build()?;
        engine = match engine.exceptions() {
            Some(x) => rebuilt.with_exceptions(Arc::new(x.clone())),
            None => rebuilt,
        };
    }
    if engine.policies().iter().any(|p| p.is_referential()) {
        let mut inv = Inventory::new();
        for v in &case.inventory {
            inv.add(v);
        }
        for f in &case.inventory_files {
            for d in objects_in(bundle, dir, &ctx, f)? {
                inv.add(&d);
            }
        }
        if let Some(ns) = &namespace {
            inv.add(ns);
        }
        if case.operation.is_none() {
            inv.add(&object);
        }
        engine = engine.with_inventory(Arc::new(inv))?;
    }
    Ok((engine, input))
}

fn check(ctx: &str, d: &Decision, policy: Option<&str>, e: &case::Expect, bundle: &str) -> Result<Vec<String>> {
    let mine = |p: &str, b: &str| policy.is_none_or(|want| want == p && b == bundle);
    let findings: Vec<_> = d.violations.iter().chain(&d.warnings).filter(|v| mine(&v.policy, &v.bundle)).collect();
    let errors: Vec<_> = d.errors.iter().filter(|x| mine(&x.policy, &x.bundle)).collect();
    let who = policy.map(|p| format!("policy {p}")).unwrap_or_else(|| "the bundle".into());
    let mut failures = Vec::new();
    let evaluated = policy.is_none_or(|p| d.evaluated.iter().any(|x| x.policy == p && x.bundle == bundle));
    match &e.error {
        Some(re) => {
            let re =
                Regex::new(re).map_err(|err| Error::input(ctx, format!("expect.error is not a valid regex: {err}")))?;
            if !errors.iter().any(|x| re.is_match(&x.message)) {
                failures.push(match errors.first() {
                    Some(x) => {
                        format!("expected {who} to fail with an error matching /{re}/, got error: {}", x.message)
                    }
                    None => format!("expected {who} to fail with an error matching /{re}/, it evaluated without error"),
                });
            }
        }
        None => failures.extend(errors.iter().map(|x| format!("{who} failed to evaluate: {}", x.message))),
    }
    let waived: Vec<String> = d
        .waived
        .iter()
        .filter(|w| mine(&w.violation.policy, &w.violation.bundle))
        .map(|w| format!("[{}] by {}", w.violation.policy, w.exception.name))
        .collect();
    let listing = || {
        if findings.is_empty() {
            if !waived.is_empty() {
                format!("no findings: {} waived by exceptions {waived:?}", waived.len())
            } else if evaluated {
                "no findings".to_string()
            } else {
                format!("no findings: {who} was not evaluated (its match criteria exclude the object)")
            }
        } else {
            findings.iter().map(|v| format!("[{}] {}", v.action, v.message)).collect::<Vec<_>>().join("; ")
        }
    };
    if let Some(want) = e.waived
        && waived.len() != want
    {
        failures.push(format!("expected {want} waived finding(s) of {who}, got {}: {waived:?}", waived.len()));
    }
    if let Some(want) = e.allowed {
        let allowed = match policy {
            None => d.allowed,
            Some(_) => {
                !findings.iter().any(|v| v.action == Action::Deny)
                    && !errors.iter().any(|x| x.failure_mode == FailureMode::Fail)
            }
        };
        if want != allowed {
            failures.push(if want {
                format!("expected {who} to allow, it denied: {}", listing())
            } else {
                format!("expected {who} to deny, it allowed ({})", listing())
            });
        }
    }
    if let Some(n) = e.violations
        && findings.len() != n
    {
        failures.push(format!("expected {n} finding(s) from {who}, got {}: {}", findings.len(), listing()));
    }
    if let Some(n) = e.warnings {
        let got = findings.iter().filter(|v| v.action == Action::Warn).count();
        if got != n {
            failures.push(format!("expected {n} warning(s) from {who}, got {got}: {}", listing()));
        }
    }
    if let Some(re) = &e.message {
        let re =
            Regex::new(re).map_err(|err| Error::input(ctx, format!("expect.message is not a valid regex: {err}")))?;
        if !findings.iter().any(|v| re.is_match(&v.message)) {
            failures.push(format!("expected a finding from {who} matching /{re}/, got {}", listing()));
        }
    }
    Ok(failures)
}
