//! `palisade test`: run bundles' cases (or gator suites), optionally with Rego line
//! coverage, or in a watch loop that re-runs a bundle's tests when its files change.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{EventKind, RecursiveMode};
use palisade::Bundle;
use palisade::coverage::Coverage;
use palisade::sources::Sources;
use palisade::tester::{self, BundleReport, TestOptions, output};
use regex::Regex;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle directories, packed bundles (.tar.gz), oci://HOST/REPO:TAG (or
    /// @sha256:…) pulled from a registry, vap:PATH (ValidatingAdmissionPolicies and
    /// bindings, with cases in PATH/tests), or Gatekeeper `gator verify` suites: a
    /// Suite file, a directory of them, or DIR/... to search subdirectories (default:
    /// the current directory).
    #[arg(value_name = "BUNDLE|SUITES")]
    bundles: Vec<String>,
    /// Only load packed or pulled bundles signed by one of these ed25519 public keys
    /// (PEM; repeatable).
    #[arg(long = "trusted-key", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    #[command(flatten)]
    registry: crate::bundles::RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
    /// Only run cases whose `policy/case name` matches this regex.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// List passing cases too.
    #[arg(short, long)]
    verbose: bool,
    /// Report Rego line coverage per module, with the uncovered lines (Rego runs on
    /// the interpreter, which tracks lines).
    #[arg(long)]
    coverage: bool,
    /// With --coverage: fail (exit 1) when total line coverage is below N percent.
    #[arg(long, value_name = "N", requires = "coverage")]
    threshold: Option<f64>,
    /// Re-run a bundle's tests whenever one of its files changes (Ctrl-C to stop).
    #[arg(long, conflicts_with = "coverage")]
    watch: bool,
    /// PolicyException documents applied to every case (`expect.waived` counts what
    /// they waive).
    #[command(flatten)]
    exceptions: crate::bundles::ExceptionArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Pretty,
    Json,
    Junit,
}

/// What to test: a bundle directory or a gator suite location.
enum Target {
    Bundle(String),
    /// A packed archive or an `oci://` reference, loaded as `-b` loads it.
    Packed(Sources),
    Vap(String),
    Suites(String),
}

pub fn run(args: Args) -> Result<Outcome> {
    let filter = args.filter.as_deref().map(Regex::new).transpose().context("--filter is not a valid regex")?;
    let dirs = if args.bundles.is_empty() { vec![".".to_string()] } else { args.bundles.clone() };
    let targets: Vec<Target> = dirs
        .iter()
        .map(|d| {
            if let Some(path) = d.strip_prefix("vap:") {
                Target::Vap(path.to_string())
            } else if d.starts_with("oci://") || d.ends_with(".tar.gz") {
                Target::Packed(Sources {
                    bundles: vec![d.clone()],
                    trusted_keys: args.trusted_keys.clone(),
                    plain_http: args.registry.plain_http,
                    registry_ca: args.registry.registry_ca.clone(),
                    ..Default::default()
                })
            } else if Path::new(d).join("bundle.toml").is_file() {
                Target::Bundle(d.clone())
            } else {
                Target::Suites(d.clone())
            }
        })
        .collect();
    if args.watch {
        if let Some(Target::Packed(s)) = targets.iter().find(|t| matches!(t, Target::Packed(_))) {
            anyhow::bail!("--watch needs bundle directories or suites; {} cannot be watched", s.bundles[0]);
        }
        return watch(&args, filter, &targets);
    }
    // Image-signature checks inside the cases trust the registry CA given here too.
    palisade::oci::builtin::set_registry_ca(args.registry.registry_ca.clone());
    let coverage = args.coverage.then(Coverage::new);
    let options = TestOptions { filter, coverage: coverage.clone(), ..options(&args)? };
    let mut reports = Vec::new();
    for t in &targets {
        reports.extend(run_target(t, &options)?);
    }
    print(&args, &reports)?;
    let mut passed = reports.iter().all(BundleReport::passed);
    if let Some(c) = coverage {
        let report = c.report();
        // The coverage table is a diagnostic next to the results: stderr for machine formats.
        match args.output {
            OutputFormat::Pretty => print!("{}", report.pretty()),
            _ => eprint!("{}", report.pretty()),
        }
        if let Some(min) = args.threshold
            && report.percent < min
        {
            eprintln!("palisade: coverage {:.1}% is below the threshold of {min}%", report.percent);
            passed = false;
        }
    }
    Ok(if passed { Outcome::Ok } else { Outcome::Denied })
}

fn run_target(target: &Target, options: &TestOptions) -> Result<Vec<BundleReport>> {
    match target {
        Target::Bundle(dir) => {
            let bundle = Bundle::from_dir(dir).with_context(|| format!("loading bundle {dir}"))?;
            Ok(vec![tester::run_bundle(&bundle, options).with_context(|| format!("testing bundle {dir}"))?])
        }
        Target::Packed(sources) => {
            let name = &sources.bundles[0];
            // The loaded set holds the bundle and its dependencies: test the bundle named.
            let loaded = sources.load().with_context(|| format!("loading bundle {name}"))?;
            let wanted = name.trim_start_matches("oci://");
            let named = loaded.iter().find(|b| b.origin().display().to_string().contains(wanted));
            let alone = (loaded.len() == 1).then(|| &loaded[0]);
            let bundle = named.or(alone).with_context(|| format!("{name}: not among the bundles loaded"))?;
            Ok(vec![tester::run_bundle(bundle, options).with_context(|| format!("testing bundle {name}"))?])
        }
        Target::Vap(path) => {
            let bundle = palisade::cel::source::load(Path::new(path)).with_context(|| format!("loading vap:{path}"))?;
            Ok(vec![tester::run_bundle(&bundle, options).with_context(|| format!("testing vap:{path}"))?])
        }
        Target::Suites(dir) => {
            let suites = palisade::gatekeeper::suite::suite_files(dir).with_context(|| format!("reading {dir}"))?;
            if suites.is_empty() {
                anyhow::bail!(
                    "{dir}: no bundle.toml and no Gatekeeper Suite file (use {dir}/... to search subdirectories)"
                );
            }
            suites
                .iter()
                .map(|s| {
                    palisade::gatekeeper::suite::run_suite(s).with_context(|| format!("running suite {}", s.display()))
                })
                .collect()
        }
    }
}

fn print(args: &Args, reports: &[BundleReport]) -> Result<()> {
    for warning in reports.iter().flat_map(|r| &r.expiring) {
        eprintln!("palisade: warning: {warning}");
    }
    let text = match args.output {
        OutputFormat::Pretty => output::pretty(reports, args.verbose),
        OutputFormat::Json => output::json(reports),
        OutputFormat::Junit => output::junit(reports),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Runs every target once, then re-runs the target whose files changed, forever.
fn watch(args: &Args, filter: Option<Regex>, targets: &[Target]) -> Result<Outcome> {
    let roots: Vec<PathBuf> = targets
        .iter()
        .map(|t| match t {
            Target::Bundle(d) => PathBuf::from(d),
            Target::Packed(s) => PathBuf::from(&s.bundles[0]),
            Target::Vap(d) => PathBuf::from(d),
            Target::Suites(d) => PathBuf::from(d.trim_end_matches("/...")),
        })
        .map(|p| std::fs::canonicalize(&p).with_context(|| format!("{}: cannot watch", p.display())))
        .collect::<Result<_>>()?;
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(200),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            if let Ok(events) = res {
                for e in events.iter().filter(|e| !matches!(e.kind, EventKind::Access(_))) {
                    for p in &e.paths {
                        let _ = tx.send(p.clone());
                    }
                }
            }
        },
    )
    .context("cannot watch for changes")?;
    for r in &roots {
        debouncer.watch(r, RecursiveMode::Recursive).with_context(|| format!("{}: cannot watch", r.display()))?;
    }
    let options = TestOptions { filter, ..options(args)? };
    let terminal = std::io::stdout().is_terminal();
    let run = |which: &[usize]| {
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        for &i in which {
            match run_target(&targets[i], &options) {
                Ok(reports) => {
                    if let Err(e) = print(args, &reports) {
                        eprintln!("palisade: {e:#}");
                    }
                }
                // A half-written file is normal while editing: report it and keep watching.
                Err(e) => eprintln!("palisade: {e:#}"),
            }
        }
        eprintln!("palisade: watching {} for changes (Ctrl-C to stop)", display(&roots, which));
    };
    run(&(0..targets.len()).collect::<Vec<_>>());
    while let Ok(first) = rx.recv() {
        // Collect the burst of events an editor's save produces, then re-run each affected target once.
        let mut changed = vec![first];
        while let Ok(p) = rx.recv_timeout(Duration::from_millis(50)) {
            changed.push(p);
        }
        let affected: Vec<usize> =
            (0..roots.len()).filter(|&i| changed.iter().any(|p| p.starts_with(&roots[i]))).collect();
        if !affected.is_empty() {
            run(&affected);
        }
    }
    Ok(Outcome::Ok)
}

fn display(roots: &[PathBuf], which: &[usize]) -> String {
    which.iter().map(|&i| roots[i].display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The options every run shares: the exceptions applied to each case.
fn options(args: &Args) -> Result<TestOptions> {
    Ok(TestOptions {
        exceptions: args.exceptions.exception_paths.clone(),
        exception_options: args.exceptions.options()?,
        ..Default::default()
    })
}
