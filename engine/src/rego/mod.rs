//! The Rego backend, and the only module that uses `regorus`.
//!
//! Two phases, as OPA embeds it. At load, [`RegoBackend::compile`] puts a bundle's
//! modules into one regorus engine and compiles the policies that run on regorus's
//! bytecode VM into one program per group of policies sharing parameters (see
//! `unit.rs`). Per object, [`Backend::evaluate`] converts the review to a regorus
//! value once, runs each group that has matching members once, and runs the rest on
//! the interpreter.
//!
//! The VM is opt-in per bundle or policy (`rego_execution = "vm"`): regorus 0.14.1's
//! VM is not equivalent to the interpreter in every case (it keeps an undefined
//! function result as an element of an array comprehension), so `palisade test`
//! checks VM policies against the interpreter on every case. Line coverage always
//! runs on the interpreter.
//!
//! Runtime errors and the time budget become [`Failure`](crate::backend::Failure)s,
//! never panics; every JSON object converts (see [`to_rego`]), so no policy ever sees
//! an empty input.

mod groups;
mod run;
mod unit;

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::Value as RValue;
use regorus::utils::limits::ExecutionTimerConfig;

use crate::backend::{Backend, Evaluation};
use crate::bundle::RegoExecution;
use crate::input::Input;
use crate::inventory::Inventory;
pub(crate) use unit::{Module, PolicySource};

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

/// Every Rego policy of an engine, compiled.
#[derive(Debug, Clone)]
pub(crate) struct RegoBackend {
    compiled: unit::Compiled,
    /// `data` (`{"inventory": ...}`) for referential policies.
    data: Option<RValue>,
}

impl RegoBackend {
    /// Parses and compiles every policy. The error is the index of the policy at
    /// fault and the parser's or compiler's message with `file:line:col`.
    pub(crate) fn compile(sources: &[PolicySource<'_>]) -> Result<RegoBackend, (usize, String)> {
        Ok(RegoBackend { compiled: unit::compile(sources)?, data: None })
    }

    /// Whether policy `p` (or a library it loads) reads `data.inventory`.
    pub(crate) fn reads_inventory(&self, p: usize) -> bool {
        self.compiled.slots[p].reads_inventory
    }

    /// How policy `p` runs.
    pub(crate) fn execution(&self, p: usize) -> RegoExecution {
        if self.compiled.slots[p].group.is_some() { RegoExecution::Vm } else { RegoExecution::Interpreter }
    }
}

impl Backend for RegoBackend {
    fn evaluate(&self, input: &Input, policies: &[usize]) -> Vec<Evaluation> {
        run::evaluate(&self.compiled, self.data.as_ref(), &to_rego(input.review()), policies)
    }

    fn with_inventory(&self, inventory: &Inventory) -> crate::Result<Option<Box<dyn Backend>>> {
        if !self.compiled.slots.iter().any(|s| s.reads_inventory) {
            return Ok(None);
        }
        let data = inventory.rego_data();
        let mut compiled = self.compiled.clone();
        for engine in compiled.slots.iter_mut().filter(|s| s.reads_inventory).filter_map(|s| s.engine.as_mut()) {
            engine.clear_data();
            engine.add_data(data.clone()).map_err(|e| crate::Error::input("inventory", tidy(&e)))?;
            engine
                .eval_bool_query("true".to_string(), false)
                .map_err(|e| crate::Error::input("inventory", tidy(&e)))?;
        }
        Ok(Some(Box::new(RegoBackend { compiled, data: Some(data) })))
    }
}

/// A JSON value as regorus's, built directly: the same value its serde
/// deserialisation gives (integers stay integers), without the visitor round trip.
/// It cannot fail, so an object is never evaluated as an empty input.
pub(crate) fn to_rego(v: &serde_json::Value) -> RValue {
    use serde_json::Value as J;
    match v {
        J::Null => RValue::Null,
        J::Bool(b) => RValue::from(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => RValue::from(u),
            (None, Some(i)) => RValue::from(i),
            (None, None) => RValue::from(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => RValue::from(s.as_str()),
        J::Array(a) => RValue::from(a.iter().map(to_rego).collect::<Vec<_>>()),
        J::Object(o) => RValue::from(
            o.iter().map(|(k, v)| (RValue::from(k.as_str()), to_rego(v))).collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}

fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig { limit, check_interval: NonZeroU32::MIN.saturating_add(31) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_conversion_equals_serde_deserialisation() {
        let v = serde_json::json!({
            "a": [1, -2, 18446744073709551615u64, -9223372036854775808i64, 1.5, -0.0, 1e300],
            "b": {"c": null, "d": true, "é": "ünï", "": [[], {}]},
            "e": "x"
        });
        let via_serde: RValue = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(to_rego(&v), via_serde);
        assert_eq!(to_rego(&v).to_json_str().unwrap(), via_serde.to_json_str().unwrap());
    }
}
