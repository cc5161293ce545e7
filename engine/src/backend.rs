//! The contract between the engine and the policy languages: one [`Backend`] per
//! language (Rego, WebAssembly plugins, CEL), one [`resolve`] that decides
//! which backend runs a policy, and one result type ([`Outcome`]) for all of them.
//!
//! The engine calls each backend **once per object** with every policy of that
//! backend that matched the object, so that a backend can share work between them:
//! the Rego backend converts the object once and evaluates policies that share
//! parameters in one VM run (their common library rules computed once), the plugin
//! host calls each component once with all of its policies.

use std::time::Duration;

use serde_json::Value;

use crate::bundle::{BackendKind, Bundle, PolicySpec};
use crate::decision::PolicyErrorKind;
use crate::input::Input;
use crate::inventory::Inventory;

/// One finding of a policy about the object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub message: String,
    pub details: Option<Value>,
    /// Where in the object (dotted JSON path), when the backend knows.
    pub path: Option<String>,
    /// Reported through a conftest-style `warn` rule: always a warning.
    pub warn: bool,
}

impl Finding {
    pub(crate) fn new(message: String, details: Option<Value>) -> Finding {
        Finding { message, details, path: None, warn: false }
    }
}

/// Why a policy could not be evaluated; its failure mode decides what that means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub kind: PolicyErrorKind,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(kind: PolicyErrorKind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }
}

/// What one policy's evaluation on one object gave.
pub(crate) type Outcome = Result<Vec<Finding>, Failure>;

/// One policy's outcome with what it cost. Policies a backend evaluates together
/// share the time of that work evenly.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    pub outcome: Outcome,
    pub duration: Duration,
    /// For a plugin: the linear memory of the instance after the call, in bytes.
    pub memory_bytes: Option<u64>,
}

/// A policy language.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Evaluates `policies` (indices into the policies this backend compiled) on one
    /// object; one [`Evaluation`] per policy, in the same order. Never fails as a
    /// whole: a policy that cannot be evaluated gets a [`Failure`].
    fn evaluate(&self, input: &Input, policies: &[usize]) -> Vec<Evaluation>;

    /// Whether policy `slot` applies to the object beyond its `match` (a
    /// ValidatingAdmissionPolicy's own resource rules and selectors); decided before
    /// evaluation, so a policy that does not apply is skipped, not passed.
    fn applies(&self, _slot: usize, _input: &Input) -> bool {
        true
    }

    /// A copy that sees `inventory` as `data.inventory`, for backends whose policies
    /// can read it; `None` when nothing changes.
    fn with_inventory(&self, _inventory: &Inventory) -> crate::Result<Option<Box<dyn Backend>>> {
        Ok(None)
    }
}

/// Which implementation runs a policy: the only place that decides. A policy with
/// several (Rego module, plugin, CEL) runs the one the engine was told to prefer,
/// else the one its manifest names, else the bundle's default, else the first it has.
pub(crate) fn resolve(bundle: &Bundle, spec: &PolicySpec, prefer: Option<BackendKind>) -> BackendKind {
    let has = |k: &BackendKind| match k {
        BackendKind::Rego => spec.rego.is_some(),
        BackendKind::Wasm => spec.wasm.is_some(),
        BackendKind::Cel => spec.cel.is_some(),
    };
    [prefer, spec.backend, Some(bundle.manifest().bundle.backend)]
        .into_iter()
        .flatten()
        .chain([BackendKind::Rego, BackendKind::Wasm, BackendKind::Cel])
        .find(has)
        .unwrap_or(BackendKind::Wasm)
}

/// The implementations a policy has, in the order Rego, WebAssembly, CEL.
pub(crate) fn implementations(spec: &PolicySpec) -> Vec<BackendKind> {
    [
        (spec.rego.is_some(), BackendKind::Rego),
        (spec.wasm.is_some(), BackendKind::Wasm),
        (spec.cel.is_some(), BackendKind::Cel),
    ]
    .into_iter()
    .filter_map(|(has, k)| has.then_some(k))
    .collect()
}

/// Splits `total` evenly over `n` policies evaluated together.
pub(crate) fn share(total: Duration, n: usize) -> Duration {
    total / u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}
