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
    /// Print the bundle's rule table (Markdown), or update it in a README between the
    /// `palisade bundle doc` markers.
    Doc {
        /// Bundle directory.
        dir: String,
        /// Rewrite the table in this file instead of printing it.
        #[arg(long, value_name = "README")]
        update: Option<String>,
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
        Command::Doc { dir, update } => {
            let bundle = Bundle::from_dir(&dir).with_context(|| format!("loading bundle {dir}"))?;
            let table = palisade::bundle::doc::rule_table(&bundle);
            match update {
                None => print!("{table}"),
                Some(file) => {
                    let text = std::fs::read_to_string(&file).with_context(|| format!("{file}: cannot read"))?;
                    let new = palisade::bundle::doc::replace_section(&text, &table).with_context(|| {
                        format!(
                            "{file}: no generated section; add the lines {:?} and {:?} where the table goes",
                            palisade::bundle::doc::BEGIN,
                            palisade::bundle::doc::END
                        )
                    })?;
                    std::fs::write(&file, new).with_context(|| format!("{file}: cannot write"))?;
                    eprintln!(
                        "{file}: rule table of {} {} updated ({} policies)",
                        bundle.name(),
                        bundle.version(),
                        bundle.policies().len()
                    );
                }
            }
            Ok(Outcome::Ok)
        }
    }
}
