//! CEL, the third policy language: Kubernetes ValidatingAdmissionPolicies run offline
//! with the API server's semantics, whether they come from VAP manifests
//! (`-b vap:PATH`, see [`source`]) or are bundle policies written as a VAP document
//! (`cel = "rules/x.yaml"`, with `[policy.parameters]` as `params`). [`export`] turns a
//! bundle's CEL policies back into VAPs and bindings for the API server.
//!
//! Expressions are parsed once at load, and every function they call must exist in
//! the environment (the `cel` crate, `kube-cel`, and `ext.rs`): a missing one is a
//! load error naming the policy, the expression and the function.

mod authz;
mod env;
pub mod export;
mod ext;
mod names;
mod policy;
mod projection;
pub mod source;
pub(crate) mod vap;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::backend::{Backend, Evaluation, share};
use crate::documents::{Documents, Format};
use crate::input::Input;
pub(crate) use policy::CelPolicy;
use policy::{Activation, CelSource};

/// Every CEL policy of an engine.
#[derive(Debug, Default, Clone)]
pub(crate) struct CelBackend {
    policies: Arc<Vec<CelPolicy>>,
    /// What all of them read of the request, converted once per object.
    reads: projection::Reads,
    /// The inventory's RBAC, for `authorizer` (absent: not available offline).
    rbac: Option<Arc<authz::Rbac>>,
}

impl CelBackend {
    /// Compiles the policy in `text` (a ValidatingAdmissionPolicy, optionally with one
    /// binding and its parameter objects), with `parameters` as `params` when it
    /// declares no `paramKind`. Returns its slot.
    pub(crate) fn load(&mut self, file: &str, text: &str, parameters: &Value) -> Result<usize, String> {
        let mut docs = Documents::default();
        docs.parse_text(file, text, Format::Detect);
        if let Some(e) = docs.errors.first() {
            return Err(e.to_string());
        }
        let values: Vec<Value> = docs.documents.into_iter().map(|d| d.value).collect();
        let mut policies = values.iter().filter(|v| vap::is_policy(v));
        let (Some(policy), None) = (policies.next(), policies.next()) else {
            return Err(format!("{file}: expected exactly one ValidatingAdmissionPolicy"));
        };
        let policy = vap::parse_policy(policy).map_err(|e| format!("{file}: {e}"))?;
        let mut bindings = values.iter().filter(|v| vap::is_binding(v));
        let binding = match (bindings.next(), bindings.next()) {
            (Some(b), None) => Some(vap::parse_binding(b).map_err(|e| format!("{file}: {e}"))?),
            (None, _) => None,
            _ => return Err(format!("{file}: at most one ValidatingAdmissionPolicyBinding per policy file")),
        };
        let param_objects: Arc<[Value]> =
            values.iter().filter(|v| !vap::is_policy(v) && !vap::is_binding(v)).cloned().collect();
        let src = CelSource { policy: &policy, binding: binding.as_ref(), param_objects, parameters: Some(parameters) };
        let name = policy.metadata.name.as_deref().unwrap_or_default();
        let compiled =
            CelPolicy::compile(&src).map_err(|e| format!("{file}: ValidatingAdmissionPolicy {name}: {e}"))?;
        self.reads.merge(compiled.reads());
        let policies = Arc::make_mut(&mut self.policies);
        policies.push(compiled);
        Ok(policies.len() - 1)
    }

    /// Whether policy `slot` uses `authorizer` (and so reads RBAC objects).
    pub(crate) fn uses_authorizer(&self, slot: usize) -> bool {
        self.policies.get(slot).is_some_and(CelPolicy::uses_authorizer)
    }
}

impl Backend for CelBackend {
    fn evaluate(&self, input: &Input, policies: &[usize]) -> Vec<Evaluation> {
        let start = Instant::now();
        let vars = Activation::of(input, &self.reads, self.rbac.as_ref());
        let conversion = share(start.elapsed(), policies.len());
        policies
            .iter()
            .map(|&slot| {
                let start = Instant::now();
                let outcome = match self.policies.get(slot) {
                    // The `cel` crate panics on a few inputs it does not implement; a
                    // panic is this policy's error, never the process's end.
                    Some(p) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.evaluate(input, &vars)))
                        .unwrap_or_else(|_| {
                            Err(crate::backend::Failure::new(
                                crate::decision::PolicyErrorKind::Runtime,
                                format!("ValidatingAdmissionPolicy '{}': the CEL evaluator failed", p.name),
                            ))
                        }),
                    None => Err(crate::backend::Failure::new(
                        crate::decision::PolicyErrorKind::Runtime,
                        format!("internal error: no CEL policy in slot {slot}"),
                    )),
                };
                Evaluation { outcome, duration: conversion + start.elapsed(), memory_bytes: None }
            })
            .collect()
    }

    fn applies(&self, slot: usize, input: &Input) -> bool {
        self.policies.get(slot).is_some_and(|p| p.applies(input))
    }

    fn with_inventory(&self, inventory: &crate::Inventory) -> crate::Result<Option<Box<dyn Backend>>> {
        if !self.policies.iter().any(CelPolicy::uses_authorizer) {
            return Ok(None);
        }
        let rbac = authz::Rbac::from_inventory(inventory).map(Arc::new);
        Ok(Some(Box::new(CelBackend { rbac, ..self.clone() })))
    }
}

#[cfg(test)]
mod tests;
