//! [`Engine`]: bundles compiled into backends, ready to evaluate objects.
//!
//! Building an engine is the expensive phase (parse, compile, validate); the
//! result is `Clone + Send + Sync` and evaluation takes `&self`, so one engine
//! serves every thread. Policies whose match criteria exclude an object cost
//! nothing; a workload is also evaluated, through the Pod its template would
//! create, by every Pod policy that does not name the workload kind itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use crate::bundle::{BackendKind, RegoExecution};
use crate::bundle::{Bundle, PolicySpec};
use crate::decision::{Action, Decision, Evaluated, PolicyError, PolicyErrorKind, Skipped, Violation};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::inventory::Inventory;
use crate::rego::{self, RegoPolicy, RegoReview, RuleKind};
#[cfg(feature = "wasm")]
use crate::wasm::{self, WasmOptions, WasmPolicy, WasmRuntime};

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

/// Identity of a loaded bundle, carried by decisions and reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Content digest (`sha256:...`).
    pub digest: String,
    /// Where it was loaded from.
    pub origin: String,
}

/// A compiled policy and the bundle it belongs to.
#[derive(Debug, Clone)]
pub struct Policy {
    bundle: Arc<BundleInfo>,
    spec: Arc<PolicySpec>,
    backend: Backend,
    referential: bool,
}

#[derive(Debug, Clone)]
enum Backend {
    /// Cannot run here; every matching object gets an error with this reason.
    Unsupported(String),
    Rego(Box<RegoPolicy>),
    #[cfg(feature = "wasm")]
    Wasm(Box<WasmPolicy>),
}

impl Policy {
    /// The bundle the policy comes from.
    pub fn bundle(&self) -> &BundleInfo {
        &self.bundle
    }

    /// The policy's manifest entry (id, title, requirements, match, parameters...).
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// `rego` or `wasm`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Unsupported(_) => "unsupported",
            Backend::Rego(_) => "rego",
            #[cfg(feature = "wasm")]
            Backend::Wasm(_) => "wasm",
        }
    }

    /// For a WebAssembly policy: what the plugin says about itself.
    #[cfg(feature = "wasm")]
    pub fn plugin_info(&self) -> Option<&wasm::PluginInfo> {
        match &self.backend {
            Backend::Wasm(w) => Some(&w.info),
            _ => None,
        }
    }

    /// For a WebAssembly policy: its sha256 and whether it was loaded from the
    /// precompiled cache (true) or compiled (false).
    #[cfg(feature = "wasm")]
    pub fn plugin_load(&self) -> Option<(&str, bool)> {
        match &self.backend {
            Backend::Wasm(w) => Some((&w.sha256, w.origin == wasm::Origin::Cached)),
            _ => None,
        }
    }

    /// For a Rego policy: whether it runs on regorus's VM or its interpreter.
    pub fn rego_execution(&self) -> Option<RegoExecution> {
        match &self.backend {
            Backend::Rego(r) => Some(r.execution()),
            _ => None,
        }
    }

    /// Whether the policy has both a Rego and a WebAssembly implementation.
    pub fn has_both_backends(&self) -> bool {
        self.spec.rego.is_some() && self.spec.wasm.is_some()
    }

    /// Whether the policy reads other objects through `data.inventory`.
    pub fn is_referential(&self) -> bool {
        self.referential
    }
}

/// Builds an [`Engine`] from bundles and options.
#[derive(Debug, Default)]
pub struct EngineBuilder {
    bundles: Vec<Bundle>,
    rego_timeout: Option<Duration>,
    rego_execution: Option<RegoExecution>,
    backend: Option<BackendKind>,
    mode: Mode,
    overrides: BTreeMap<String, serde_json::Map<String, Value>>,
    coverage: Option<crate::coverage::Coverage>,
    #[cfg(feature = "wasm")]
    wasm_options: WasmOptions,
}

impl EngineBuilder {
    /// Adds a bundle.
    pub fn bundle(mut self, bundle: Bundle) -> Self {
        self.bundles.push(bundle);
        self
    }

    /// Default time budget per Rego policy evaluation (a policy's `timeout_ms` wins).
    pub fn rego_timeout(mut self, timeout: Duration) -> Self {
        self.rego_timeout = Some(timeout);
        self
    }

    /// Settings of the WebAssembly plugin host (cache directory, memory and time limits).
    #[cfg(feature = "wasm")]
    pub fn wasm_options(mut self, options: WasmOptions) -> Self {
        self.wasm_options = options;
        self
    }

    /// Runs every Rego policy with `execution`, whatever the manifests say (the test
    /// runner compares the VM with the interpreter this way).
    pub fn rego_execution(mut self, execution: RegoExecution) -> Self {
        self.rego_execution = Some(execution);
        self
    }

    /// Runs the `backend` implementation of every policy that has both a Rego and a
    /// WebAssembly one, whatever the manifests choose.
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Records Rego line coverage into `coverage` (Rego policies then run on the
    /// interpreter, which is what tracks lines).
    pub fn coverage(mut self, coverage: crate::coverage::Coverage) -> Self {
        self.coverage = Some(coverage);
        self
    }

    /// Scan or admission mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Overrides parameters of a policy (`policy id` or `bundle/policy id`): top-level
    /// keys of `parameters` replace the manifest's. The key `*` applies to every
    /// policy, but only to the parameters each policy already declares (so a shared
    /// `exempt_namespaces` can be set once).
    pub fn parameters(mut self, policy: impl Into<String>, parameters: serde_json::Map<String, Value>) -> Self {
        self.overrides.entry(policy.into()).or_default().extend(parameters);
        self
    }

    /// Applies a parameters document: `{policy id (or bundle/policy, or *): {key: value}}`.
    pub fn parameters_document(mut self, doc: &Value) -> Result<Self> {
        let map = doc
            .as_object()
            .ok_or_else(|| Error::input("parameters", "expected a mapping of policy id to a mapping of parameters"))?;
        for (policy, params) in map {
            let params = params.as_object().ok_or_else(|| {
                Error::input(format!("parameters.{policy}"), "expected a mapping of parameter names to values")
            })?;
            self = self.parameters(policy.clone(), params.clone());
        }
        Ok(self)
    }

    /// Compiles every policy of every bundle. Fails on the first policy that does not
    /// compile, naming the bundle, policy and `file:line:col`.
    pub fn build(self) -> Result<Engine> {
        let mut ctx = CompileContext {
            rego_timeout: self.rego_timeout.unwrap_or(DEFAULT_REGO_TIMEOUT),
            rego_execution: self.rego_execution,
            backend: self.backend,
            coverage: self.coverage.clone(),
            #[cfg(feature = "wasm")]
            wasm_options: self.wasm_options.clone(),
            #[cfg(feature = "wasm")]
            runtime: None,
        };
        let mut policies = Vec::new();
        let mut bundles = Vec::new();
        for bundle in &self.bundles {
            if bundles.iter().any(|b: &Arc<BundleInfo>| b.name == bundle.name()) {
                return Err(Error::Manifest {
                    path: bundle.origin().join("bundle.toml"),
                    message: format!("bundle {} is loaded twice: load one version of each bundle", bundle.name()),
                });
            }
            let info = Arc::new(BundleInfo {
                name: bundle.name().to_string(),
                version: bundle.version().to_string(),
                digest: bundle.digest().to_string(),
                origin: bundle.origin().display().to_string(),
            });
            bundles.push(info.clone());
            let mut libs: Vec<(String, String)> = bundle.dependency_libs().to_vec();
            libs.extend(
                bundle.rego_libs()?.into_iter().map(|(p, t)| (format!("{}/{p}", bundle.origin().display()), t)),
            );
            for loaded in bundle.policies() {
                let mut spec = loaded.clone();
                if let (Some(over), Some(params)) = (self.overrides.get("*"), spec.parameters.as_object_mut()) {
                    for (k, v) in over {
                        if let Some(slot) = params.get_mut(k) {
                            *slot = v.clone();
                        }
                    }
                }
                for key in [spec.id.clone(), format!("{}/{}", bundle.name(), spec.id)] {
                    if let (Some(over), Some(params)) = (self.overrides.get(&key), spec.parameters.as_object_mut()) {
                        params.extend(over.clone());
                    }
                }
                // The loader checked the bundle's own parameters; recheck only overridden ones.
                if spec.parameters != loaded.parameters {
                    check_parameters(bundle, &spec)?;
                }
                let (backend, referential) = compile(&mut ctx, bundle, &spec, &libs)?;
                let referential = spec.referential.unwrap_or(referential);
                policies.push(Policy { bundle: info.clone(), spec: Arc::new(spec), backend, referential });
            }
        }
        let bundle_refs = bundles.iter().map(|b| format!("{}@{} ({})", b.name, b.version, b.digest)).collect();
        Ok(Engine { inner: Arc::new(Inner { bundles, bundle_refs, policies, mode: self.mode, inventory: None }) })
    }
}

/// Checks the policy's parameters, overrides applied, against its `schema`.
fn check_parameters(bundle: &Bundle, spec: &PolicySpec) -> Result<()> {
    let Some(file) = &spec.schema else { return Ok(()) };
    let err = |key: &str, message: String| Error::Policy {
        path: bundle.origin().join("bundle.toml"),
        policy: spec.id.clone(),
        key: key.into(),
        message,
    };
    let schema = crate::bundle::schema::ParameterSchema::parse(bundle.text(file)?)
        .map_err(|e| err("schema", format!("{file} {e}")))?;
    match schema.violations(&spec.parameters).first() {
        Some(first) => Err(err("parameters", format!("(with overrides) do not match {file}: {first}"))),
        None => Ok(()),
    }
}

/// State shared while compiling the policies of one engine.
struct CompileContext {
    rego_timeout: Duration,
    rego_execution: Option<RegoExecution>,
    backend: Option<BackendKind>,
    coverage: Option<crate::coverage::Coverage>,
    #[cfg(feature = "wasm")]
    wasm_options: WasmOptions,
    /// Created on the first WebAssembly policy: it reserves the instance pool.
    #[cfg(feature = "wasm")]
    runtime: Option<Arc<WasmRuntime>>,
}

fn compile(
    ctx: &mut CompileContext,
    bundle: &Bundle,
    spec: &PolicySpec,
    libs: &[(String, String)],
) -> Result<(Backend, bool)> {
    if let Some(reason) = &spec.unsupported {
        return Ok((Backend::Unsupported(reason.clone()), false));
    }
    let chosen = match (&spec.rego, &spec.wasm) {
        (Some(_), Some(_)) => ctx.backend.or(spec.backend).unwrap_or(bundle.manifest().bundle.backend),
        (Some(_), None) => BackendKind::Rego,
        _ => BackendKind::Wasm,
    };
    if let (BackendKind::Rego, Some(path)) = (chosen, &spec.rego) {
        let display = format!("{}/{path}", bundle.origin().display());
        let policy_libs: Vec<(String, String)> = bundle
            .libs_at(&spec.libs)?
            .into_iter()
            .map(|(p, t)| (format!("{}/{p}", bundle.origin().display()), t))
            .collect();
        let src = rego::Source {
            path: &display,
            text: bundle.text(path)?,
            libs,
            policy_libs: &policy_libs,
            lib_version: bundle.manifest().bundle.rego_version,
            version: spec.rego_version.unwrap_or(bundle.manifest().bundle.rego_version),
            parameters: &spec.parameters,
            timeout: spec.timeout_ms.map(Duration::from_millis).unwrap_or(ctx.rego_timeout),
            execution: ctx.rego_execution.or(spec.rego_execution).unwrap_or(bundle.manifest().bundle.rego_execution),
            coverage: ctx.coverage.as_ref(),
        };
        let policy = RegoPolicy::prepare(&src).map_err(|message| Error::RegoCompile {
            bundle: bundle.name().to_string(),
            policy: spec.id.clone(),
            message,
        })?;
        let referential = policy.reads_inventory;
        return Ok((Backend::Rego(Box::new(policy)), referential));
    }
    let path = spec.wasm.clone().unwrap_or_default();
    let plugin_error = |message: String| Error::Plugin {
        bundle: bundle.name().to_string(),
        policy: spec.id.clone(),
        path: bundle.origin().join(&path),
        message,
    };
    #[cfg(feature = "wasm")]
    {
        let runtime = match &ctx.runtime {
            Some(r) => r.clone(),
            None => {
                let r = WasmRuntime::new(ctx.wasm_options.clone()).map_err(plugin_error)?;
                ctx.runtime = Some(r.clone());
                r
            }
        };
        let bytes = bundle.file(&path).ok_or_else(|| plugin_error("no such file in the bundle".into()))?;
        let src = wasm::PluginSource {
            id: &spec.id,
            bytes,
            sha256: spec.sha256.as_deref(),
            memory_mb: spec.memory_mb,
            deadline: spec.timeout_ms.map(Duration::from_millis),
            allow_clock: spec.grants.contains(&crate::bundle::Grant::Clock),
            settings: &spec.parameters,
        };
        let policy = WasmPolicy::load(&runtime, &src).map_err(plugin_error)?;
        Ok((Backend::Wasm(Box::new(policy)), false))
    }
    #[cfg(not(feature = "wasm"))]
    {
        let _ = ctx;
        Err(plugin_error("WebAssembly policies need the `wasm` feature of palisade".into()))
    }
}

#[derive(Debug)]
struct Inner {
    bundles: Vec<Arc<BundleInfo>>,
    /// `name@version (digest)` of each bundle, shared by every decision.
    bundle_refs: Arc<[String]>,
    policies: Vec<Policy>,
    mode: Mode,
    inventory: Option<Arc<Inventory>>,
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

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The loaded bundles.
    pub fn bundles(&self) -> impl Iterator<Item = &BundleInfo> {
        self.inner.bundles.iter().map(|b| &**b)
    }

    /// Every compiled policy, in bundle and manifest order.
    pub fn policies(&self) -> &[Policy] {
        &self.inner.policies
    }

    /// The mode the engine was built for.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The inventory referential policies see, if one is set.
    pub fn inventory(&self) -> Option<&Inventory> {
        self.inner.inventory.as_deref()
    }

    /// A copy of the engine for another [`Mode`] (same compiled policies).
    pub fn with_mode(&self, mode: Mode) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                bundles: self.inner.bundles.clone(),
                bundle_refs: self.inner.bundle_refs.clone(),
                policies: self.inner.policies.clone(),
                mode,
                inventory: self.inner.inventory.clone(),
            }),
        }
    }

    /// A copy of the engine whose referential policies see `inventory` as
    /// `data.inventory`. Only referential policies are re-prepared.
    pub fn with_inventory(&self, inventory: Arc<Inventory>) -> Result<Engine> {
        let data = rego::RegoData::inventory(&inventory);
        let mut policies = self.inner.policies.clone();
        for p in policies.iter_mut().filter(|p| p.referential) {
            if let Backend::Rego(r) = &p.backend {
                let r = r.with_data(&data).map_err(|message| Error::RegoCompile {
                    bundle: p.bundle.name.clone(),
                    policy: p.spec.id.clone(),
                    message,
                })?;
                p.backend = Backend::Rego(Box::new(r));
            }
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                bundles: self.inner.bundles.clone(),
                bundle_refs: self.inner.bundle_refs.clone(),
                policies,
                mode: self.inner.mode,
                inventory: Some(inventory),
            }),
        })
    }

    /// Evaluates every matching policy on one object. Never fails: a policy that
    /// cannot be evaluated is recorded in [`Decision::errors`] and its failure mode
    /// decides whether that denies.
    pub fn evaluate(&self, input: &Input) -> Decision {
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let mut evaluated = Vec::new();
        let mut skipped = Vec::new();
        let target = input.match_target();
        let mut pod: Option<Option<Input>> = None;
        let mut reviews: [Option<RegoReview>; 2] = [None, None];
        #[cfg(feature = "wasm")]
        let mut review_texts: [Option<String>; 2] = [None, None];
        #[cfg(feature = "wasm")]
        let mut sessions: [wasm::Session; 2] = Default::default();
        for policy in &self.inner.policies {
            let spec = &*policy.spec;
            let matched = spec.match_spec.check(&target);
            let (subject, slot) = if matched.is_ok() {
                (input, 0)
            } else if matched == Err(crate::matching::Mismatch::MissingNamespace) {
                // Gatekeeper's autoreject: a result, never a silent skip.
                evaluated.push(Evaluated {
                    bundle: policy.bundle.name.clone(),
                    policy: spec.id.clone(),
                    duration_us: 0,
                    memory_bytes: None,
                });
                errors.push(policy_error(
                    policy,
                    input,
                    PolicyErrorKind::MatchError,
                    "unable to match constraints: namespace selector for namespace-scoped object but missing Namespace"
                        .into(),
                ));
                continue;
            } else if spec.expand_workloads
                && spec.match_spec.matches_pods()
                && !spec.match_spec.names_kind(&input.gvk().group, &input.gvk().kind)
            {
                let pod = pod.get_or_insert_with(|| input.pod_from_workload());
                match pod {
                    Some(p) if spec.match_spec.check(&p.match_target()).is_ok() => (&*p, 1),
                    _ => continue,
                }
            } else {
                continue;
            };
            if policy.referential && self.inner.mode == Mode::Admission && self.inner.inventory.is_none() {
                skipped.push(Skipped {
                    bundle: policy.bundle.name.clone(),
                    policy: spec.id.clone(),
                    reason: "referential policy: no inventory is configured at admission".into(),
                });
                continue;
            }
            let started = std::time::Instant::now();
            let deny_action = match (self.inner.mode, spec.admission_action) {
                (Mode::Admission, Some(a)) => a,
                _ => spec.action,
            };
            #[cfg_attr(not(feature = "wasm"), allow(unused_mut))]
            let mut memory_bytes = None;
            let result = match &policy.backend {
                Backend::Unsupported(reason) => Err((PolicyErrorKind::Unsupported, reason.clone())),
                Backend::Rego(r) => {
                    let review = reviews[slot].get_or_insert_with(|| RegoReview::new(subject.review()));
                    r.evaluate(review)
                        .map(|found| {
                            found
                                .into_iter()
                                .map(|f| {
                                    let action = if f.kind == RuleKind::Warn { Action::Warn } else { deny_action };
                                    violation(policy, subject, f.message, f.details, action, None)
                                })
                                .collect::<Vec<_>>()
                        })
                        .map_err(|f| (f.kind, format!("policy {} {}", spec.id, f.message)))
                }
                #[cfg(feature = "wasm")]
                Backend::Wasm(w) => {
                    let review = review_texts[slot].get_or_insert_with(|| subject.review().to_string());
                    let (result, memory) = w.evaluate(&mut sessions[slot], review);
                    memory_bytes = memory;
                    result
                        .map(|found| {
                            found
                                .into_iter()
                                .map(|f| violation(policy, subject, f.message, f.details, deny_action, f.path))
                                .collect::<Vec<_>>()
                        })
                        .map_err(|f| (f.kind, format!("plugin {} {}", spec.id, f.message)))
                }
            };
            evaluated.push(Evaluated {
                bundle: policy.bundle.name.clone(),
                policy: spec.id.clone(),
                duration_us: started.elapsed().as_micros() as u64,
                memory_bytes,
            });
            match result {
                Ok(found) => findings.extend(found),
                Err((kind, message)) => errors.push(policy_error(policy, subject, kind, message)),
            }
        }
        let mut decision = Decision::from_parts(findings, errors, evaluated, skipped);
        decision.bundles = self.inner.bundle_refs.clone();
        decision
    }
}

fn violation(
    policy: &Policy,
    subject: &Input,
    message: String,
    details: Option<Value>,
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
        bundle: policy.bundle.name.clone(),
        bundle_version: policy.bundle.version.clone(),
        policy: policy.spec.id.clone(),
        title: policy.spec.title.clone(),
        message,
        details,
        action,
        severity: policy.spec.severity,
        requirements: policy.spec.requirements.clone(),
        object: subject.object_ref().clone(),
        path,
    }
}

fn policy_error(policy: &Policy, subject: &Input, kind: PolicyErrorKind, message: String) -> PolicyError {
    PolicyError {
        bundle: policy.bundle.name.clone(),
        bundle_version: policy.bundle.version.clone(),
        policy: policy.spec.id.clone(),
        kind,
        message,
        failure_mode: policy.spec.failure_mode,
        requirements: policy.spec.requirements.clone(),
        object: subject.object_ref().clone(),
    }
}
