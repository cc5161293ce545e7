//! Where bundles come from, the same for every command and for library users: what
//! a `-b` value means (a directory, a packed `.tar.gz`, `NAME@REQUIREMENT` picked
//! from the bundle path, `gatekeeper:DIR`, `vap:PATH`), the bundle path (`--bundle-path` and
//! `PALISADE_BUNDLE_PATH`), trusted keys, and the settings an engine is built with
//! (time budget, parameter overrides, backend choice, plugin compile cache).
//!
//! ```
//! use palisade::sources::{EngineSettings, Sources};
//!
//! let sources = Sources { bundles: vec!["tests/bundles/basic".into()], ..Sources::default() };
//! let engine = sources.engine(&EngineSettings::default(), palisade::Mode::Scan)?;
//! assert_eq!(engine.bundles().next().map(|b| b.name.as_str()), Some("basic"));
//! # Ok::<(), palisade::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::Bundle;
use crate::bundle::resolve::{BundleSource, Root};
use crate::bundle::sign::TrustedKey;
use crate::bundle::{BackendKind, LoadOptions};
use crate::engine::{Engine, Mode};
use crate::error::{Error, Result};
use crate::inventory::Inventory;

/// The bundles to load.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `-b` values; empty means the built-in pci-dss bundle (feature `embed-default-bundle`).
    pub bundles: Vec<String>,
    /// Directories (or archives) where `NAME@REQUIREMENT` bundles and dependencies are
    /// found, before those of `PALISADE_BUNDLE_PATH`.
    pub bundle_path: Vec<PathBuf>,
    /// Only load packed bundles signed by one of these ed25519 public keys (PEM files).
    pub trusted_keys: Vec<PathBuf>,
    /// `oci://` references: plain HTTP (loopback registries only).
    pub plain_http: bool,
    /// `oci://` references: CA certificates (PEM) trusted besides the system's.
    pub registry_ca: Option<PathBuf>,
}

/// Where compiled plugins are cached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PluginCache {
    /// `$XDG_CACHE_HOME/palisade/plugins` (or `~/.cache/palisade/plugins`).
    #[default]
    Default,
    /// This directory.
    Dir(PathBuf),
    /// No cache: every start compiles.
    Off,
}

impl PluginCache {
    /// The directory, if caching is on and one can be found.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            PluginCache::Off => None,
            PluginCache::Dir(d) => Some(d.clone()),
            PluginCache::Default => cache_home().map(|c| c.join("plugins")),
        }
    }
}

/// `$XDG_CACHE_HOME/palisade` (or `~/.cache/palisade`), if either variable is set.
pub fn cache_home() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("palisade"))
}

/// How the engine is built from the bundles.
#[derive(Debug, Clone, Default)]
pub struct EngineSettings {
    /// Time budget of one Rego policy evaluation (a policy's `timeout_ms` wins).
    pub rego_timeout: Option<Duration>,
    /// A YAML or JSON file mapping policy ids (or `*`) to parameter overrides.
    pub parameters_file: Option<PathBuf>,
    /// Single overrides, `POLICY.KEY=VALUE` (`*.KEY=...` for every policy having KEY);
    /// a value that is not JSON is a string.
    pub set: Vec<String>,
    /// For policies with a Rego and a WebAssembly implementation, run this one.
    pub backend: Option<BackendKind>,
    /// Where compiled plugins are cached.
    pub plugin_cache: PluginCache,
    /// PolicyException files or directories (re-read at every load).
    pub exceptions: Vec<String>,
    /// How strictly exceptions are loaded.
    pub exception_options: crate::exception::LoadOptions,
}

impl Sources {
    /// The bundle path: `bundle_path`, then `PALISADE_BUNDLE_PATH` (colon-separated).
    pub fn search_path(&self) -> Vec<PathBuf> {
        let mut paths = self.bundle_path.clone();
        if let Some(env) = std::env::var_os("PALISADE_BUNDLE_PATH") {
            paths.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
        }
        paths
    }

    /// Directories (and files: archives, `vap:FILE`) whose changes should reload the
    /// bundles (for `serve`), `vap:` and `gatekeeper:` sources included.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .bundles
            .iter()
            .map(|b| PathBuf::from(b.strip_prefix("vap:").or_else(|| b.strip_prefix("gatekeeper:")).unwrap_or(b)))
            .filter(|p| p.exists())
            .collect();
        dirs.extend(self.search_path().into_iter().filter(|p| p.is_dir()));
        dirs
    }

    /// Loads the bundles named (and their dependencies), or the built-in default.
    pub fn load(&self) -> Result<Vec<Bundle>> {
        let mut options = LoadOptions::default();
        for key in &self.trusted_keys {
            options.trusted_keys.push(TrustedKey::from_pem_file(key)?);
        }
        if self.bundles.is_empty() {
            return default_bundle().map(|b| vec![b]);
        }
        let mut roots = Vec::new();
        for b in &self.bundles {
            roots.push(match b.strip_prefix("oci://") {
                Some(reference) => Root::Bundle(self.pull(reference, &options)?),
                None => root(b, &options)?,
            });
        }
        BundleSource::scan(&self.search_path(), options)?.resolve(roots)
    }

    /// Loads the bundles and compiles them for `mode`.
    pub fn engine(&self, settings: &EngineSettings, mode: Mode) -> Result<Engine> {
        let mut builder = Engine::builder().mode(mode);
        if let Some(t) = settings.rego_timeout {
            builder = builder.rego_timeout(t);
        }
        if let Some(backend) = settings.backend {
            builder = builder.backend(backend);
        }
        #[cfg(feature = "wasm")]
        {
            let wasm = crate::wasm::WasmOptions { cache_dir: settings.plugin_cache.dir(), ..Default::default() };
            builder = builder.wasm_options(wasm);
        }
        if let Some(file) = &settings.parameters_file {
            let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, "cannot read", e))?;
            let doc: serde_json::Value = serde_yaml_ng::from_str(&text)
                .map_err(|e| Error::input(file.display().to_string(), format!("not valid YAML or JSON: {e}")))?;
            builder = builder.parameters_document(&doc)?;
        }
        for s in &settings.set {
            let (policy, key, value) = parse_set(s)?;
            let mut params = serde_json::Map::new();
            params.insert(key, value);
            builder = builder.parameters(policy, params);
        }
        for b in self.load()? {
            builder = builder.bundle(b);
        }
        // Image-signature checks trust the CA the bundles' registry is trusted with.
        #[cfg(feature = "oci")]
        crate::oci::builtin::set_registry_ca(self.registry_ca.clone());
        let engine = builder.build()?;
        // Even with no files: the set carries the options in-cluster exceptions are held to.
        let exceptions = load_exceptions(&engine, settings)?;
        Ok(engine.with_exceptions(Arc::new(exceptions)))
    }
}

impl Sources {
    /// `-b oci://REF`: pulled into the cache (or found there by digest), then loaded as
    /// an archive, so `--trusted-key` holds as for a local one.
    #[cfg(feature = "oci")]
    fn pull(&self, reference: &str, options: &LoadOptions) -> Result<Bundle> {
        let pulled = crate::oci::pull(reference, &self.registry())?;
        tracing::info!(%reference, digest = %pulled.digest, archive = %pulled.archive.display(), "bundle pulled");
        let origin = match reference.contains('@') {
            true => format!("oci://{reference}"),
            false => format!("oci://{reference}@{}", pulled.digest),
        };
        Bundle::load(&pulled.archive, options).map(|b| b.with_origin(origin))
    }

    /// What every `oci://` tag names now, `REF@DIGEST` each (empty without any):
    /// a change means a reload would load something new (`serve --bundle-poll`).
    #[cfg(feature = "oci")]
    pub fn registry_digests(&self) -> Result<Vec<String>> {
        let registry = self.registry();
        self.bundles
            .iter()
            .filter_map(|b| b.strip_prefix("oci://"))
            .map(|r| crate::oci::resolve(r, &registry).map(|d| format!("{r}@{d}")))
            .collect()
    }

    #[cfg(feature = "oci")]
    fn registry(&self) -> crate::oci::RegistryOptions {
        crate::oci::RegistryOptions::new(self.plain_http, self.registry_ca.clone())
    }

    #[cfg(not(feature = "oci"))]
    fn pull(&self, reference: &str, _options: &LoadOptions) -> Result<Bundle> {
        Err(Error::input(format!("-b oci://{reference}"), "this build has no registry support (feature `oci`)"))
    }
}

/// The exceptions of `settings`, their policy ids checked against `engine`'s.
fn load_exceptions(engine: &Engine, settings: &EngineSettings) -> Result<crate::exception::Exceptions> {
    let known = |id: &str| engine.names_policy(id);
    let clock = Arc::new(crate::exception::SystemClock);
    crate::exception::Exceptions::load(&settings.exceptions, &settings.exception_options, clock, &known)
}

/// One `-b` value as a resolution root.
fn root(b: &str, options: &LoadOptions) -> Result<Root> {
    if let Some(path) = b.strip_prefix("vap:") {
        return Ok(Root::Bundle(crate::cel::source::load(Path::new(path))?));
    }
    if let Some(dir) = b.strip_prefix("gatekeeper:") {
        return Ok(Root::Bundle(crate::gatekeeper::load_dir(Path::new(dir))?));
    }
    let path = Path::new(b);
    if crate::gatekeeper::is_source_dir(path) {
        return Ok(Root::Bundle(crate::gatekeeper::load_dir(path)?));
    }
    if path.exists() {
        return Ok(Root::Bundle(Bundle::load(path, options)?));
    }
    let (name, req) = b.split_once('@').unwrap_or((b, "*"));
    let req = semver::VersionReq::parse(req).map_err(|e| {
        Error::input(format!("-b {b}"), format!("not a path, and {req:?} is not a semver requirement: {e}"))
    })?;
    Ok(Root::Named(name.to_string(), req))
}

/// `POLICY.KEY=VALUE` as (policy, key, value).
fn parse_set(s: &str) -> Result<(String, String, serde_json::Value)> {
    let expected = || Error::input(format!("--set {s}"), "expected POLICY.KEY=VALUE");
    let (path, value) = s.split_once('=').ok_or_else(expected)?;
    let (policy, key) = path.rsplit_once('.').ok_or_else(expected)?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    Ok((policy.to_string(), key.to_string(), value))
}

#[cfg(feature = "embed-default-bundle")]
fn default_bundle() -> Result<Bundle> {
    crate::default_bundle()
}

#[cfg(not(feature = "embed-default-bundle"))]
fn default_bundle() -> Result<Bundle> {
    Err(Error::input(
        "bundles",
        "no bundle given, and this build has no built-in bundle (feature `embed-default-bundle`)",
    ))
}

/// Reads objects for an inventory (`--inventory`): files, directories or `-`. The
/// first unreadable input is an error naming it.
pub fn inventory_from_paths(paths: &[String]) -> Result<Inventory> {
    let mut docs = crate::documents::Documents::default();
    for p in paths {
        docs.read_path(p);
    }
    if let Some(e) = docs.errors.into_iter().next() {
        return Err(e);
    }
    let mut inventory = Inventory::new();
    for d in &docs.documents {
        inventory.add(&d.value);
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_and_cache_dirs() {
        assert_eq!(parse_set("p.k=[1]").unwrap(), ("p".into(), "k".into(), serde_json::json!([1])));
        assert_eq!(parse_set("*.k=text").unwrap().2, serde_json::json!("text"));
        assert_eq!(parse_set("nokey=1").unwrap_err().to_string(), "--set nokey=1: expected POLICY.KEY=VALUE");
        assert_eq!(PluginCache::Off.dir(), None);
        assert_eq!(PluginCache::Dir("/x".into()).dir(), Some(PathBuf::from("/x")));
    }

    #[test]
    fn prefixed_sources_are_watched_too() {
        let sources = Sources {
            bundles: vec!["vap:tests/gatekeeper".into(), "gatekeeper:tests/bundles".into(), "name@^1".into()],
            ..Sources::default()
        };
        let watched = sources.watch_dirs();
        assert!(watched.contains(&PathBuf::from("tests/gatekeeper")), "{watched:?}");
        assert!(watched.contains(&PathBuf::from("tests/bundles")), "{watched:?}");
        assert!(!watched.iter().any(|p| p.to_string_lossy().contains('@')));
    }
}
