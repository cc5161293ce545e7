//! Turning `-b` arguments into loaded bundles and an engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use palisade::bundle::LoadOptions;
use palisade::bundle::resolve::{BundleSource, Root};
use palisade::bundle::sign::TrustedKey;
use palisade::{Bundle, Engine, Mode};

/// Flags shared by every command that evaluates.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Bundle to load (repeatable): a directory, a packed archive (.tar.gz),
    /// NAME@REQUIREMENT (e.g. pci-dss@^1) picked from the bundle path, or
    /// gatekeeper:DIR (Gatekeeper ConstraintTemplates and Constraints; also detected
    /// for a directory without bundle.toml). Default: the pci-dss bundle built into
    /// this binary.
    #[arg(short = 'b', long = "bundle", value_name = "BUNDLE")]
    pub bundles: Vec<String>,
    /// Where NAME@REQUIREMENT bundles and dependencies are found (repeatable; also
    /// PALISADE_BUNDLE_PATH, colon-separated): bundle directories, archives, or
    /// directories holding them.
    #[arg(long = "bundle-path", value_name = "DIR")]
    pub bundle_path: Vec<PathBuf>,
    /// Only load packed bundles signed by one of these ed25519 public keys (PEM; repeatable).
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,
    /// Time budget of one Rego policy evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub rego_timeout: u64,
    /// Parameter overrides: a YAML/JSON file mapping policy ids (or `*`) to parameters.
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<String>,
    /// One parameter override, `POLICY.KEY=JSON` (`*.KEY=...` for every policy having KEY).
    #[arg(long = "set", value_name = "POLICY.KEY=VALUE")]
    pub set: Vec<String>,
    /// For policies with both a Rego and a WebAssembly implementation, run this one.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Rego,
    Wasm,
}

impl BundleArgs {
    fn search_path(&self) -> Vec<PathBuf> {
        let mut paths = self.bundle_path.clone();
        if let Some(env) = std::env::var_os("PALISADE_BUNDLE_PATH") {
            paths.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
        }
        paths
    }

    /// Directories whose changes should reload the bundles (for `serve`).
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.bundles.iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
        dirs.extend(self.search_path().into_iter().filter(|p| p.is_dir()));
        dirs
    }

    /// Loads the bundles named (and their dependencies), or the embedded default.
    pub fn load(&self) -> Result<Vec<Bundle>> {
        let mut options = LoadOptions::default();
        for key in &self.trusted_keys {
            options.trusted_keys.push(
                TrustedKey::from_pem_file(key).with_context(|| format!("loading trusted key {}", key.display()))?,
            );
        }
        if self.bundles.is_empty() {
            return Ok(vec![palisade::default_bundle().context("loading the built-in pci-dss bundle")?]);
        }
        let mut roots = Vec::new();
        for b in &self.bundles {
            if let Some(dir) = b.strip_prefix("gatekeeper:") {
                roots.push(Root::Bundle(
                    palisade::gatekeeper::load_dir(Path::new(dir))
                        .with_context(|| format!("loading Gatekeeper source {dir}"))?,
                ));
                continue;
            }
            let path = Path::new(b);
            if palisade::gatekeeper::is_source_dir(path) {
                roots.push(Root::Bundle(
                    palisade::gatekeeper::load_dir(path).with_context(|| format!("loading Gatekeeper source {b}"))?,
                ));
            } else if path.exists() {
                roots.push(Root::Bundle(Bundle::load(path, &options).with_context(|| format!("loading bundle {b}"))?));
            } else {
                let (name, req) = b.split_once('@').unwrap_or((b, "*"));
                let req = semver::VersionReq::parse(req)
                    .with_context(|| format!("-b {b}: not a path, and {req:?} is not a semver requirement"))?;
                roots.push(Root::Named(name.to_string(), req));
            }
        }
        let source = BundleSource::scan(&self.search_path(), options).context("reading the bundle path")?;
        Ok(source.resolve(roots)?)
    }

    /// Loads and compiles.
    pub fn engine(&self, mode: Mode) -> Result<Engine> {
        let mut builder = Engine::builder().mode(mode).rego_timeout(Duration::from_millis(self.rego_timeout));
        if let Some(backend) = self.backend {
            builder = builder.backend(match backend {
                BackendArg::Rego => palisade::engine::BackendKind::Rego,
                BackendArg::Wasm => palisade::engine::BackendKind::Wasm,
            });
        }
        if let Some(file) = &self.parameters {
            let text = std::fs::read_to_string(file).with_context(|| format!("{file}: cannot read"))?;
            let doc: serde_json::Value =
                serde_yaml_ng::from_str(&text).with_context(|| format!("{file}: not valid YAML or JSON"))?;
            builder = builder.parameters_document(&doc).with_context(|| file.clone())?;
        }
        for s in &self.set {
            let (path, value) = s.split_once('=').with_context(|| format!("--set {s}: expected POLICY.KEY=VALUE"))?;
            let (policy, key) =
                path.rsplit_once('.').with_context(|| format!("--set {s}: expected POLICY.KEY=VALUE"))?;
            // A value that is not JSON is taken as a string.
            let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            let mut params = serde_json::Map::new();
            params.insert(key.to_string(), value);
            builder = builder.parameters(policy, params);
        }
        for b in self.load()? {
            builder = builder.bundle(b);
        }
        Ok(builder.build()?)
    }
}
