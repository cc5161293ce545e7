//! Running compiled Rego on one object: a VM run per group of matched policies
//! (falling back to one run per member when the group's run fails, so the failure
//! is charged to the right policy), and the interpreter for the rest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use regorus::Value as RValue;

use super::unit::{Compiled, Group, Slot};
use super::{RuleKind, tidy, timer};
use crate::backend::{Evaluation, Failure, Finding, Outcome, share};
use crate::decision::PolicyErrorKind;

/// Evaluates the policies `wanted` on `review`, in order.
pub(crate) fn evaluate(c: &Compiled, data: Option<&RValue>, review: &RValue, wanted: &[usize]) -> Vec<Evaluation> {
    let mut results: BTreeMap<usize, Evaluation> = BTreeMap::new();
    let mut by_group: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &p in wanted {
        match c.slots[p].group {
            Some(g) => by_group.entry(g).or_default().push(p),
            None => {
                let start = Instant::now();
                let outcome = interpret(&c.slots[p], review);
                results.insert(p, Evaluation { outcome, duration: start.elapsed(), memory_bytes: None });
            }
        }
    }
    for (g, members) in by_group {
        run_group(c, &c.groups[g], data, review, &members, &mut results);
    }
    wanted
        .iter()
        .map(|p| {
            results.remove(p).unwrap_or_else(|| Evaluation {
                outcome: Err(Failure::new(PolicyErrorKind::Runtime, "internal error: the policy was not evaluated")),
                duration: Duration::ZERO,
                memory_bytes: None,
            })
        })
        .collect()
}

fn input(review: &RValue, parameters: &RValue, run: Option<&[usize]>) -> RValue {
    let mut input = BTreeMap::new();
    input.insert(RValue::from("review"), review.clone());
    input.insert(RValue::from("parameters"), parameters.clone());
    if let Some(members) = run {
        let run: BTreeMap<RValue, RValue> =
            members.iter().map(|m| (RValue::from(m.to_string()), RValue::from(true))).collect();
        input.insert(RValue::from("__palisade_run"), RValue::from(run));
    }
    RValue::from(input)
}

fn vm(group: &Group, data: Option<&RValue>, input: RValue, budget: Duration) -> Result<regorus::rvm::RegoVM, Failure> {
    let mut vm = regorus::rvm::RegoVM::new();
    vm.load_program(group.program.clone());
    vm.set_max_instructions(usize::MAX);
    vm.set_execution_timer_config(Some(timer(budget)));
    if let Some(data) = data {
        vm.set_data(data.clone()).map_err(|e| failure(&e.into(), budget))?;
    }
    vm.set_input(input);
    Ok(vm)
}

/// One VM run for every matched member; on failure, each member alone.
fn run_group(
    c: &Compiled,
    group: &Group,
    data: Option<&RValue>,
    review: &RValue,
    members: &[usize],
    out: &mut BTreeMap<usize, Evaluation>,
) {
    let start = Instant::now();
    let budget: Duration = members.iter().map(|m| c.slots[*m].timeout).sum();
    let value = vm(group, data, input(review, &group.parameters, Some(members)), budget)
        .and_then(|mut vm| vm.execute_entry_point_by_name(&group.entry).map_err(|e| failure(&e.into(), budget)));
    let Ok(value) = value else {
        for &m in members {
            let start = Instant::now();
            let outcome = run_alone(group, &c.slots[m], data, review);
            out.insert(m, Evaluation { outcome, duration: start.elapsed(), memory_bytes: None });
        }
        return;
    };
    let each = share(start.elapsed(), members.len());
    // `out` is a set of [`"<member>.<rule>"`, value] pairs.
    let mut parts: BTreeMap<String, RValue> = BTreeMap::new();
    if let RValue::Set(pairs) = &value {
        for pair in pairs.iter() {
            if let RValue::Array(kv) = pair
                && let [RValue::String(k), v] = kv.as_slice()
            {
                parts.insert(k.to_string(), v.clone());
            }
        }
    }
    for &m in members {
        let mut findings = Vec::new();
        let mut outcome = Ok(());
        for (rule, kind) in &c.slots[m].rules {
            let name = rule.rsplit('.').next().unwrap_or_default();
            let v = parts.get(&format!("{m}.{name}")).cloned().unwrap_or(RValue::Undefined);
            outcome = outcome.and_then(|()| collect(&v, *kind, rule, &mut findings));
        }
        out.insert(m, Evaluation { outcome: outcome.map(|()| findings), duration: each, memory_bytes: None });
    }
}

/// A member's rules run one by one on the VM, with its own budget.
fn run_alone(group: &Group, slot: &Slot, data: Option<&RValue>, review: &RValue) -> Outcome {
    let mut findings = Vec::new();
    for (rule, kind) in &slot.rules {
        let mut vm = vm(group, data, input(review, &slot.parameters, None), slot.timeout)?;
        let value = vm.execute_entry_point_by_name(rule).map_err(|e| failure(&e.into(), slot.timeout))?;
        collect(&value, *kind, rule, &mut findings)?;
    }
    Ok(findings)
}

/// A policy on regorus's interpreter (line coverage, `rego_execution = "interpreter"`,
/// or rules the VM cannot compile).
fn interpret(slot: &Slot, review: &RValue) -> Outcome {
    let Some(engine) = &slot.engine else {
        return Err(Failure::new(PolicyErrorKind::Runtime, "internal error: no interpreter for the policy"));
    };
    // A clone is a few pointer copies; it holds the inventory (see `with_inventory`).
    let mut engine = engine.clone();
    engine.set_execution_timer_config(timer(slot.timeout));
    engine.set_input(input(review, &slot.parameters, None));
    if slot.coverage.is_some() {
        engine.set_enable_coverage(true);
    }
    let mut findings = Vec::new();
    let mut result = Ok(());
    for (rule, kind) in &slot.rules {
        result = engine
            .eval_rule(rule.clone())
            .map_err(|e| failure(&e, slot.timeout))
            .and_then(|value| collect(&value, *kind, rule, &mut findings));
        if result.is_err() {
            break;
        }
    }
    // Only when collecting: building the report walks every module.
    if let Some(cov) = &slot.coverage
        && let Ok(report) = engine.get_coverage_report()
    {
        for f in &report.files {
            cov.record(&f.path, &f.covered, &f.not_covered);
        }
    }
    result.map(|()| findings)
}

fn failure(e: &anyhow::Error, budget: Duration) -> Failure {
    let timed_out = e.chain().any(|c| {
        matches!(c.downcast_ref::<regorus::LimitError>(), Some(regorus::LimitError::TimeLimitExceeded { .. }))
    }) || format!("{e:#}").contains("exceeded time limit");
    if timed_out {
        Failure::new(PolicyErrorKind::Timeout, format!("exceeded its {} ms time budget", budget.as_millis()))
    } else {
        Failure::new(PolicyErrorKind::Runtime, format!("Rego evaluation error: {}", tidy(e)))
    }
}

/// Turns a rule's value into findings: a set (or array) of strings or of objects
/// with a string `msg` (and optional `details`); undefined, null and false are none.
fn collect(value: &RValue, kind: RuleKind, rule: &str, out: &mut Vec<Finding>) -> Result<(), Failure> {
    let items: Vec<&RValue> = match value {
        RValue::Undefined | RValue::Null | RValue::Bool(false) => return Ok(()),
        RValue::Set(s) => s.iter().collect(),
        RValue::Array(a) => a.iter().collect(),
        other => {
            return Err(Failure::new(
                PolicyErrorKind::MalformedResult,
                format!("rule {rule} must be a set of findings, got {}", short(other)),
            ));
        }
    };
    for item in items {
        let (message, details) = match item {
            RValue::String(s) => (s.to_string(), None),
            RValue::Object(o) => {
                let msg = o.get(&RValue::from("msg")).or_else(|| o.get(&RValue::from("message")));
                let Some(RValue::String(message)) = msg else {
                    return Err(Failure::new(
                        PolicyErrorKind::MalformedResult,
                        format!("rule {rule} produced an object without a string `msg`: {}", short(item)),
                    ));
                };
                (message.to_string(), o.get(&RValue::from("details")).and_then(|d| serde_json::to_value(d).ok()))
            }
            other => (short(other), None),
        };
        let mut finding = Finding::new(message, details);
        finding.warn = kind == RuleKind::Warn;
        out.push(finding);
    }
    Ok(())
}

fn short(v: &RValue) -> String {
    let s = v.to_json_str().unwrap_or_else(|_| format!("{v:?}"));
    if s.len() > 200 { format!("{}…", &s[..s.floor_char_boundary(200)]) } else { s }
}
