//! `palisade test`.

use std::io::Write;

use anyhow::{Context, Result};
use palisade::Bundle;
use palisade::tester::{self, TestOptions, output};
use regex::Regex;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle directories, or Gatekeeper `gator verify` suites: a Suite file, a
    /// directory of them, or DIR/... to search subdirectories (default: the current directory).
    #[arg(value_name = "BUNDLE|SUITES")]
    bundles: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
    /// Only run cases whose `policy/case name` matches this regex.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// List passing cases too.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Pretty,
    Json,
    Junit,
}

pub fn run(args: Args) -> Result<Outcome> {
    let filter = args.filter.as_deref().map(Regex::new).transpose().context("--filter is not a valid regex")?;
    let options = TestOptions { filter };
    let dirs = if args.bundles.is_empty() { vec![".".to_string()] } else { args.bundles };
    let mut reports = Vec::new();
    for dir in &dirs {
        let path = std::path::Path::new(dir);
        if path.join("bundle.toml").is_file() {
            let bundle = Bundle::from_dir(dir).with_context(|| format!("loading bundle {dir}"))?;
            reports.push(tester::run_bundle(&bundle, &options).with_context(|| format!("testing bundle {dir}"))?);
            continue;
        }
        let suites = palisade::gatekeeper::suite::suite_files(dir).with_context(|| format!("reading {dir}"))?;
        if suites.is_empty() {
            anyhow::bail!(
                "{dir}: no bundle.toml and no Gatekeeper Suite file (use {dir}/... to search subdirectories)"
            );
        }
        for s in suites {
            reports.push(
                palisade::gatekeeper::suite::run_suite(&s).with_context(|| format!("running suite {}", s.display()))?,
            );
        }
    }
    let text = match args.output {
        OutputFormat::Pretty => output::pretty(&reports, args.verbose),
        OutputFormat::Json => output::json(&reports),
        OutputFormat::Junit => output::junit(&reports),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(if reports.iter().all(|r| r.passed()) { Outcome::Ok } else { Outcome::Denied })
}
