//! What an evaluation decides: [`Violation`]s with their enforcement [`Action`],
//! [`PolicyError`]s handled by each policy's [`FailureMode`], and the aggregate
//! [`Decision`] (allowed or not) for one object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::ObjectRef;

/// What a policy's findings do to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Reject the object (exit code 1 in `scan`, `allowed: false` at admission).
    #[default]
    Deny,
    /// Allow, but warn the user (AdmissionResponse `warnings`).
    Warn,
    /// Allow silently; record the finding for reports and audit.
    Audit,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Audit => "audit",
        })
    }
}

/// How serious a finding is; used by reports (SARIF level, PolicyReport severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// What happens when a policy cannot be evaluated (runtime error, timeout, trap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Deny the object with a message saying the policy failed (the default: fail closed).
    #[default]
    Fail,
    /// Allow the object; the error is still reported.
    Ignore,
}

/// One finding of one policy about one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Bundle name.
    pub bundle: String,
    /// Bundle version.
    pub bundle_version: String,
    /// Policy id, unique within the bundle.
    pub policy: String,
    /// Policy title.
    pub title: String,
    /// The message the rule produced.
    pub message: String,
    /// Structured details the rule attached (Gatekeeper `details`), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<Value>,
    /// Enforcement action of this finding.
    pub action: Action,
    /// Severity of the policy.
    pub severity: Severity,
    /// Requirement ids (PCI DSS numbers) the policy enforces.
    pub requirements: Vec<String>,
    /// Display name of the framework the requirement ids belong to (`PCI DSS`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub framework: Option<String>,
    /// The object the finding is about. For a workload evaluated through its pod
    /// template, this is the workload.
    pub object: ObjectRef,
    /// JSON path inside the object the finding points at (`spec.template` for
    /// workload expansion, or the path a plugin reported).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// An exception that would have waived this finding had it not expired.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expired_exception: Option<ExceptionRef>,
}

impl Violation {
    /// ` (exception NAME expired TIME)` when an exception would have waived this
    /// finding had it not expired (every output format says so); empty otherwise.
    pub fn expired_note(&self) -> String {
        self.expired_exception
            .as_ref()
            .map(|e| format!(" (exception {} expired {})", e.name, e.expires))
            .unwrap_or_default()
    }
}

/// The exception behind a waiver (or an expired one), as outputs name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExceptionRef {
    /// The PolicyException's name.
    pub name: String,
    /// When it expires (or expired), RFC 3339.
    pub expires: String,
    /// Who approved it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// Where the decision is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A finding an exception waived: reported, not enforced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Waived {
    /// The finding as the policy reported it.
    #[serde(flatten)]
    pub violation: Violation,
    /// The exception that waived it.
    pub exception: ExceptionRef,
}

/// Why a policy could not be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyErrorKind {
    /// The rule raised an error (Rego runtime error, plugin returned an error).
    Runtime,
    /// The rule ran past its time budget.
    Timeout,
    /// A WebAssembly plugin trapped.
    Trap,
    /// A WebAssembly plugin ran out of memory.
    OutOfMemory,
    /// The rule returned something that is not a valid result.
    MalformedResult,
    /// The plugin rejected its settings.
    InvalidSettings,
    /// A WebAssembly plugin wrote more output than allowed.
    OutputLimit,
    /// The policy's match criteria could not be evaluated (Gatekeeper's autoreject:
    /// a namespace selector whose Namespace is unknown).
    MatchError,
    /// The policy cannot run in Palisade (e.g. a CEL-only Gatekeeper template).
    Unsupported,
}

/// A policy that failed to evaluate on an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyError {
    /// Bundle name.
    pub bundle: String,
    /// Bundle version.
    pub bundle_version: String,
    /// Policy id.
    pub policy: String,
    /// What went wrong.
    pub kind: PolicyErrorKind,
    /// Human-readable explanation naming the policy and the cause.
    pub message: String,
    /// The policy's failure mode, which decided whether this error denies.
    pub failure_mode: FailureMode,
    /// Requirement ids of the policy.
    pub requirements: Vec<String>,
    /// Display name of the framework the requirement ids belong to (`PCI DSS`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub framework: Option<String>,
    /// The object being evaluated.
    pub object: ObjectRef,
}

/// A policy that matched but was not evaluated, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Bundle name.
    pub bundle: String,
    /// Policy id.
    pub policy: String,
    /// Why it was skipped.
    pub reason: String,
}

/// A policy that was evaluated on the object (with or without findings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evaluated {
    /// Bundle name.
    pub bundle: String,
    /// Policy id.
    pub policy: String,
    /// How long the evaluation took, in microseconds.
    #[serde(default)]
    pub duration_us: u64,
    /// For a WebAssembly policy: the plugin instance's linear memory after the call, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// The result of evaluating every matching policy on one object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// False when any `deny` finding exists or a policy with failure mode `fail` errored.
    pub allowed: bool,
    /// Findings with action `deny` or `audit`.
    pub violations: Vec<Violation>,
    /// Findings with action `warn`.
    pub warnings: Vec<Violation>,
    /// Policies that failed to evaluate.
    pub errors: Vec<PolicyError>,
    /// Policies evaluated (the object matched them).
    pub evaluated: Vec<Evaluated>,
    /// Policies that matched but were skipped (e.g. referential policies without inventory).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub skipped: Vec<Skipped>,
    /// Findings an active PolicyException waived (they do not deny).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub waived: Vec<Waived>,
    /// The bundles that decided: `name@version (sha256:…)` each.
    #[serde(default)]
    pub bundles: std::sync::Arc<[String]>,
}

impl Decision {
    /// Builds a decision from findings and errors, computing `allowed`.
    pub fn from_parts(
        findings: Vec<Violation>,
        errors: Vec<PolicyError>,
        evaluated: Vec<Evaluated>,
        skipped: Vec<Skipped>,
    ) -> Decision {
        let (warnings, violations): (Vec<_>, Vec<_>) = findings.into_iter().partition(|v| v.action == Action::Warn);
        let mut d = Decision {
            allowed: true,
            violations,
            warnings,
            errors,
            evaluated,
            skipped,
            waived: Vec::new(),
            bundles: std::sync::Arc::new([]),
        };
        d.recompute_allowed();
        d
    }

    /// Sets `allowed` from the findings and errors left.
    pub fn recompute_allowed(&mut self) {
        self.allowed = self.denials().next().is_none() && self.failing_errors().next().is_none();
    }

    /// Findings that deny the object.
    pub fn denials(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.action == Action::Deny)
    }

    /// Errors that deny the object (failure mode `fail`).
    pub fn failing_errors(&self) -> impl Iterator<Item = &PolicyError> {
        self.errors.iter().filter(|e| e.failure_mode == FailureMode::Fail)
    }

    /// Merges another decision about the same object into this one.
    pub fn merge(&mut self, other: Decision) {
        self.violations.extend(other.violations);
        self.warnings.extend(other.warnings);
        self.errors.extend(other.errors);
        self.evaluated.extend(other.evaluated);
        self.skipped.extend(other.skipped);
        self.waived.extend(other.waived);
        self.allowed = self.allowed && other.allowed;
    }

    /// One line per denying policy: `[policy-id] (req 1.2.3, 4.5) message`, as used in
    /// AdmissionResponse status messages.
    pub fn denial_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .denials()
            .map(|v| format!("[{}] {}{}{}", v.policy, reqs(&v.framework, &v.requirements), v.message, v.expired_note()))
            .collect();
        lines.extend(self.failing_errors().map(|e| {
            format!("[{}] {}policy failed to evaluate: {}", e.policy, reqs(&e.framework, &e.requirements), e.message)
        }));
        lines
    }
}

/// `(PCI DSS 1.2.3, 1.2.4) `: the requirement ids, named by their framework when the
/// bundle declares one.
pub(crate) fn reqs(framework: &Option<String>, r: &[String]) -> String {
    match (framework, r.is_empty()) {
        (_, true) => String::new(),
        (Some(f), false) => format!("({f} {}) ", r.join(", ")),
        (None, false) => format!("({}) ", r.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(action: Action) -> Violation {
        Violation {
            bundle: "b".into(),
            bundle_version: "1.0.0".into(),
            policy: "p".into(),
            title: "t".into(),
            message: "m".into(),
            details: None,
            action,
            severity: Severity::High,
            requirements: vec!["1.2.3".into()],
            framework: Some("PCI DSS".into()),
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: None,
                name: "x".into(),
                source: None,
            },
            path: None,
            expired_exception: None,
        }
    }

    #[test]
    fn aggregation() {
        let d = Decision::from_parts(vec![v(Action::Warn), v(Action::Audit)], vec![], vec![], vec![]);
        assert!(d.allowed);
        assert_eq!((d.violations.len(), d.warnings.len()), (1, 1));
        let d = Decision::from_parts(vec![v(Action::Deny)], vec![], vec![], vec![]);
        assert!(!d.allowed);
        assert_eq!(d.denial_lines(), vec!["[p] (PCI DSS 1.2.3) m"]);
        // Another framework is named as its bundle declares it; none, no name.
        let mut other = v(Action::Deny);
        other.framework = Some("cis-k8s-1.9".into());
        assert_eq!(
            Decision::from_parts(vec![other.clone()], vec![], vec![], vec![]).denial_lines(),
            vec!["[p] (cis-k8s-1.9 1.2.3) m"]
        );
        other.framework = None;
        assert_eq!(Decision::from_parts(vec![other], vec![], vec![], vec![]).denial_lines(), vec!["[p] (1.2.3) m"]);
        let mut e = PolicyError {
            bundle: "b".into(),
            bundle_version: "1".into(),
            policy: "p".into(),
            kind: PolicyErrorKind::Timeout,
            message: "slow".into(),
            failure_mode: FailureMode::Ignore,
            requirements: vec![],
            framework: None,
            object: v(Action::Deny).object,
        };
        assert!(Decision::from_parts(vec![], vec![e.clone()], vec![], vec![]).allowed);
        e.failure_mode = FailureMode::Fail;
        assert!(!Decision::from_parts(vec![], vec![e], vec![], vec![]).allowed);
    }
}
