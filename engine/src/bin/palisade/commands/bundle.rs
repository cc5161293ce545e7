//! `palisade bundle ...`.

use anyhow::{Context, Result};
use palisade::{Bundle, Engine};

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a bundle: manifest, referenced files, and compile every policy.
    Check {
        /// Bundle directory.
        dir: String,
    },
}

pub fn run(cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Check { dir } => {
            let bundle = Bundle::from_dir(&dir).with_context(|| format!("checking bundle {dir}"))?;
            let engine =
                Engine::builder().bundle(bundle.clone()).build().with_context(|| format!("checking bundle {dir}"))?;
            println!(
                "ok: bundle {} {} ({}): {} policies compiled, {} test files",
                bundle.name(),
                bundle.version(),
                bundle.digest(),
                engine.policies().len(),
                bundle.test_files().count()
            );
            Ok(Outcome::Ok)
        }
    }
}
