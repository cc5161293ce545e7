//! `palisade report`.

use std::io::Write;

use anyhow::{Context, Result};
use palisade::documents::Documents;
use palisade::report::evidence;
use palisade::scan::{self, ScanOptions};

use crate::Outcome;
use crate::bundles::BundleArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories of manifests (the whole platform, Namespaces included); `-` for stdin.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    #[command(flatten)]
    bundles: BundleArgs,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,
    /// Namespace for namespaced objects that do not set one.
    #[arg(short, long)]
    namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Markdown,
    Html,
}

pub fn run(args: Args) -> Result<Outcome> {
    let engine = args.bundles.engine(palisade::Mode::Scan)?;
    let docs = Documents::from_paths(&args.paths);
    let namespaces: Vec<serde_json::Value> =
        docs.documents.iter().filter(|d| d.value["kind"] == "Namespace").map(|d| d.value.clone()).collect();
    let options = ScanOptions { default_namespace: args.namespace.clone(), ..Default::default() };
    let mut result = scan::scan(&engine, docs.documents, &options, None)?;
    result.errors.splice(0..0, docs.errors);
    for e in &result.errors {
        eprintln!("palisade: {e}");
    }
    let refs: Vec<&serde_json::Value> = namespaces.iter().collect();
    let report = evidence::build(&result, engine.policies(), &refs);
    let text = match args.format {
        Format::Markdown => evidence::markdown(&report),
        Format::Html => evidence::html(&report),
    };
    match &args.output {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("{file}: cannot write"))?;
            eprintln!("palisade: evidence report written to {file}");
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    if !result.errors.is_empty() {
        anyhow::bail!("{} input error(s): the report is incomplete", result.errors.len());
    }
    Ok(Outcome::Ok)
}
