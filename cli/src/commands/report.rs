//! `palisade report`.

use std::io::Write;

use anyhow::{Context, Result};
use palisade::Engine;
use palisade::cluster::audit::{self, AuditOptions};
use palisade::documents::Documents;
use palisade::exception::Exceptions;
use palisade::report::evidence;
use palisade::scan::{self, ScanOptions, ScanReport};
use serde_json::Value;

use crate::Outcome;
use crate::bundles::BundleArgs;
use crate::cluster::{ClusterArgs, runtime};
use crate::commands::scan::InputArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories of manifests (the whole platform, Namespaces included); `-` for stdin.
    #[arg(value_name = "PATH", conflicts_with = "cluster")]
    paths: Vec<String>,
    #[command(flatten)]
    bundles: BundleArgs,
    /// Report on the live cluster (what `palisade audit` lists) instead of files.
    #[arg(long)]
    cluster: bool,
    #[command(flatten)]
    connection: ClusterArgs,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,
    /// Namespace for namespaced objects that do not set one (with --cluster: report on
    /// this namespace only).
    #[arg(short, long)]
    namespace: Option<String>,
    #[command(flatten)]
    input: InputArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Markdown,
    Html,
}

pub fn run(args: Args) -> Result<Outcome> {
    let engine = args.bundles.engine(palisade::Mode::Scan)?;
    let (result, namespaces, exceptions) =
        if args.cluster { from_cluster(&args, &engine)? } else { from_files(&args, &engine)? };
    for e in &result.errors {
        eprintln!("palisade: {e}");
    }
    let refs: Vec<&Value> = namespaces.iter().collect();
    let mut report = evidence::build(&result, engine.policies(), &refs);
    if let Some(ex) = &exceptions {
        report = report.with_exceptions(ex, engine.policies(), &result);
    }
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

/// What the report is built from: the findings, the Namespace objects, and the
/// exceptions applied (with --cluster, the cluster's PolicyExceptions too).
type Findings = (ScanReport, Vec<Value>, Option<Exceptions>);

fn from_files(args: &Args, engine: &Engine) -> Result<Findings> {
    let docs = Documents::from_paths(&args.paths);
    args.input.check(&docs)?;
    let namespaces: Vec<Value> =
        docs.documents.iter().filter(|d| d.value["kind"] == "Namespace").map(|d| d.value.clone()).collect();
    let options = ScanOptions { default_namespace: args.namespace.clone(), ..Default::default() };
    let mut result = scan::scan(engine, docs.documents, &options, None)?;
    result.errors.splice(0..0, docs.errors);
    Ok((result, namespaces, engine.exceptions().cloned()))
}

fn from_cluster(args: &Args, engine: &Engine) -> Result<Findings> {
    let mut options = AuditOptions::default();
    options.namespace = args.namespace.clone();
    options.page_size = args.connection.page_size;
    let audit = runtime()?.block_on(async {
        let cluster = args.connection.connect().await?;
        anyhow::Ok(audit::audit(&cluster, engine, &options).await?)
    })?;
    crate::bundles::warn_expiring_in_cluster(engine.exceptions(), audit.exceptions.as_ref());
    Ok((audit.report, audit.namespaces, audit.exceptions))
}
