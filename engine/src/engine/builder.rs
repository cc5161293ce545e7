//! [`EngineBuilder`]: bundles, parameter overrides and execution choices, compiled
//! into an [`Engine`] by [`EngineBuilder::build`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::plan::{self, CompileOptions, Pending};
use super::{BundleInfo, DEFAULT_REGO_TIMEOUT, Engine, Inner, Mode};
use crate::bundle::{BackendKind, Bundle, PolicySpec, RegoExecution};
use crate::error::{Error, Result};
#[cfg(feature = "wasm")]
use crate::wasm::WasmOptions;

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

    /// Compiles every policy of every bundle into one plan. Fails on the first
    /// policy that does not compile, naming the bundle, policy and `file:line:col`.
    pub fn build(self) -> Result<Engine> {
        let options = CompileOptions {
            rego_timeout: self.rego_timeout.unwrap_or(DEFAULT_REGO_TIMEOUT),
            rego_execution: self.rego_execution,
            coverage: self.coverage.clone(),
            #[cfg(feature = "wasm")]
            wasm: self.wasm_options.clone(),
        };
        let mut pending = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for bundle in &self.bundles {
            if names.contains(&bundle.name()) {
                return Err(Error::Manifest {
                    path: bundle.origin().join("bundle.toml"),
                    message: format!("bundle {} is loaded twice: load one version of each bundle", bundle.name()),
                });
            }
            names.push(bundle.name());
            let info = Arc::new(BundleInfo::of(bundle));
            for loaded in bundle.policies() {
                let spec = self.with_overrides(bundle, loaded)?;
                let kind = crate::backend::resolve(bundle, &spec, self.backend);
                pending.push(Pending { bundle, info: info.clone(), spec, kind });
            }
        }
        let plan = plan::compile(pending, &options)?;
        Ok(Engine {
            inner: Arc::new(Inner { plan: Arc::new(plan), mode: self.mode, inventory: None, exceptions: None }),
        })
    }

    /// The policy's spec with the parameter overrides that apply to it, checked
    /// against its schema when they changed anything.
    fn with_overrides(&self, bundle: &Bundle, loaded: &PolicySpec) -> Result<PolicySpec> {
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
        Ok(spec)
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
