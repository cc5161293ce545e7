//! [`Engine`]: a compiled evaluation plan, ready to evaluate objects.
//!
//! Building an engine is the expensive phase (parse, compile, validate) and yields
//! one immutable plan (`plan.rs`); the engine is `Clone + Send + Sync` and evaluation
//! takes `&self`, so one engine serves every thread. Per object, the kind index picks the
//! policies that can match; each backend is called once with all of its matching
//! policies. A workload is also evaluated, through the Pod its template would
//! create, by every Pod policy that does not name the workload kind itself.

mod builder;
mod plan;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Evaluation, Failure};
pub use crate::bundle::{BackendKind, RegoExecution};
use crate::decision::{Action, Decision, Evaluated, PolicyError, PolicyErrorKind, Skipped, Violation};
use crate::error::Result;
use crate::exception::Exceptions;
use crate::input::Input;
use crate::inventory::Inventory;
use crate::matching::KindSelector;
use crate::matching::Mismatch;
pub use builder::EngineBuilder;
pub(crate) use policy::PolicyBackend;
pub use policy::{BundleInfo, Policy};

/// Default time budget of one Rego policy evaluation.
pub const DEFAULT_REGO_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the engine runs, which decides how referential policies are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Objects read from files; the inventory is the set of objects scanned.
    #[default]
    Scan,
    /// Admission requests; referential policies are skipped unless an inventory is set.
    Admission,
}

#[derive(Debug)]
struct Inner {
    plan: Arc<plan::Plan>,
    mode: Mode,
    inventory: Option<Arc<Inventory>>,
    exceptions: Option<Arc<Exceptions>>,
}

impl Inner {
    /// The same parts (all shared), for copies that change one.
    fn shallow(&self) -> Inner {
        Inner {
            plan: self.plan.clone(),
            mode: self.mode,
            inventory: self.inventory.clone(),
            exceptions: self.exceptions.clone(),
        }
    }
}

/// Compiled bundles, ready to evaluate objects. Cheap to clone; `Send + Sync`.
///
/// ```
/// use palisade::{Bundle, Engine, Input};
/// use serde_json::json;
///
/// let bundle = Bundle::from_dir("tests/bundles/basic")?;
/// let engine = Engine::builder().bundle(bundle).build()?;
/// let pod = json!({
///     "apiVersion": "v1", "kind": "Pod",
///     "metadata": {"name": "web", "namespace": "shop"},
///     "spec": {"containers": [{"name": "app", "image": "nginx:latest"}]}
/// });
/// let decision = engine.evaluate(&Input::from_object(pod)?);
/// assert!(!decision.allowed);
/// assert!(decision.violations.iter().any(|v| v.policy == "no-latest-tag"));
/// # Ok::<(), palisade::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What the first pass decides for one policy, in manifest order.
enum Step {
    /// Evaluate on the object (0) or on the Pod of its template (1).
    Run { policy: usize, subject: usize },
    /// Gatekeeper's autoreject: a namespace selector and no Namespace.
    MatchError(usize),
    /// Referential at admission without an inventory.
    Skip(usize),
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The loaded bundles.
    pub fn bundles(&self) -> impl Iterator<Item = &BundleInfo> {
        self.inner.plan.bundles.iter().map(|b| &**b)
    }

    /// How decisions name the loaded bundles: `name@version (digest)`, with `from
    /// oci://REF@sha256:…` for a bundle pulled from a registry.
    pub fn bundle_refs(&self) -> &[String] {
        &self.inner.plan.bundle_refs
    }

    /// Every compiled policy, in bundle and manifest order.
    pub fn policies(&self) -> &[Policy] {
        &self.inner.plan.policies
    }

    /// The kinds referential policies read: Namespaces plus their `inventory` keys; `None`
    /// when a referential policy declares no `inventory` (it may read any kind). Only
    /// these kinds go into `data.inventory` (scan, audit and `serve --cluster` alike).
    pub fn inventory_kinds(&self) -> Option<Vec<KindSelector>> {
        let mut kinds = vec![KindSelector::Short("core/Namespace".into())];
        for p in self.policies().iter().filter(|p| p.is_referential()) {
            if p.spec().inventory.is_empty() {
                return None;
            }
            kinds.extend(p.spec().inventory.iter().filter(|k| !kinds.contains(k)).cloned().collect::<Vec<_>>());
        }
        Some(kinds)
    }

    /// The mode the engine was built for.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The Namespaces of the inventory referential policies see, if one is set (the
    /// policies' own copy of the other objects is not kept twice).
    pub fn inventory(&self) -> Option<&Inventory> {
        self.inner.inventory.as_deref()
    }

    /// A copy of the engine for another [`Mode`] (the same compiled plan).
    pub fn with_mode(&self, mode: Mode) -> Engine {
        let inner = Inner { mode, ..self.inner.shallow() };
        Engine { inner: Arc::new(inner) }
    }

    /// A copy of the engine whose referential policies see `inventory` as
    /// `data.inventory`. Only backends with referential policies are re-prepared.
    pub fn with_inventory(&self, inventory: Arc<Inventory>) -> Result<Engine> {
        let mut plan = (*self.inner.plan).clone();
        for b in plan.backends.iter_mut() {
            if let Some(new) = b.with_inventory(&inventory)? {
                *b = Arc::from(new);
            }
        }
        // The backends hold their own copy; the engine keeps what namespace selectors read.
        let namespaces = Arc::new(inventory.namespaces_only());
        let inner = Inner { plan: Arc::new(plan), inventory: Some(namespaces), ..self.inner.shallow() };
        Ok(Engine { inner: Arc::new(inner) })
    }

    /// A copy of the engine that waives what `exceptions` cover (see [`crate::exception`]).
    pub fn with_exceptions(&self, exceptions: Arc<Exceptions>) -> Engine {
        Engine { inner: Arc::new(Inner { exceptions: Some(exceptions), ..self.inner.shallow() }) }
    }

    /// A copy that also waives what the PolicyException documents `docs` cover
    /// (in-cluster objects, say), held to the checks of the engine's own exceptions
    /// (default ones when it has none). Each document that fails them is left out and
    /// returned as an error: the caller decides whether that stops it.
    pub fn with_exception_documents(&self, docs: Vec<crate::documents::Document>) -> (Engine, Vec<crate::Error>) {
        if docs.is_empty() {
            return (self.clone(), Vec::new());
        }
        let base = self.exceptions().cloned().unwrap_or_else(|| {
            Exceptions::empty(crate::exception::LoadOptions::default(), Arc::new(crate::exception::SystemClock))
        });
        let (set, errors) = base.extended(docs, &|id| self.names_policy(id));
        (self.with_exceptions(Arc::new(set)), errors)
    }

    /// Whether `id` names one of the engine's policies (`id` or `bundle/id`), as
    /// exceptions name them.
    pub fn names_policy(&self, id: &str) -> bool {
        self.policies().iter().any(|p| p.spec().id == id || format!("{}/{}", p.bundle().name, p.spec().id) == id)
    }

    /// The exceptions applied, if any.
    pub fn exceptions(&self) -> Option<&Exceptions> {
        self.inner.exceptions.as_deref()
    }

    /// Evaluates every matching policy on one object. Never fails: a policy that
    /// cannot be evaluated is recorded in [`Decision::errors`] and its failure mode
    /// decides whether that denies.
    pub fn evaluate(&self, input: &Input) -> Decision {
        let (steps, pod) = self.select(input);
        let subjects = [Some(input), pod.as_ref()];
        let plan = &self.inner.plan;
        let mut results: Vec<Option<Evaluation>> = vec![None; plan.policies.len()];
        for (s, subject) in subjects.iter().enumerate() {
            let Some(subject) = subject else { continue };
            for (b, backend) in plan.backends.iter().enumerate() {
                let mine: Vec<(usize, usize)> = steps
                    .iter()
                    .filter_map(|step| match step {
                        Step::Run { policy, subject } if *subject == s => plan::slot_of(&plan.policies[*policy])
                            .filter(|(backend, _)| *backend == b)
                            .map(|(_, slot)| (*policy, slot)),
                        _ => None,
                    })
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let slots: Vec<usize> = mine.iter().map(|(_, slot)| *slot).collect();
                for ((policy, _), evaluation) in mine.iter().zip(backend.evaluate(subject, &slots)) {
                    results[*policy] = Some(evaluation);
                }
            }
        }
        let mut decision = self.assemble(&steps, input, pod.as_ref(), results);
        if let Some(ex) = &self.inner.exceptions {
            ex.apply(&mut decision, input.object());
        }
        decision
    }

    /// First pass: which policies run on which subject, which are match errors or
    /// skipped, in manifest order; and the Pod of a workload when one is needed.
    fn select(&self, input: &Input) -> (Vec<Step>, Option<Input>) {
        let plan = &self.inner.plan;
        let gvk = input.gvk();
        let workload = crate::object::template_path(&gvk.group, &gvk.kind).is_some();
        let mut candidates = plan.index.candidates(&gvk.kind);
        if workload {
            candidates.extend(plan.index.candidates("Pod"));
            candidates.sort_unstable();
            candidates.dedup();
        }
        let target = input.match_target();
        let mut pod: Option<Option<Input>> = None;
        let mut steps = Vec::new();
        for i in candidates {
            let policy = &plan.policies[i];
            let spec = policy.spec();
            let matched = spec.match_spec.check(&target);
            let subject = match matched {
                Ok(()) => 0,
                Err(Mismatch::MissingNamespace) => {
                    steps.push(Step::MatchError(i));
                    continue;
                }
                Err(_)
                    if workload
                        && spec.expand_workloads
                        && spec.match_spec.matches_pods()
                        && !spec.match_spec.names_kind(&gvk.group, &gvk.kind) =>
                {
                    match pod.get_or_insert_with(|| input.pod_from_workload()) {
                        Some(p) if spec.match_spec.check(&p.match_target()).is_ok() => 1,
                        _ => continue,
                    }
                }
                Err(_) => continue,
            };
            if let Some((b, slot)) = plan::slot_of(policy)
                && !plan.backends[b].applies(slot, input)
            {
                continue;
            }
            if policy.referential && self.inner.mode == Mode::Admission && self.inner.inventory.is_none() {
                steps.push(Step::Skip(i));
                continue;
            }
            steps.push(Step::Run { policy: i, subject });
        }
        (steps, pod.flatten())
    }

    /// Last pass: findings, errors and timings in manifest order.
    fn assemble(
        &self,
        steps: &[Step],
        input: &Input,
        pod: Option<&Input>,
        mut results: Vec<Option<Evaluation>>,
    ) -> Decision {
        let plan = &self.inner.plan;
        let subjects = [Some(input), pod];
        let (mut findings, mut errors, mut evaluated, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for step in steps {
            match *step {
                Step::Skip(i) => skipped.push(Skipped {
                    bundle: plan.policies[i].bundle().name.clone(),
                    policy: plan.policies[i].spec().id.clone(),
                    reason: "referential policy: no inventory is configured at admission".into(),
                }),
                Step::MatchError(i) => {
                    let policy = &plan.policies[i];
                    evaluated.push(evaluated_entry(policy, Duration::ZERO, None));
                    let message = "unable to match constraints: namespace selector for namespace-scoped object but missing Namespace";
                    let failure = Failure::new(PolicyErrorKind::MatchError, message);
                    errors.push(policy_error(policy, input, failure));
                }
                Step::Run { policy: i, subject } => {
                    let policy = &plan.policies[i];
                    let Some(subject) = subjects[subject] else { continue };
                    let evaluation = match (&policy.backend, results[i].take()) {
                        (PolicyBackend::Unsupported(reason), _) => unsupported(reason),
                        (_, Some(e)) => e,
                        (_, None) => unsupported("internal error: the policy was not evaluated"),
                    };
                    evaluated.push(evaluated_entry(policy, evaluation.duration, evaluation.memory_bytes));
                    match evaluation.outcome {
                        Ok(found) => {
                            let action = self.action(policy);
                            findings.extend(found.into_iter().map(|f| {
                                let action = if f.warn { Action::Warn } else { action };
                                violation(policy, subject, f.message, f.details, action, f.path)
                            }));
                        }
                        Err(mut failure) => {
                            failure.message = match &policy.backend {
                                PolicyBackend::Unsupported(_) => failure.message,
                                PolicyBackend::Rego { .. } => {
                                    format!("policy {} {}", policy.spec().id, failure.message)
                                }
                                #[cfg(feature = "wasm")]
                                PolicyBackend::Wasm(_) => format!("plugin {} {}", policy.spec().id, failure.message),
                                PolicyBackend::Cel { .. } => failure.message,
                            };
                            errors.push(policy_error(policy, subject, failure));
                        }
                    }
                }
            }
        }
        let mut decision = Decision::from_parts(findings, errors, evaluated, skipped);
        decision.bundles = plan.bundle_refs.clone();
        decision
    }

    /// The action of a policy's findings here (its `admission_action` at admission).
    fn action(&self, policy: &Policy) -> Action {
        match (self.inner.mode, policy.spec().admission_action) {
            (Mode::Admission, Some(a)) => a,
            _ => policy.spec().action,
        }
    }
}

fn unsupported(reason: &str) -> Evaluation {
    Evaluation {
        outcome: Err(Failure::new(PolicyErrorKind::Unsupported, reason)),
        duration: Duration::ZERO,
        memory_bytes: None,
    }
}

fn evaluated_entry(policy: &Policy, duration: Duration, memory_bytes: Option<u64>) -> Evaluated {
    Evaluated {
        bundle: policy.bundle().name.clone(),
        policy: policy.spec().id.clone(),
        duration_us: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
        memory_bytes,
    }
}

fn violation(
    policy: &Policy,
    subject: &Input,
    message: String,
    details: Option<serde_json::Value>,
    action: Action,
    path: Option<String>,
) -> Violation {
    // A path a plugin reports is relative to the object it saw; for a Pod synthesised
    // from a workload, anchor it in the workload's template.
    let path = match (subject.template_path(), path) {
        (Some(t), Some(p)) => Some(format!("{t}.{p}")),
        (Some(t), None) => Some(t.to_string()),
        (None, p) => p,
    };
    Violation {
        bundle: policy.bundle().name.clone(),
        bundle_version: policy.bundle().version.clone(),
        policy: policy.spec().id.clone(),
        title: policy.spec().title.clone(),
        message,
        details,
        action,
        severity: policy.spec().severity,
        requirements: policy.spec().requirements.clone(),
        framework: policy.bundle().framework.clone(),
        object: subject.object_ref().clone(),
        path,
        expired_exception: None,
    }
}

fn policy_error(policy: &Policy, subject: &Input, failure: Failure) -> PolicyError {
    PolicyError {
        bundle: policy.bundle().name.clone(),
        bundle_version: policy.bundle().version.clone(),
        policy: policy.spec().id.clone(),
        kind: failure.kind,
        message: failure.message,
        failure_mode: policy.spec().failure_mode,
        requirements: policy.spec().requirements.clone(),
        framework: policy.bundle().framework.clone(),
        object: subject.object_ref().clone(),
    }
}
