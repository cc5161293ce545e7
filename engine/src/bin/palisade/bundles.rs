//! Turning `-b` arguments into loaded bundles and an engine.

use std::time::Duration;

use anyhow::{Context, Result};
use palisade::{Bundle, Engine, Mode};

/// Flags shared by every command that evaluates.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Bundle directory (repeatable). Default: the pci-dss bundle built into this binary.
    #[arg(short = 'b', long = "bundle", value_name = "BUNDLE")]
    pub bundles: Vec<String>,
    /// Time budget of one Rego policy evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub rego_timeout: u64,
    /// Parameter overrides: a YAML/JSON file mapping policy ids (or `*`) to parameters.
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<String>,
    /// One parameter override, `POLICY.KEY=JSON` (`*.KEY=...` for every policy having KEY).
    #[arg(long = "set", value_name = "POLICY.KEY=VALUE")]
    pub set: Vec<String>,
}

impl BundleArgs {
    /// Loads the bundles named, or the embedded default.
    pub fn load(&self) -> Result<Vec<Bundle>> {
        if self.bundles.is_empty() {
            return Ok(vec![palisade::default_bundle().context("loading the built-in pci-dss bundle")?]);
        }
        self.bundles.iter().map(|b| Bundle::from_dir(b).with_context(|| format!("loading bundle {b}"))).collect()
    }

    /// Loads and compiles.
    pub fn engine(&self, mode: Mode) -> Result<Engine> {
        let mut builder = Engine::builder().mode(mode).rego_timeout(Duration::from_millis(self.rego_timeout));
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
