//! `palisade exception sign|verify`: ed25519 signatures on PolicyException documents,
//! with the bundle signing keys (`palisade bundle keygen`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use palisade::bundle::sign::{SecretKey, TrustedKey};
use palisade::documents::Documents;
use palisade::exception::sign;

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Sign every PolicyException of FILE: adds this key's signature to each one's
    /// `palisade.dev/signature` annotation (other keys' stay) and prints the documents
    /// as YAML, or rewrites FILE with --in-place (comments are not kept).
    Sign {
        file: String,
        /// PKCS#8 PEM private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Rewrite FILE instead of printing.
        #[arg(long)]
        in_place: bool,
    },
    /// Check that a trusted key signed every PolicyException of FILE and that none was
    /// altered since (exit 1 otherwise).
    Verify {
        file: String,
        /// SPKI PEM public key (repeatable).
        #[arg(long = "trusted-key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
    },
}

fn read(file: &str) -> Result<Vec<palisade::documents::Document>> {
    let mut docs = Documents::default();
    docs.read_path(file);
    if let Some(e) = docs.errors.into_iter().next() {
        return Err(e.into());
    }
    Ok(docs.documents)
}

pub fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Sign { file, key, in_place } => {
            let secret = SecretKey::from_pem_file(&key)?;
            let mut out = String::new();
            for mut d in read(&file)? {
                sign::sign(&mut d.value, &secret).with_context(|| format!("{file}: document {}", d.source.document))?;
                out.push_str("---\n");
                out.push_str(&serde_yaml_ng::to_string(&d.value)?);
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            if in_place {
                std::fs::write(&file, out).with_context(|| format!("{file}: cannot write"))?;
                eprintln!("palisade: signed {file} with key {}", secret.id);
            } else {
                print!("{out}");
            }
            Ok(Outcome::Ok)
        }
        Command::Verify { file, keys } => {
            let trusted = keys.iter().map(|k| TrustedKey::from_pem_file(k)).collect::<Result<Vec<_>, _>>()?;
            let mut failed = false;
            for d in read(&file)? {
                let name = d.value.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("(unnamed)");
                match sign::verify(&d.value, &trusted) {
                    Ok(id) => println!("OK: {name} ({file} document {}) signed by trusted key {id}", d.source.document),
                    Err(why) => {
                        failed = true;
                        println!("FAILED: {name} ({file} document {}): {why}", d.source.document);
                    }
                }
            }
            Ok(if failed { Outcome::Denied } else { Outcome::Ok })
        }
    }
}
