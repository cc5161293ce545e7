//! What the engine knows about each loaded bundle and compiled policy.

use std::sync::Arc;

use crate::bundle::{PolicySpec, RegoExecution};
#[cfg(feature = "wasm")]
use crate::wasm;

/// Identity of a loaded bundle, carried by decisions and reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BundleInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Content digest (`sha256:...`).
    pub digest: String,
    /// Where it was loaded from.
    pub origin: String,
    /// Display name of the framework its requirement ids belong to (`PCI DSS`), if any.
    pub framework: Option<String>,
}

impl BundleInfo {
    pub(crate) fn of(bundle: &crate::Bundle) -> BundleInfo {
        BundleInfo {
            name: bundle.name().to_string(),
            version: bundle.version().to_string(),
            digest: bundle.digest().to_string(),
            origin: bundle.origin().display().to_string(),
            framework: bundle.manifest().bundle.framework.as_deref().map(crate::framework::display_name),
        }
    }
}

/// How a policy runs.
#[derive(Debug, Clone)]
pub(crate) enum PolicyBackend {
    /// Cannot run here; every matching object gets an error with this reason.
    Unsupported(String),
    /// Rego policy `slot` of the Rego backend.
    Rego { slot: usize, execution: RegoExecution },
    /// A plugin policy of the WebAssembly backend.
    #[cfg(feature = "wasm")]
    Wasm(wasm::Summary),
    /// CEL policy `slot` of the CEL backend.
    Cel { slot: usize },
}

/// A compiled policy and the bundle it belongs to.
#[derive(Debug, Clone)]
pub struct Policy {
    bundle: Arc<BundleInfo>,
    spec: Arc<PolicySpec>,
    pub(crate) backend: PolicyBackend,
    pub(crate) referential: bool,
}

impl Policy {
    pub(crate) fn new(bundle: Arc<BundleInfo>, spec: Arc<PolicySpec>, backend: PolicyBackend) -> Policy {
        Policy { bundle, spec, backend, referential: false }
    }

    /// The bundle the policy comes from.
    pub fn bundle(&self) -> &BundleInfo {
        &self.bundle
    }

    /// The policy's manifest entry (id, title, requirements, match, parameters...).
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// `rego`, `wasm`, `cel` or `unsupported`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            PolicyBackend::Unsupported(_) => "unsupported",
            PolicyBackend::Rego { .. } => "rego",
            #[cfg(feature = "wasm")]
            PolicyBackend::Wasm(_) => "wasm",
            PolicyBackend::Cel { .. } => "cel",
        }
    }

    /// For a WebAssembly policy: what the plugin says about itself.
    #[cfg(feature = "wasm")]
    pub fn plugin_info(&self) -> Option<&wasm::PluginInfo> {
        match &self.backend {
            PolicyBackend::Wasm(w) => Some(&w.info),
            _ => None,
        }
    }

    /// For a WebAssembly policy: its sha256 and whether it was loaded from the
    /// precompiled cache (true) or compiled (false).
    #[cfg(feature = "wasm")]
    pub fn plugin_load(&self) -> Option<(&str, bool)> {
        match &self.backend {
            PolicyBackend::Wasm(w) => Some((&w.sha256, w.cached)),
            _ => None,
        }
    }

    /// For a Rego policy: whether it runs on regorus's VM or its interpreter.
    pub fn rego_execution(&self) -> Option<RegoExecution> {
        match &self.backend {
            PolicyBackend::Rego { execution, .. } => Some(*execution),
            _ => None,
        }
    }

    /// Whether the policy has more than one implementation (Rego, WebAssembly, CEL).
    pub fn has_both_backends(&self) -> bool {
        [self.spec.rego.is_some(), self.spec.wasm.is_some(), self.spec.cel.is_some()].iter().filter(|x| **x).count() > 1
    }

    /// Whether the policy reads other objects through `data.inventory`.
    pub fn is_referential(&self) -> bool {
        self.referential
    }
}
