//! `palisade eval`.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use palisade::admission::Review;

use crate::Outcome;
use crate::bundles::BundleArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// AdmissionReview (admission.k8s.io/v1 or v1beta1, answered in the same version) or bare
    /// AdmissionRequest, as JSON or YAML; `-` for stdin.
    #[arg(value_name = "FILE")]
    file: String,
    #[command(flatten)]
    bundles: BundleArgs,
}

pub fn run(args: Args) -> Result<Outcome> {
    let engine = args.bundles.engine(palisade::Mode::Admission)?;
    let text = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("{}: cannot read", args.file))?
    };
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", args.file))?
    } else {
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}: invalid YAML", args.file))?
    };
    let review = Review::from_value(value, true).with_context(|| args.file.clone())?;
    let decision = engine.evaluate(&review.input);
    let out = review.respond(&decision);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", serde_json::to_string_pretty(&out)?)?;
    Ok(if decision.allowed { Outcome::Ok } else { Outcome::Denied })
}
