//! `palisade new policy`: scaffold a policy that passes its tests straight away.

use std::path::PathBuf;

use anyhow::{Context, Result};
use palisade::scaffold::{self, Implementation};
use palisade::tester::{self, TestOptions};

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a policy (module or plugin, manifest entry, schema, a passing and a failing case) to a bundle.
    Policy {
        /// The policy id (lowercase letters and digits, then also `-`, `_`, `.`).
        name: String,
        /// The bundle directory.
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// Write a Rust plugin (built to WebAssembly with cargo and pinned) instead of Rego.
        #[arg(long)]
        wasm: bool,
        /// With --wasm: the Palisade SDK crate (the `sdk/` directory of a checkout;
        /// found automatically above the bundle or where palisade was built).
        #[arg(long, value_name = "DIR", requires = "wasm")]
        sdk: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<Outcome> {
    let Command::Policy { name, bundle, wasm, sdk } = cmd;
    let implementation = if wasm {
        let sdk = match sdk {
            Some(s) => s,
            None => scaffold::find_sdk(&bundle)
                .context("cannot find the Palisade SDK: pass --sdk DIR (the sdk/ directory of a palisade checkout)")?,
        };
        eprintln!("palisade: building the plugin with cargo (the first build compiles its dependencies)");
        Implementation::Wasm { sdk }
    } else {
        Implementation::Rego
    };
    let created = scaffold::new_policy(&bundle, &name, &implementation)?;
    for f in &created.files {
        println!("wrote {}", bundle.join(f).display());
    }
    let loaded = palisade::Bundle::from_dir(&bundle)?;
    let filter = regex::Regex::new(&format!("^{}/", regex::escape(&name)))?;
    let report = tester::run_bundle(&loaded, &TestOptions { filter: Some(filter), ..Default::default() })?;
    let (passed, failed, errors) = report.counts();
    println!("tests of {name}: {passed} passed, {failed} failed, {errors} errors");
    if let Some(cmd) = &created.rebuild {
        println!("after editing the plugin, rebuild it: {cmd}");
    }
    println!("next: edit the policy and its cases, then run `palisade test {}`", bundle.display());
    Ok(if report.passed() { Outcome::Ok } else { Outcome::Denied })
}
