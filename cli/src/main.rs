//! The `palisade` command: parses flags, calls the library, maps outcomes to exit
//! codes (0 allowed / passed, 1 denied / failed, 2 error). Results go to stdout,
//! diagnostics to stderr.

mod bundles;
mod cluster;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: regorus's VM and wasmtime's host side
/// allocate and free many small blocks per evaluation, and glibc's malloc spent a
/// tenth of an evaluation consolidating them (benches/README.md: 334 → 298 µs per
/// Deployment). The library leaves the choice to whoever links it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Policy engine for Kubernetes: Rego and WebAssembly policy bundles (PCI DSS first).
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate Kubernetes manifests (files, directories, or - for stdin) against bundles.
    Scan(commands::scan::Args),
    /// Evaluate what runs in a cluster (kubeconfig or in-cluster), like `scan` does files.
    Audit(commands::audit::Args),
    /// Run bundles' test cases (tests/*.yaml).
    Test(commands::test::Args),
    /// Check that a bundle is well formed, tested, deterministic and within budget.
    Conformance(commands::conformance::Args),
    /// Evaluate an AdmissionReview (v1 or v1beta1) or AdmissionRequest and print the response.
    Eval(commands::eval::Args),
    /// Work with bundles.
    #[command(subcommand)]
    Bundle(commands::bundle::Command),
    /// Container images in registries: `palisade image verify IMAGE --key cosign.pub`.
    #[command(subcommand)]
    Image(commands::image::Command),
    /// Inspect and check WebAssembly policy plugins.
    #[command(subcommand)]
    Plugin(commands::plugin::Command),
    /// Write a PCI DSS evidence report (Markdown or self-contained HTML) of a scan.
    Report(commands::report::Args),
    /// Run the validating admission webhook (HTTPS).
    Serve(commands::serve::Args),
    /// Print the ValidatingWebhookConfiguration for the loaded bundles.
    WebhookConfig(commands::webhook::Args),
    /// Scaffold new things: `palisade new policy NAME --bundle DIR [--wasm]`.
    #[command(subcommand)]
    New(commands::new::Command),
    /// Work with the decision log.
    #[command(subcommand)]
    Log(commands::log::Command),
    /// Sign and verify PolicyException documents.
    #[command(subcommand)]
    Exception(commands::exception::Command),
    /// Export a bundle's CEL policies for the API server: `palisade export vap -b BUNDLE`.
    #[command(subcommand)]
    Export(commands::export::Command),
}

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0: allowed, all tests passed.
    Ok,
    /// Exit 1: denied, tests failed.
    Denied,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(a) => commands::scan::run(a),
        Command::Audit(a) => commands::audit::run(a),
        Command::Test(a) => commands::test::run(a),
        Command::Conformance(a) => commands::conformance::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Bundle(c) => commands::bundle::run(c),
        Command::Image(c) => commands::image::run(c),
        Command::Plugin(c) => commands::plugin::run(c),
        Command::Report(a) => commands::report::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::WebhookConfig(a) => commands::webhook::run(a),
        Command::New(c) => commands::new::run(c),
        Command::Log(c) => commands::log::run(c),
        Command::Exception(c) => commands::exception::run(c),
        Command::Export(c) => commands::export::run(c),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Denied) => ExitCode::from(1),
        Err(e) => {
            eprintln!("palisade: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the
/// message already carries (palisade's errors include their source's text).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every subcommand (unique argument ids, valid defaults):
    /// without this a clash shows only when that subcommand is run.
    #[test]
    fn the_command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
