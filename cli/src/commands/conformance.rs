//! `palisade conformance`: is this bundle fit to go near a cluster?

use std::io::Write;

use anyhow::Result;
use palisade::Bundle;
use palisade::bundle::LoadOptions;
use palisade::conformance::{self, Options, Report};

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle: a directory with bundle.toml, or a packed .tar.gz.
    bundle: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Pretty)]
    output: Format,
    /// List every check, not only the problems.
    #[arg(short, long)]
    verbose: bool,
    /// Evaluations of each case for the determinism and budget checks (at least 2).
    #[arg(long, default_value_t = 3, value_name = "N")]
    repeat: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Pretty,
    Json,
    Junit,
}

pub fn run(args: Args) -> Result<Outcome> {
    let report = match Bundle::load(&args.bundle, &LoadOptions::default()) {
        // A manifest that does not load is a conformance failure, not a usage error.
        Err(e) => Report::unloadable(&args.bundle, &e),
        Ok(bundle) => {
            let options = Options { repeat: args.repeat, ..Default::default() };
            conformance::check_bundle(&bundle, &options)?
        }
    };
    let text = match args.output {
        Format::Pretty => report.pretty(args.verbose),
        Format::Json => report.json(),
        Format::Junit => report.junit(),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(if report.passed() { Outcome::Ok } else { Outcome::Denied })
}
