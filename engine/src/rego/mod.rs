//! The Rego backend, and the only module that uses `regorus`.
//!
//! Two phases, as OPA embeds it: [`RegoPolicy::prepare`] parses and compiles a
//! policy's module (plus the bundle's library modules) once at load. Each
//! evaluation clones the prepared interpreter (a few pointer copies) and evaluates
//! the policy's `violation`, `deny` and `warn` rules against an input whose
//! `review` part was converted to a regorus value once per object ([`RegoReview`]).
//!
//! A bundle may opt into regorus's bytecode VM (`rego_execution = "vm"`): the rules
//! are also compiled to RVM programs and each evaluation runs a fresh VM over them,
//! 4–8× faster on the pci-dss policies. The VM is not yet equivalent to the
//! interpreter in every case (regorus 0.14.1 keeps an undefined function result as
//! an element of an array comprehension), so it is opt-in and `palisade test`
//! checks VM policies against the interpreter on every case.
//!
//! Runtime errors and the time budget become [`Failure`]s, never panics.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use regorus::Value as RValue;
use regorus::utils::limits::ExecutionTimerConfig;

use crate::bundle::{RegoExecution, RegoVersion};
use crate::decision::PolicyErrorKind;

/// A policy's module, prepared for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct RegoPolicy {
    engine: regorus::Engine,
    /// One bytecode program per reporting rule, when the RVM compiles them all.
    programs: Option<Vec<Arc<regorus::rvm::program::Program>>>,
    /// `data` (the inventory) for the VM.
    data: Option<RValue>,
    /// Rule paths to evaluate, with how each reports.
    rules: Vec<(String, RuleKind)>,
    parameters: RValue,
    timeout: Duration,
    /// Whether the module or its libraries read `data.inventory`.
    pub(crate) reads_inventory: bool,
    /// Where to record line coverage (the policy then runs on the interpreter).
    coverage: Option<crate::coverage::Coverage>,
}

/// The reporting styles a policy can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// `violation contains {"msg": m, "details": d}` (Gatekeeper).
    Violation,
    /// `deny contains m` (conftest): findings take the policy's action.
    Deny,
    /// `warn contains m` (conftest): findings are always warnings.
    Warn,
}

/// One finding produced by a rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub kind: RuleKind,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub kind: PolicyErrorKind,
    pub message: String,
}

/// The `review` document converted to a regorus value, once per object.
#[derive(Debug, Clone)]
pub(crate) struct RegoReview(RValue);

impl RegoReview {
    pub(crate) fn new(review: &serde_json::Value) -> RegoReview {
        // Deserialising from the borrowed value avoids cloning the whole document first.
        RegoReview(<RValue as serde::Deserialize>::deserialize(review).unwrap_or(RValue::Undefined))
    }
}

/// The `data` document for referential policies, converted once per inventory.
#[derive(Debug, Clone)]
pub(crate) struct RegoData(RValue);

impl RegoData {
    pub(crate) fn inventory(inventory: &crate::inventory::Inventory) -> RegoData {
        let mut data = serde_json::Map::new();
        data.insert("inventory".into(), inventory.to_json());
        RegoData(RValue::from(serde_json::Value::Object(data)))
    }
}

/// What [`RegoPolicy::prepare`] needs to know about the policy.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    /// Path of the module inside the bundle (used in error messages as `file:line:col`).
    pub path: &'a str,
    pub text: &'a str,
    pub libs: &'a [(String, String)],
    /// Syntax version of the library modules (the bundle's default).
    pub lib_version: RegoVersion,
    /// The policy's own library modules, in the policy's syntax version.
    pub policy_libs: &'a [(String, String)],
    pub version: RegoVersion,
    pub parameters: &'a serde_json::Value,
    pub timeout: Duration,
    pub execution: RegoExecution,
    pub coverage: Option<&'a crate::coverage::Coverage>,
}

impl RegoPolicy {
    /// Parses and compiles the module and libraries. The error is the parser's or
    /// compiler's message with `file:line:col`.
    pub(crate) fn prepare(src: &Source<'_>) -> Result<RegoPolicy, String> {
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(timer(src.timeout));
        engine.set_rego_v0(src.lib_version == RegoVersion::V0);
        for (path, text) in src.libs {
            engine.add_policy(path.clone(), text.clone()).map_err(|e| tidy(&e))?;
        }
        engine.set_rego_v0(src.version == RegoVersion::V0);
        for (path, text) in src.policy_libs {
            engine.add_policy(path.clone(), text.clone()).map_err(|e| tidy(&e))?;
        }
        let package = engine.add_policy(src.path.to_string(), src.text.to_string()).map_err(|e| tidy(&e))?;
        let mut rules = Vec::new();
        for (name, kind) in [("violation", RuleKind::Violation), ("deny", RuleKind::Deny), ("warn", RuleKind::Warn)] {
            if engine.has_declared_rule_rooted_at(src.path, name).map_err(|e| tidy(&e))? {
                rules.push((format!("{package}.{name}"), kind));
            }
        }
        if rules.is_empty() {
            return Err(format!(
                "{}: package {} defines none of the rules `violation`, `deny` or `warn`",
                src.path,
                package.trim_start_matches("data.")
            ));
        }
        // Analyse, schedule and resolve imports now rather than on the first request.
        engine.eval_bool_query("true".to_string(), false).map_err(|e| tidy(&e))?;
        let reads_inventory = src.text.contains("data.inventory")
            || src.libs.iter().chain(src.policy_libs).any(|(_, t)| t.contains("data.inventory"));
        let programs = match (src.execution, src.coverage) {
            (RegoExecution::Vm, None) => compile_programs(&engine, &rules),
            _ => None,
        };
        if let Some(c) = src.coverage {
            for (path, _) in src.libs.iter().chain(src.policy_libs) {
                c.register(path);
            }
            c.register(src.path);
        }
        Ok(RegoPolicy {
            engine,
            programs,
            data: None,
            rules,
            parameters: RValue::from(src.parameters.clone()),
            timeout: src.timeout,
            reads_inventory,
            coverage: src.coverage.cloned(),
        })
    }

    /// A copy of this policy that sees `data` (e.g. `{"inventory": ...}`).
    pub(crate) fn with_data(&self, data: &RegoData) -> Result<RegoPolicy, String> {
        let mut p = self.clone();
        p.engine.clear_data();
        p.engine.add_data(data.0.clone()).map_err(|e| tidy(&e))?;
        p.engine.eval_bool_query("true".to_string(), false).map_err(|e| tidy(&e))?;
        p.data = Some(data.0.clone());
        Ok(p)
    }

    /// `vm` or `interpreter`: how this policy executes.
    pub(crate) fn execution(&self) -> RegoExecution {
        if self.programs.is_some() { RegoExecution::Vm } else { RegoExecution::Interpreter }
    }

    /// Evaluates every reporting rule of the policy on one object.
    pub(crate) fn evaluate(&self, review: &RegoReview) -> Result<Vec<Finding>, Failure> {
        let mut input = std::collections::BTreeMap::new();
        input.insert(RValue::from("review"), review.0.clone());
        input.insert(RValue::from("parameters"), self.parameters.clone());
        let input = RValue::from(input);
        let mut findings = Vec::new();
        if let Some(programs) = &self.programs {
            for (program, (rule, kind)) in programs.iter().zip(&self.rules) {
                let mut vm = regorus::rvm::RegoVM::new();
                vm.load_program(program.clone());
                vm.set_max_instructions(usize::MAX);
                vm.set_execution_timer_config(Some(timer(self.timeout)));
                if let Some(data) = &self.data {
                    vm.set_data(data.clone()).map_err(|e| self.failure(&e.into()))?;
                }
                vm.set_input(input.clone());
                let value = vm.execute_entry_point_by_name(rule).map_err(|e| self.failure(&e.into()))?;
                collect(&value, *kind, rule, &mut findings)?;
            }
            return Ok(findings);
        }
        let mut engine = self.engine.clone();
        engine.set_input(input);
        if self.coverage.is_some() {
            engine.set_enable_coverage(true);
        }
        let mut result = Ok(());
        for (rule, kind) in &self.rules {
            result = engine
                .eval_rule(rule.clone())
                .map_err(|e| self.failure(&e))
                .and_then(|value| collect(&value, *kind, rule, &mut findings));
            if result.is_err() {
                break;
            }
        }
        // Only when collecting: building the report walks every module.
        if let Some(c) = &self.coverage
            && let Ok(report) = engine.get_coverage_report()
        {
            for f in &report.files {
                c.record(&f.path, &f.covered, &f.not_covered);
            }
        }
        result.map(|()| findings)
    }

    fn failure(&self, e: &anyhow::Error) -> Failure {
        let timed_out = e.chain().any(|c| {
            matches!(c.downcast_ref::<regorus::LimitError>(), Some(regorus::LimitError::TimeLimitExceeded { .. }))
        }) || format!("{e:#}").contains("exceeded time limit");
        if timed_out {
            Failure {
                kind: PolicyErrorKind::Timeout,
                message: format!("exceeded its {} ms time budget", self.timeout.as_millis()),
            }
        } else {
            Failure { kind: PolicyErrorKind::Runtime, message: format!("Rego evaluation error: {}", tidy(e)) }
        }
    }
}

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig { limit, check_interval: NonZeroU32::MIN.saturating_add(31) }
}

/// Compiles each reporting rule to an RVM program; `None` when any rule uses a
/// construct the VM does not support (the interpreter then runs the policy).
fn compile_programs(
    engine: &regorus::Engine,
    rules: &[(String, RuleKind)],
) -> Option<Vec<Arc<regorus::rvm::program::Program>>> {
    let mut programs = Vec::new();
    for (rule, _) in rules {
        let mut e = engine.clone();
        let compiled = e.compile_with_entrypoint(&rule.as_str().into()).ok()?;
        let program =
            regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[rule.as_str()]).ok()?;
        programs.push(program);
    }
    Some(programs)
}

/// Turns regorus's multi-line diagnostics (`--> file:line:col`, a code excerpt with
/// a caret, `error: message`) into one line: `file:line:col: message: `code``.
pub(crate) fn tidy(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let mut location = None;
    let mut message = None;
    let mut code = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(l) = t.strip_prefix("--> ") {
            location = Some(l.trim().to_string());
        } else if let Some(m) = t.strip_prefix("error: ") {
            message = Some(m.trim().to_string());
        } else if let Some((num, src)) = t.split_once(" | ")
            && num.trim().parse::<u32>().is_ok()
            && code.is_none()
        {
            code = Some(src.trim().to_string());
        }
    }
    match (location, message) {
        (Some(l), Some(m)) => match code {
            Some(c) if !c.is_empty() => format!("{l}: {m}: `{c}`"),
            _ => format!("{l}: {m}"),
        },
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn collect(value: &RValue, kind: RuleKind, rule: &str, out: &mut Vec<Finding>) -> Result<(), Failure> {
    let items: Vec<&RValue> = match value {
        RValue::Undefined | RValue::Null => return Ok(()),
        RValue::Set(s) => s.iter().collect(),
        RValue::Array(a) => a.iter().collect(),
        RValue::Bool(false) => return Ok(()),
        other => {
            return Err(Failure {
                kind: PolicyErrorKind::MalformedResult,
                message: format!("rule {rule} must be a set of findings, got {}", short(other)),
            });
        }
    };
    for item in items {
        let (message, details) = match item {
            RValue::String(s) => (s.to_string(), None),
            RValue::Object(o) => {
                let msg = o.get(&RValue::from("msg")).or_else(|| o.get(&RValue::from("message")));
                let message = match msg {
                    Some(RValue::String(s)) => s.to_string(),
                    _ => {
                        return Err(Failure {
                            kind: PolicyErrorKind::MalformedResult,
                            message: format!("rule {rule} produced an object without a string `msg`: {}", short(item)),
                        });
                    }
                };
                let details = o.get(&RValue::from("details")).and_then(|d| serde_json::to_value(d).ok());
                (message, details)
            }
            other => (short(other), None),
        };
        out.push(Finding { kind, message, details });
    }
    Ok(())
}

fn short(v: &RValue) -> String {
    let s = v.to_json_str().unwrap_or_else(|_| format!("{v:?}"));
    if s.len() > 200 { format!("{}…", &s[..s.floor_char_boundary(200)]) } else { s }
}
