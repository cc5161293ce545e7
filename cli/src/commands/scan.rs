//! `palisade scan`.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use palisade::Engine;
use palisade::documents::Documents;
use palisade::report::{self, Format};
use palisade::scan::{self, ScanOptions, ScanReport};

use crate::Outcome;
use crate::bundles::BundleArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories of YAML/JSON manifests; `-` (or nothing) reads stdin.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    #[command(flatten)]
    bundles: BundleArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// Namespace for namespaced objects that do not set one (like kubectl -n).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Objects added to the inventory and Namespace lookups without being evaluated
    /// (a cluster snapshot, `kubectl get -o yaml` output); repeatable.
    #[arg(long, value_name = "PATH")]
    inventory: Vec<String>,
    #[command(flatten)]
    input: InputArgs,
}

/// What to do about input paths that hold nothing (`scan`, `report`).
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Exit 2 when a path holds no manifests (an empty directory, no .yaml/.yml/.json
    /// files, an empty file); without it that is a warning.
    #[arg(long)]
    strict: bool,
}

impl InputArgs {
    /// Warns on stderr about every path that yielded nothing; an error with `--strict`.
    pub fn check(&self, docs: &Documents) -> Result<()> {
        for p in &docs.empty_paths {
            let what = if p == "-" { "standard input" } else { p };
            eprintln!("palisade: warning: {what}: no Kubernetes manifests found (wrong path?)");
        }
        if self.strict && !docs.empty_paths.is_empty() {
            anyhow::bail!("{} path(s) without manifests (--strict)", docs.empty_paths.len());
        }
        Ok(())
    }
}

/// How results are printed and when the command fails (`scan`, `audit`).
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
    /// Exit 1 on findings at or above this action.
    #[arg(long, value_enum, default_value_t = FailOn::Deny)]
    fail_on: FailOn,
    /// Disable colours in pretty output (also: NO_COLOR).
    #[arg(long)]
    no_color: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Pretty,
    Json,
    Jsonl,
    Sarif,
    Junit,
    PolicyReport,
    Openreports,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FailOn {
    Deny,
    Warn,
}

pub fn run(args: Args) -> Result<Outcome> {
    // The bundles compile while the files are read.
    let (engine, mut docs) = std::thread::scope(|s| {
        let engine = s.spawn(|| args.bundles.engine(palisade::Mode::Scan));
        let docs = Documents::from_paths(&args.paths);
        (engine.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), docs)
    });
    let engine = engine?;
    args.input.check(&docs)?;
    let total = docs.documents.len();
    let bar = (std::io::stderr().is_terminal() && total >= 200).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} scanning {pos}/{len} objects {wide_bar} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |n: usize| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
    };
    let mut inventory = Documents::default();
    for p in &args.inventory {
        inventory.read_path(p);
    }
    docs.errors.extend(inventory.errors);
    let options =
        ScanOptions { default_namespace: args.namespace.clone(), inventory: inventory.documents, ..Default::default() };
    let mut result = scan::scan(&engine, docs.documents, &options, Some(&progress))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.errors.splice(0..0, docs.errors);
    args.out.finish(&result, &engine, "results are incomplete")
}

impl OutputArgs {
    /// Prints the report, then its errors to stderr; an error when any input failed
    /// (the results are then incomplete), otherwise denied or not per `--fail-on`.
    pub fn finish(&self, result: &ScanReport, engine: &Engine, incomplete: &str) -> Result<Outcome> {
        let text = self.render(result, engine);
        std::io::stdout().write_all(text.as_bytes())?;
        if !result.errors.is_empty() {
            for e in &result.errors {
                eprintln!("palisade: {e}");
            }
            anyhow::bail!("{} input error(s): {incomplete}", result.errors.len());
        }
        let failed = result.denied() || (matches!(self.fail_on, FailOn::Warn) && result.warned());
        Ok(if failed { Outcome::Denied } else { Outcome::Ok })
    }

    fn render(&self, result: &ScanReport, engine: &Engine) -> String {
        let format = match self.output {
            OutputFormat::Pretty => Format::Pretty,
            OutputFormat::Json => Format::Json,
            OutputFormat::Jsonl => Format::Jsonl,
            OutputFormat::Sarif => Format::Sarif,
            OutputFormat::Junit => Format::Junit,
            OutputFormat::PolicyReport => Format::PolicyReport,
            OutputFormat::Openreports => Format::OpenReports,
        };
        let color = !self.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        report::render(result, engine.policies(), format, color)
    }
}
