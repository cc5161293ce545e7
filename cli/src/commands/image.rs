//! `palisade image ...`: container images in registries.

use std::path::PathBuf;

use anyhow::Result;
use palisade::oci::signature::{CosignKey, Verdict, verify_image};

use crate::Outcome;
use crate::bundles::RegistryArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check an image's cosign signatures: exit 0 when one of the keys signed the digest
    /// the reference names now, 1 when unsigned, signed by another key or for another
    /// digest (a moved tag), 2 when the registry cannot answer.
    Verify {
        /// The image, HOST[:PORT]/REPO:TAG or …@sha256:DIGEST.
        image: String,
        /// A trusted cosign public key (PEM, as `cosign generate-key-pair` writes; repeatable).
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

pub fn run(cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Verify { image, keys, registry } => {
            let keys = keys.iter().map(|k| CosignKey::from_pem_file(k)).collect::<palisade::Result<Vec<_>>>()?;
            match verify_image(&image, &keys, &registry.options())? {
                Verdict::Signed { digest, key } => {
                    println!("signed: {image} ({digest}) by {key}");
                    Ok(Outcome::Ok)
                }
                Verdict::Unsigned { digest } => {
                    println!("unsigned: {image} ({digest}) has no cosign signature");
                    Ok(Outcome::Denied)
                }
                Verdict::Untrusted { digest, reasons } => {
                    println!("not trusted: {image} ({digest}): {}", reasons.join("; "));
                    Ok(Outcome::Denied)
                }
                v => {
                    println!("not trusted: {image}: {v:?}");
                    Ok(Outcome::Denied)
                }
            }
        }
    }
}
