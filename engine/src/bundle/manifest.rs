//! The `bundle.toml` schema. Unknown keys are errors, so a typo never silently
//! disables a setting.

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::{Action, FailureMode, Severity};
use crate::matching::MatchSpec;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[bundle]`: identity and engine requirement.
    pub bundle: BundleMeta,
    /// `[dependencies]`: other bundles (by name) and the versions this one accepts.
    /// Their Rego library modules are loaded with this bundle's policies.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dependencies: std::collections::BTreeMap<String, VersionReq>,
    /// `[[policy]]` entries.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicySpec>,
}

/// `[bundle]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleMeta {
    /// Bundle name (`pci-dss`): lowercase letters, digits and `-`.
    pub name: String,
    /// Bundle version (semver).
    pub version: Version,
    /// Semver requirement on the engine version (`^0.1`).
    pub engine: VersionReq,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// The compliance framework the requirement ids refer to (e.g. `pci-dss-4.0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// Rego library modules shared by the bundle's policies: files or directories
    /// (every `.rego` file below them), relative to the bundle root.
    #[serde(default)]
    pub libs: Vec<String>,
    /// Default Rego syntax version for the bundle's policies (`v1` unless set).
    #[serde(default)]
    pub rego_version: RegoVersion,
    /// Which implementation runs for policies that name both `rego` and `wasm`
    /// (`rego` unless set; overridable at load).
    #[serde(default)]
    pub backend: BackendKind,
    /// How the bundle's Rego policies run: `interpreter` (the default) or `vm`
    /// (regorus's bytecode VM, several times faster; `palisade test` then checks every
    /// case against the interpreter too).
    #[serde(default)]
    pub rego_execution: RegoExecution,
}

/// A policy implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The Rego module.
    #[default]
    Rego,
    /// The WebAssembly plugin.
    Wasm,
    /// The CEL policy (a ValidatingAdmissionPolicy document).
    Cel,
}

impl BackendKind {
    /// The language's name in prose (`Rego`, `WebAssembly`, `CEL`).
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Rego => "Rego",
            BackendKind::Wasm => "WebAssembly",
            BackendKind::Cel => "CEL",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Rego => "rego",
            BackendKind::Wasm => "wasm",
            BackendKind::Cel => "cel",
        })
    }
}

/// How a Rego policy is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegoExecution {
    /// regorus's tree-walking interpreter: complete (including `with` and line coverage).
    #[default]
    Interpreter,
    /// regorus's bytecode VM, several times faster; a policy it cannot compile runs on
    /// the interpreter.
    Vm,
}

/// Rego syntax version of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegoVersion {
    /// Rego v1 (OPA 1.0 syntax: `if`, `contains` required).
    #[default]
    V1,
    /// Rego v0 (legacy syntax, as in most Gatekeeper templates).
    V0,
}

/// One `[[policy]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Stable id, unique within the bundle.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Longer explanation (remediation advice).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Requirement ids of the bundle's framework (PCI DSS numbers).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Severity of findings.
    #[serde(default)]
    pub severity: Severity,
    /// Enforcement action of findings (`deny`, `warn`, `audit`).
    #[serde(default)]
    pub action: Action,
    /// Action at admission, when it differs (e.g. `audit` for a referential check whose
    /// objects are often created in any order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_action: Option<Action>,
    /// Rego module implementing the policy, relative to the bundle root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<String>,
    /// Rego library modules used only by this policy (files or directories), in
    /// addition to the bundle's `libs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
    /// Set when the policy is known not to run in Palisade (a CEL-only Gatekeeper
    /// template): every object it matches gets an error with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Rego syntax version of this policy's module (overrides the bundle default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego_version: Option<RegoVersion>,
    /// How this policy's Rego runs (overrides the bundle default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego_execution: Option<RegoExecution>,
    /// For a policy with both implementations, which one runs (overrides the bundle's `backend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    /// WebAssembly component implementing the policy, relative to the bundle root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<String>,
    /// CEL implementation: a YAML file in the bundle holding one
    /// ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) whose validations,
    /// variables and match conditions run with `[policy.parameters]` as `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
    /// sha256 of the `.wasm` file (hex); required with `wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Which objects the policy applies to.
    #[serde(default, rename = "match")]
    pub match_spec: MatchSpec,
    /// Parameters passed as `input.parameters`.
    #[serde(default = "empty_object")]
    pub parameters: Value,
    /// What happens when the policy fails to evaluate (`fail` or `ignore`).
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Memory cap of a WebAssembly plugin in MiB (default 64, at most the host maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Capabilities granted to a WebAssembly plugin beyond the deny-all default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// The evaluation time the author commits to, in milliseconds: `palisade
    /// conformance` fails when a test case takes longer (the hard limit is `timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// JSON Schema (file in the bundle) the policy's `parameters` (and overrides) must
    /// satisfy, checked at load. Without it a plugin still validates its settings at
    /// load (`validate-settings`), and `palisade conformance` checks them against the
    /// plugin's declared settings schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Evaluation time budget in milliseconds (default: 1000 ms for Rego, 100 ms for WebAssembly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Whether the policy reads other objects (`data.inventory`). Detected from the
    /// Rego source when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referential: Option<bool>,
    /// Kinds a referential policy reads from `data.inventory` (same syntax as `match.kinds`):
    /// what `palisade audit` lists and `serve --cluster` watches for it, besides Namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<crate::matching::KindSelector>,
    /// Evaluate Pod policies on the Pods that workloads' templates would create (default true).
    #[serde(default = "yes")]
    pub expand_workloads: bool,
    /// A parameter that switches the policy on: while it is empty (absent, null, false,
    /// `""`, `[]` or `{}`, overrides applied) the policy matches nothing, so a check
    /// that needs configuration (image signatures need keys) costs nothing until given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_by: Option<String>,
}

impl PolicySpec {
    /// Whether the policy runs: it has no `enabled_by`, or that parameter is set.
    pub fn is_enabled(&self) -> bool {
        let Some(key) = &self.enabled_by else { return true };
        match self.parameters.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        }
    }
}

/// A capability a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// Read the host's wall and monotonic clocks (otherwise both read zero).
    Clock,
    /// Ask registries whether images are signed (`host.image-signature`); the host
    /// makes the requests, the plugin still has no network.
    Registry,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn yes() -> bool {
    true
}
