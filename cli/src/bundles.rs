//! The flags every evaluating command shares, mapped onto the library's
//! [`palisade::sources`] (which owns what they mean).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use palisade::sources::{EngineSettings, PluginCache, Sources};
use palisade::{Engine, Mode};

/// Flags shared by every command that evaluates.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Bundle to load (repeatable): a directory, a packed archive (.tar.gz),
    /// NAME@REQUIREMENT (e.g. pci-dss@^1) picked from the bundle path,
    /// gatekeeper:DIR (Gatekeeper ConstraintTemplates and Constraints; also detected
    /// for a directory without bundle.toml), or vap:PATH (ValidatingAdmissionPolicies,
    /// bindings and their parameter objects), or oci://HOST/REPO:TAG (or @sha256:…),
    /// pulled from a registry into $XDG_CACHE_HOME/palisade/oci. Default: the pci-dss
    /// bundle built into this binary.
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
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Time budget of one Rego policy evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub rego_timeout: u64,
    /// Parameter overrides: a YAML/JSON file mapping policy ids (or `*`) to parameters.
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<PathBuf>,
    /// One parameter override, `POLICY.KEY=JSON` (`*.KEY=...` for every policy having KEY).
    #[arg(long = "set", value_name = "POLICY.KEY=VALUE")]
    pub set: Vec<String>,
    /// For policies with several implementations (Rego, WebAssembly, CEL), run this one.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Do not use the compiled-plugin cache ($XDG_CACHE_HOME/palisade/plugins):
    /// compile every plugin at every start.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub exceptions: ExceptionArgs,
}

/// How PolicyExceptions are loaded (every command that takes them).
#[derive(Debug, clap::Args)]
pub struct ExceptionArgs {
    /// PolicyException documents (palisade.dev/v1alpha1), a file or directory
    /// (repeatable): covered findings are reported as waived instead of enforced.
    #[arg(long = "exceptions", value_name = "PATH")]
    pub exception_paths: Vec<String>,
    /// Refuse exceptions that expire more than this many days from now.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub max_exception_days: i64,
    /// Warn (on stderr) about exceptions that expire within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub warn_expiry_days: i64,
    /// Accept only exceptions (files and in-cluster objects) signed by an
    /// --exception-key (`palisade exception sign`).
    #[arg(long, requires = "exception_keys")]
    pub require_signed_exceptions: bool,
    /// A public key (PEM, as `palisade bundle keygen` writes) whose exception signatures
    /// count (repeatable).
    #[arg(long = "exception-key", value_name = "FILE")]
    pub exception_keys: Vec<PathBuf>,
}

/// How OCI registries are reached (`-b oci://REF`, `bundle push|pull`).
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry (loopback registries only).
    #[arg(long)]
    pub plain_http: bool,
    /// CA certificates (PEM) trusted for the registry besides the system's.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// The library's options.
    pub fn options(&self) -> palisade::oci::RegistryOptions {
        palisade::oci::RegistryOptions::new(self.plain_http, self.registry_ca.clone())
    }
}

impl ExceptionArgs {
    /// The library's load options (reads the exception keys).
    pub fn options(&self) -> Result<palisade::exception::LoadOptions> {
        let mut options = palisade::exception::LoadOptions::new(self.max_exception_days, self.warn_expiry_days);
        if self.require_signed_exceptions {
            options.require_signed = true;
            for k in &self.exception_keys {
                options.trusted_keys.push(palisade::bundle::sign::TrustedKey::from_pem_file(k)?);
            }
        }
        Ok(options)
    }
}

/// Warns (stderr) about the exceptions of `after` close to expiry that `before` (the
/// files, already warned about when the engine was built) does not hold: the
/// cluster's PolicyException objects.
pub fn warn_expiring_in_cluster(
    before: Option<&palisade::exception::Exceptions>,
    after: Option<&palisade::exception::Exceptions>,
) {
    let known = |name: &str| before.is_some_and(|b| b.items().iter().any(|e| e.name == name));
    for (e, days) in after.map(|a| a.expiring()).unwrap_or_default() {
        if !known(&e.name) {
            eprintln!("palisade: warning: {}", palisade::exception::expiry_warning(e, days));
        }
    }
}

/// `--backend`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Rego,
    Wasm,
    Cel,
}

impl BundleArgs {
    /// The bundles these flags name.
    pub fn sources(&self) -> Sources {
        Sources {
            bundles: self.bundles.clone(),
            bundle_path: self.bundle_path.clone(),
            trusted_keys: self.trusted_keys.clone(),
            plain_http: self.registry.plain_http,
            registry_ca: self.registry.registry_ca.clone(),
        }
    }

    /// How the engine is built (reads the trusted keys).
    pub fn settings(&self) -> Result<EngineSettings> {
        Ok(EngineSettings {
            rego_timeout: Some(Duration::from_millis(self.rego_timeout)),
            parameters_file: self.parameters.clone(),
            set: self.set.clone(),
            backend: self.backend.map(|b| match b {
                BackendArg::Rego => palisade::engine::BackendKind::Rego,
                BackendArg::Wasm => palisade::engine::BackendKind::Wasm,
                BackendArg::Cel => palisade::engine::BackendKind::Cel,
            }),
            plugin_cache: if self.no_cache { PluginCache::Off } else { PluginCache::Default },
            exceptions: self.exceptions.exception_paths.clone(),
            exception_options: self.exceptions.options()?,
        })
    }

    /// Directories and files whose changes should reload the bundles and exceptions (for `serve`).
    pub fn watch_paths(&self) -> Vec<PathBuf> {
        let mut paths = self.watch_dirs();
        paths.extend(self.exceptions.exception_paths.iter().map(PathBuf::from));
        paths
    }

    /// Directories whose changes should reload the bundles (for `serve`).
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        self.sources().watch_dirs()
    }

    /// Loads and compiles; warns on stderr about exceptions close to their expiry.
    pub fn engine(&self, mode: Mode) -> Result<Engine> {
        let engine = self.sources().engine(&self.settings()?, mode)?;
        if let Some(ex) = engine.exceptions() {
            for warning in ex.expiry_warnings() {
                eprintln!("palisade: warning: {warning}");
            }
        }
        Ok(engine)
    }
}
