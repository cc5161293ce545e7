//! `palisade export vap`: a bundle's CEL policies as ValidatingAdmissionPolicies and
//! bindings (and their parameter objects) for the API server, as multi-document YAML.

use anyhow::{Context, Result};

use crate::Outcome;
use crate::bundles::BundleArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write the CEL policies of the bundles as ValidatingAdmissionPolicies, bindings and
    /// parameter objects (admissionregistration.k8s.io/v1) to stdout; policies without a
    /// CEL implementation are named on stderr and left out.
    Vap(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    bundles: BundleArgs,
}

pub fn run(command: Command) -> Result<Outcome> {
    let Command::Vap(args) = command;
    let mut out = String::new();
    for bundle in args.bundles.sources().load()? {
        let (objects, skipped) = palisade::cel::export::export(&bundle)?;
        if !skipped.is_empty() {
            eprintln!(
                "palisade: bundle {}: {} policies have no CEL implementation and are not exported: {}",
                bundle.name(),
                skipped.len(),
                skipped.join(", ")
            );
        }
        for o in &objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(o).context("writing YAML")?);
        }
    }
    print!("{out}");
    Ok(Outcome::Ok)
}
