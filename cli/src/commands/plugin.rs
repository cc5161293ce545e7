//! `palisade plugin inspect|check`.

use anyhow::{Context, Result};
use palisade::conformance::plugin::{self as check, Plugin};
use palisade::wasm::WasmOptions;

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a plugin's metadata, ABI version, size and sha256.
    Inspect {
        /// The plugin (.wasm component).
        file: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a conformance pass on a (third-party) plugin; exit 0 only if every check passes.
    Check {
        /// The plugin (.wasm component).
        file: String,
        /// Settings to validate and evaluate with (JSON object).
        #[arg(long, default_value = "{}")]
        settings: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Pretty)]
        output: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Pretty,
    Json,
}

pub fn run(cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Inspect { file, json } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{file}: cannot read"))?;
            let plugin = Plugin::load(&file, &bytes, &serde_json::json!({}), WasmOptions::default())?;
            let info = plugin.info();
            if json {
                let v = serde_json::json!({"file": file, "size": plugin.size(), "sha256": plugin.sha256(), "metadata": info});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("file:            {file}");
                println!("name:            {}", info.name);
                println!("version:         {}", info.version);
                println!("description:     {}", info.description);
                println!("abi version:     {}", info.abi_version);
                println!("kinds:           {}", info.kinds.join(", "));
                println!("requirements:    {}", info.requirements.join(", "));
                println!("settings schema: {}", info.settings_schema.as_deref().unwrap_or("(none)"));
                println!("size:            {} bytes", plugin.size());
                println!("sha256:          {}", plugin.sha256());
            }
            Ok(Outcome::Ok)
        }
        Command::Check { file, settings, output } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{file}: cannot read"))?;
            let settings: serde_json::Value = serde_json::from_str(&settings).context("--settings must be JSON")?;
            let report = check::check(&file, &bytes, &settings, WasmOptions::default());
            match output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Pretty => {
                    let name =
                        report.plugin.as_ref().map(|p| format!("{} {}", p.name, p.version)).unwrap_or(file.clone());
                    println!("plugin check: {name} (sha256 {})", report.sha256);
                    let width = report.checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
                    for c in &report.checks {
                        let mark = if c.passed { "PASS" } else { "FAIL" };
                        println!("  {mark}  {:width$}  {}", c.check, c.detail);
                    }
                    let failed = report.checks.iter().filter(|c| !c.passed).count();
                    println!(
                        "{}",
                        if failed == 0 {
                            "ok: every check passed".to_string()
                        } else {
                            format!("FAILED: {failed} check(s) failed")
                        }
                    );
                }
            }
            Ok(if report.passed() { Outcome::Ok } else { Outcome::Denied })
        }
    }
}
