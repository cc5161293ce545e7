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
        for b in self.load()? {
            builder = builder.bundle(b);
        }
        Ok(builder.build()?)
    }
}
