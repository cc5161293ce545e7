//! `palisade bundle ...`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use palisade::bundle::{LoadOptions, pack, sign};
use palisade::{Bundle, Engine};

use crate::Outcome;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a bundle: manifest, referenced files, and compile every policy.
    Check {
        /// Bundle directory.
        dir: String,
    },
    /// Pack a bundle directory into a reproducible NAME-VERSION.tar.gz with a digest manifest.
    Pack {
        /// Bundle directory.
        dir: String,
        /// Output file (default: NAME-VERSION.tar.gz in the current directory).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Re-pin the sha256 of the bundle's WebAssembly plugins after rebuilding them.
    Pin {
        /// Bundle directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Generate an ed25519 signing key pair: PREFIX.key (PKCS#8 PEM) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(short, long, value_name = "PREFIX", default_value = "palisade-signing")]
        output: String,
    },
    /// Sign a packed bundle: adds this key's signature to FILE.sig (other keys' stay).
    Sign {
        /// The packed bundle (.tar.gz).
        file: PathBuf,
        /// The private key (PEM).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Verify a packed bundle's files and its signature against public keys.
    Verify {
        /// The packed bundle (.tar.gz).
        file: PathBuf,
        /// Trusted public keys (PEM; repeatable); passes if any of them signed.
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Push a bundle to an OCI registry: a directory (packed on the way) or a packed
    /// archive, with its signature (FILE.sig) when signed. Prints the manifest digest.
    Push {
        /// Bundle directory or packed archive (.tar.gz).
        bundle: PathBuf,
        /// HOST[:PORT]/REPO:TAG, e.g. 127.0.0.1:5000/policies/pci-dss:1.0.0.
        reference: String,
        #[command(flatten)]
        registry: crate::bundles::RegistryArgs,
    },
    /// Pull a bundle from an OCI registry into the cache ($XDG_CACHE_HOME/palisade/oci),
    /// checking every digest; prints the archive's path, or copies it (and its .sig) into DIR.
    Pull {
        /// HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:DIGEST.
        reference: String,
        /// Copy the archive and its signature into this directory.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Refuse the bundle unless one of these public keys (PEM; repeatable) signed it.
        #[arg(long = "trusted-key", value_name = "FILE")]
        trusted_keys: Vec<PathBuf>,
        #[command(flatten)]
        registry: crate::bundles::RegistryArgs,
    },
    /// Print a bundle's name, version, engine requirement, dependencies, digest, signatures and policies.
    Inspect {
        /// Bundle directory or packed archive.
        bundle: PathBuf,
    },
    /// Print the bundle's rule table (Markdown), or update it in a README between the
    /// `palisade bundle doc` markers.
    Doc {
        /// Bundle directory.
        dir: String,
        /// Rewrite the table in this file instead of printing it.
        #[arg(long, value_name = "README")]
        update: Option<String>,
    },
}

pub fn run(cmd: Command) -> Result<Outcome> {
    match cmd {
        Command::Check { dir } => {
            let bundle = Bundle::from_dir(&dir).with_context(|| format!("checking bundle {dir}"))?;
            let engine =
                Engine::builder().bundle(bundle.clone()).build().with_context(|| format!("checking bundle {dir}"))?;
            println!(
                "ok: bundle {} {} ({}): {} policies compiled, {} test files",
                bundle.name(),
                bundle.version(),
                bundle.digest(),
                engine.policies().len(),
                bundle.test_files().count()
            );
            Ok(Outcome::Ok)
        }
        Command::Pin { dirs } => {
            for dir in &dirs {
                let changed = palisade::scaffold::pin_plugins(dir)?;
                for p in &changed {
                    let short = |h: &str| h.get(..12).unwrap_or(h).to_string();
                    let old = if p.old.is_empty() { "(none)".to_string() } else { short(&p.old) };
                    println!("{}: {}: sha256 {old} -> {}", dir.display(), p.policy, short(&p.new));
                }
                if changed.is_empty() {
                    println!("{}: every plugin pin is up to date", dir.display());
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Pack { dir, output } => {
            let bundle = Bundle::from_dir(&dir).with_context(|| format!("loading bundle {dir}"))?;
            let bytes = pack::pack(&bundle)?;
            let out = output.unwrap_or_else(|| PathBuf::from(pack::file_name(&bundle)));
            std::fs::write(&out, &bytes).with_context(|| format!("{}: cannot write", out.display()))?;
            println!(
                "{} ({} bytes, {} files, bundle digest {})",
                out.display(),
                bytes.len(),
                bundle.paths().count(),
                bundle.digest()
            );
            Ok(Outcome::Ok)
        }
        Command::Push { bundle, reference, registry } => {
            let pushed = palisade::oci::push(&bundle, &reference, &registry.options())?;
            let signed = if pushed.signed { ", with its signature" } else { ", unsigned" };
            println!("pushed {} to {reference} ({}{signed})", bundle.display(), pushed.digest);
            Ok(Outcome::Ok)
        }
        Command::Pull { reference, output, trusted_keys, registry } => {
            pull(&reference, output, &trusted_keys, &registry)
        }
        Command::Keygen { output } => {
            let (private, public, id) = sign::keygen()?;
            let (key, pubf) = (format!("{output}.key"), format!("{output}.pub"));
            write_private(Path::new(&key), &private)?;
            std::fs::write(&pubf, public).with_context(|| format!("{pubf}: cannot write"))?;
            println!("key id {id}: private key {key} (keep it secret), public key {pubf}");
            Ok(Outcome::Ok)
        }
        Command::Sign { file, key } => {
            let secret = sign::SecretKey::from_pem_file(&key)?;
            let bytes = std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let unpacked = pack::unpack(&file, &bytes, pack::Limits::default())?;
            let sig = sign::sign_archive(&file, &unpacked.manifest_bytes, &secret)?;
            println!("signed {} with key {} -> {}", file.display(), secret.id, sig.display());
            Ok(Outcome::Ok)
        }
        Command::Verify { file, keys } => {
            let mut options = LoadOptions::default();
            for k in &keys {
                options.trusted_keys.push(sign::TrustedKey::from_pem_file(k)?);
            }
            match Bundle::from_archive(&file, &options) {
                Ok(b) => {
                    println!(
                        "OK: {} {} ({}), every file matches its digest, signed by trusted key {}",
                        b.name(),
                        b.version(),
                        b.digest(),
                        b.signer().unwrap_or("?")
                    );
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    Ok(Outcome::Denied)
                }
            }
        }
        Command::Inspect { bundle } => {
            let b = Bundle::load(&bundle, &LoadOptions::default())
                .with_context(|| format!("loading {}", bundle.display()))?;
            let m = b.manifest();
            println!("name:         {}", b.name());
            println!("version:      {}", b.version());
            println!("engine:       {}", m.bundle.engine);
            println!("description:  {}", m.bundle.description);
            println!("digest:       {}", b.digest());
            let deps: Vec<String> = m.dependencies.iter().map(|(n, r)| format!("{n} {r}")).collect();
            println!("dependencies: {}", if deps.is_empty() { "none".to_string() } else { deps.join(", ") });
            if b.is_packed() {
                match sign::read_signatures(&sign::sig_path(&bundle))? {
                    Some(f) if !f.signatures.is_empty() => {
                        let ids: Vec<&str> = f.signatures.iter().map(|s| s.key_id.as_str()).collect();
                        println!("signatures:   {} (key ids; verify with palisade bundle verify)", ids.join(", "));
                    }
                    _ => println!("signatures:   none"),
                }
            } else {
                println!("signatures:   none (a directory; pack and sign it to distribute)");
            }
            println!("policies:     {}", b.policies().len());
            for p in b.policies() {
                let backend = match (&p.rego, &p.wasm) {
                    (Some(_), Some(_)) => "rego+wasm",
                    (Some(_), None) => "rego",
                    _ => "wasm",
                };
                println!(
                    "  {:32} {:10} {:6} {:9} {}",
                    p.id,
                    backend,
                    p.action.to_string(),
                    p.severity.to_string(),
                    p.requirements.join(", ")
                );
            }
            Ok(Outcome::Ok)
        }
        Command::Doc { dir, update } => {
            let bundle = Bundle::from_dir(&dir).with_context(|| format!("loading bundle {dir}"))?;
            let table = palisade::bundle::doc::rule_table(&bundle);
            match update {
                None => print!("{table}"),
                Some(file) => {
                    let text = std::fs::read_to_string(&file).with_context(|| format!("{file}: cannot read"))?;
                    let new = palisade::bundle::doc::replace_section(&text, &table).with_context(|| {
                        format!(
                            "{file}: no generated section; add the lines {:?} and {:?} where the table goes",
                            palisade::bundle::doc::BEGIN,
                            palisade::bundle::doc::END
                        )
                    })?;
                    std::fs::write(&file, new).with_context(|| format!("{file}: cannot write"))?;
                    eprintln!(
                        "{file}: rule table of {} {} updated ({} policies)",
                        bundle.name(),
                        bundle.version(),
                        bundle.policies().len()
                    );
                }
            }
            Ok(Outcome::Ok)
        }
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// `bundle pull`: into the cache, verified when keys are given, optionally copied out.
fn pull(
    reference: &str,
    output: Option<PathBuf>,
    keys: &[PathBuf],
    registry: &crate::bundles::RegistryArgs,
) -> Result<Outcome> {
    let pulled = palisade::oci::pull(reference, &registry.options())?;
    let mut options = palisade::bundle::LoadOptions::default();
    for k in keys {
        options.trusted_keys.push(sign::TrustedKey::from_pem_file(k)?);
    }
    let bundle = Bundle::load(&pulled.archive, &options)?;
    let mut path = pulled.archive.clone();
    if let Some(dir) = output {
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let name = pulled.archive.file_name().map(PathBuf::from).unwrap_or_default();
        path = dir.join(&name);
        std::fs::copy(&pulled.archive, &path).with_context(|| format!("{}: cannot write", path.display()))?;
        let sig = sign::sig_path(&pulled.archive);
        if sig.exists() {
            let to = sign::sig_path(&path);
            std::fs::copy(&sig, &to).with_context(|| format!("{}: cannot write", to.display()))?;
        }
    }
    let signer = bundle.signer().map(|k| format!(", signed by {k}")).unwrap_or_default();
    println!("{} {} ({}{signer}): {}", bundle.name(), bundle.version(), pulled.digest, path.display());
    Ok(Outcome::Ok)
}
