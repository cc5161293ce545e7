//! The evaluation plan: a loaded bundle set compiled once into an immutable,
//! shareable value. It holds every policy with the backend and slot that run it,
//! the backends themselves (all Rego of the set in one backend, all plugins in
//! another), and an index from object kind to the policies that can match it, so an
//! object meets only those.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{BundleInfo, Policy, PolicyBackend};
use crate::backend::Backend;
use crate::bundle::{BackendKind, Bundle, PolicySpec, RegoExecution};
use crate::cel::CelBackend;
use crate::error::{Error, Result};
use crate::matching::{KindSelector, MatchSpec};
use crate::rego::{self, RegoBackend};
#[cfg(feature = "wasm")]
use crate::wasm::{self, WasmBackend, WasmOptions};

/// How to compile (what the engine builder was told).
#[derive(Debug, Clone)]
pub(crate) struct CompileOptions {
    pub rego_timeout: Duration,
    pub rego_execution: Option<RegoExecution>,
    pub coverage: Option<crate::coverage::Coverage>,
    #[cfg(feature = "wasm")]
    pub wasm: WasmOptions,
}

/// Policies by the kinds they name; policies whose kinds include a wildcard are
/// candidates for every object.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindIndex {
    by_kind: BTreeMap<String, Vec<usize>>,
    any: Vec<usize>,
}

impl KindIndex {
    /// Indexes the policies that are on (`None`: an inactive policy, never a candidate).
    fn build(specs: &[Option<&MatchSpec>]) -> KindIndex {
        let mut index = KindIndex::default();
        for (i, m) in specs.iter().enumerate() {
            let Some(m) = m else { continue };
            match concrete_kinds(m) {
                Some(kinds) => {
                    for k in kinds {
                        let list = index.by_kind.entry(k).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
                None => index.any.push(i),
            }
        }
        index
    }

    /// The policies that may match an object of `kind`, in manifest order.
    pub(crate) fn candidates(&self, kind: &str) -> Vec<usize> {
        let named = self.by_kind.get(kind).map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::with_capacity(named.len() + self.any.len());
        let (mut a, mut b) = (named.iter().peekable(), self.any.iter().peekable());
        while let (Some(&&x), Some(&&y)) = (a.peek(), b.peek()) {
            out.push(if x < y { a.next() } else { b.next() }.copied().unwrap_or_default());
        }
        out.extend(a.chain(b));
        out
    }
}

/// The kind names a match spec can match, or `None` when it can match any kind.
fn concrete_kinds(m: &MatchSpec) -> Option<Vec<String>> {
    if m.kinds.is_empty() {
        return None;
    }
    let mut kinds = Vec::new();
    for k in &m.kinds {
        match k {
            KindSelector::Short(s) => {
                let kind = s.rsplit_once('/').map_or(s.as_str(), |(_, k)| k);
                if kind == "*" {
                    return None;
                }
                kinds.push(kind.to_string());
            }
            KindSelector::Full { kinds: ks, .. } => {
                if ks.is_empty() || ks.iter().any(|k| k == "*") {
                    return None;
                }
                kinds.extend(ks.iter().cloned());
            }
        }
    }
    Some(kinds)
}

/// The compiled bundle set.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub bundles: Vec<Arc<BundleInfo>>,
    /// `name@version (digest)` of each bundle, shared by every decision.
    pub bundle_refs: Arc<[String]>,
    pub policies: Vec<Policy>,
    pub backends: Vec<Arc<dyn Backend>>,
    pub index: KindIndex,
}

/// A policy before compilation: its bundle, its spec (overrides applied), its backend.
pub(crate) struct Pending<'a> {
    pub bundle: &'a Bundle,
    pub info: Arc<BundleInfo>,
    pub spec: PolicySpec,
    pub kind: BackendKind,
}

const REGO: usize = 0;
#[cfg(feature = "wasm")]
const WASM: usize = 1;
const CEL: usize = if cfg!(feature = "wasm") { 2 } else { 1 };

/// Compiles `pending` (in manifest order) into a plan.
pub(crate) fn compile(pending: Vec<Pending<'_>>, options: &CompileOptions) -> Result<Plan> {
    let mut bundles: Vec<Arc<BundleInfo>> = Vec::new();
    for p in &pending {
        if !bundles.iter().any(|b| Arc::ptr_eq(b, &p.info)) {
            bundles.push(p.info.clone());
        }
    }
    let mut policies: Vec<Policy> = pending
        .iter()
        .map(|p| Policy::new(p.info.clone(), Arc::new(p.spec.clone()), PolicyBackend::Unsupported(String::new())))
        .collect();
    // Plugins load (digest, precompiled artifact) on a second thread while the Rego compiles.
    #[cfg(feature = "wasm")]
    let (rego, wasm) = std::thread::scope(|s| {
        let wasm = s.spawn(|| compile_wasm(&pending, options));
        let rego = compile_rego(&pending, options, &mut policies);
        (rego, wasm.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    #[cfg(not(feature = "wasm"))]
    let rego = compile_rego(&pending, options, &mut policies);
    #[cfg_attr(not(feature = "wasm"), allow(unused_mut))]
    let mut backends: Vec<Arc<dyn Backend>> = vec![Arc::new(rego?)];
    #[cfg(feature = "wasm")]
    {
        let (wasm, assigned) = wasm?;
        for (i, backend) in assigned {
            policies[i].backend = backend;
        }
        backends.push(Arc::new(wasm));
    }
    #[cfg(not(feature = "wasm"))]
    if let Some(p) = pending.iter().find(|p| p.kind == BackendKind::Wasm && p.spec.unsupported.is_none()) {
        return Err(plugin_error(p, "WebAssembly policies need the `wasm` feature of palisade".into()));
    }
    backends.push(Arc::new(compile_cel(&pending, &mut policies)?));
    for (policy, p) in policies.iter_mut().zip(&pending) {
        if let Some(reason) = &p.spec.unsupported {
            policy.backend = PolicyBackend::Unsupported(reason.clone());
        }
        if let Some(r) = p.spec.referential {
            policy.referential = r;
        }
    }
    let specs: Vec<Option<&MatchSpec>> =
        pending.iter().map(|p| p.spec.is_enabled().then_some(&p.spec.match_spec)).collect();
    let bundle_refs = bundles.iter().map(|b| bundle_ref(b)).collect();
    Ok(Plan { bundles, bundle_refs, policies, backends, index: KindIndex::build(&specs) })
}

/// `name@version (digest)`, and `from oci://REF@sha256:…` for a bundle pulled from a
/// registry: what every decision (and the decision log) names.
fn bundle_ref(b: &BundleInfo) -> String {
    let from = if b.origin.starts_with("oci://") { format!(" from {}", b.origin) } else { String::new() };
    format!("{}@{} ({}){from}", b.name, b.version, b.digest)
}

fn compile_rego(pending: &[Pending<'_>], options: &CompileOptions, policies: &mut [Policy]) -> Result<RegoBackend> {
    let mut libs: BTreeMap<&str, Vec<rego::Module>> = BTreeMap::new();
    let mut sources = Vec::new();
    let mut indices = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        let Some(path) = p.spec.rego.as_ref().filter(|_| p.kind == BackendKind::Rego && p.spec.unsupported.is_none())
        else {
            continue;
        };
        let b = p.bundle;
        let origin = b.origin().display().to_string();
        let lib_version = b.manifest().bundle.rego_version;
        if !libs.contains_key(b.name()) {
            let mut modules: Vec<rego::Module> = b
                .dependency_libs()
                .iter()
                .map(|(path, text)| rego::Module { path: path.clone(), text: text.clone(), version: lib_version })
                .collect();
            for (path, text) in b.rego_libs()? {
                modules.push(rego::Module { path: format!("{origin}/{path}"), text, version: lib_version });
            }
            libs.insert(b.name(), modules);
        }
        let version = p.spec.rego_version.unwrap_or(lib_version);
        let policy_libs = b
            .libs_at(&p.spec.libs)?
            .into_iter()
            .map(|(path, text)| rego::Module { path: format!("{origin}/{path}"), text, version })
            .collect();
        sources.push((i, path.clone(), version, policy_libs));
        indices.push(i);
    }
    let sources: Vec<rego::PolicySource<'_>> = sources
        .into_iter()
        .map(|(i, path, version, policy_libs)| {
            let p = &pending[i];
            let b = p.bundle;
            Ok(rego::PolicySource {
                bundle: b.name(),
                libs: libs.get(b.name()).map(Vec::as_slice).unwrap_or_default(),
                module: rego::Module {
                    path: format!("{}/{path}", b.origin().display()),
                    text: b.text(&path)?.to_string(),
                    version,
                },
                policy_libs,
                parameters: &p.spec.parameters,
                timeout: p.spec.timeout_ms.map(Duration::from_millis).unwrap_or(options.rego_timeout),
                execution: options
                    .rego_execution
                    .or(p.spec.rego_execution)
                    .unwrap_or(b.manifest().bundle.rego_execution),
                coverage: options.coverage.as_ref(),
            })
        })
        .collect::<Result<_>>()?;
    let backend = RegoBackend::compile(&sources).map_err(|(slot, message)| {
        let p = &pending[indices[slot]];
        Error::RegoCompile { bundle: p.bundle.name().to_string(), policy: p.spec.id.clone(), message }
    })?;
    for (slot, &i) in indices.iter().enumerate() {
        policies[i].backend = PolicyBackend::Rego { slot, execution: backend.execution(slot) };
        policies[i].referential = backend.reads_inventory(slot);
    }
    Ok(backend)
}

fn plugin_error(p: &Pending<'_>, message: String) -> Error {
    let path = p.spec.wasm.clone().unwrap_or_default();
    Error::Plugin {
        bundle: p.bundle.name().to_string(),
        policy: p.spec.id.clone(),
        path: p.bundle.origin().join(path),
        message,
    }
}

#[cfg(feature = "wasm")]
/// The plugin backend, and the backend of each plugin policy (by index in `pending`).
fn compile_wasm(
    pending: &[Pending<'_>],
    options: &CompileOptions,
) -> Result<(WasmBackend, Vec<(usize, PolicyBackend)>)> {
    let mut backend = WasmBackend::new(options.wasm.clone());
    let mut assigned = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        if p.kind != BackendKind::Wasm || p.spec.unsupported.is_some() {
            continue;
        }
        let path = p.spec.wasm.clone().unwrap_or_default();
        let bytes = p.bundle.file(&path).ok_or_else(|| plugin_error(p, "no such file in the bundle".into()))?;
        let src = wasm::PluginSource {
            id: &p.spec.id,
            bytes,
            sha256: p.spec.sha256.as_deref(),
            memory_mb: p.spec.memory_mb,
            deadline: p.spec.timeout_ms.map(Duration::from_millis),
            grants: wasm::Grants::of(&p.spec.grants),
            settings: &p.spec.parameters,
        };
        let slot = backend.load(&src).map_err(|m| plugin_error(p, m))?;
        assigned.push((i, PolicyBackend::Wasm(backend.summary(slot))));
    }
    Ok((backend, assigned))
}

fn compile_cel(pending: &[Pending<'_>], policies: &mut [Policy]) -> Result<CelBackend> {
    let mut backend = CelBackend::default();
    for (i, p) in pending.iter().enumerate() {
        let Some(path) = p.spec.cel.as_ref().filter(|_| p.kind == BackendKind::Cel && p.spec.unsupported.is_none())
        else {
            continue;
        };
        let file = format!("{}/{path}", p.bundle.origin().display());
        let slot = backend.load(&file, p.bundle.text(path)?, &p.spec.parameters).map_err(|message| {
            Error::CelCompile { bundle: p.bundle.name().to_string(), policy: p.spec.id.clone(), message }
        })?;
        policies[i].backend = PolicyBackend::Cel { slot };
        // `authorizer` is answered from the inventory's RBAC objects.
        policies[i].referential |= backend.uses_authorizer(slot);
    }
    Ok(backend)
}

/// The backend index and slot of a policy, when it runs on one.
pub(crate) fn slot_of(policy: &Policy) -> Option<(usize, usize)> {
    match &policy.backend {
        PolicyBackend::Rego { slot, .. } => Some((REGO, *slot)),
        #[cfg(feature = "wasm")]
        PolicyBackend::Wasm(w) => Some((WASM, w.slot)),
        PolicyBackend::Cel { slot } => Some((CEL, *slot)),
        PolicyBackend::Unsupported(_) => None,
    }
}
