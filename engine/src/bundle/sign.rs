//! Signing packed bundles with ed25519: keys are PEM (PKCS#8 private, SPKI public),
//! identified by a key id (the first 16 hex digits of the sha256 of the raw public
//! key). A detached signature file `BUNDLE.tar.gz.sig` holds one or more
//! signatures over the archive's digest manifest, so keys can rotate: verification
//! passes when any trusted key signed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A public key trusted to sign bundles.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key: VerifyingKey,
    /// Its key id.
    pub id: String,
}

/// A key that signs bundles.
#[derive(Debug, Clone)]
pub struct SecretKey {
    key: SigningKey,
    /// Its key id.
    pub id: String,
}

/// The key id of a public key.
fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.to_bytes())[..8])
}

/// One signature in a `.sig` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// Key id of the signer.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Base64 signature over the digest manifest.
    pub signature: String,
}

/// A detached signature file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The signatures, one per key.
    pub signatures: Vec<SignatureEntry>,
}

/// The signature file of an archive: `FILE.sig`.
pub fn sig_path(archive: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", archive.display()))
}

/// Generates a key pair; returns (private PEM, public PEM, key id).
pub fn keygen() -> Result<(String, String, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::input("keygen", format!("no system randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::input("keygen", e.to_string()))?;
    let public =
        key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| Error::input("keygen", e.to_string()))?;
    Ok((private.to_string(), public, key_id(&key.verifying_key())))
}

impl SecretKey {
    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem_file(path: &Path) -> Result<SecretKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            Error::input(path.display().to_string(), format!("not an ed25519 private key in PKCS#8 PEM: {e}"))
        })?;
        let id = key_id(&key.verifying_key());
        Ok(SecretKey { key, id })
    }

    /// Signs a digest manifest.
    pub fn sign(&self, manifest: &[u8]) -> SignatureEntry {
        let sig: Signature = self.key.sign(manifest);
        SignatureEntry {
            key_id: self.id.clone(),
            algorithm: "ed25519".into(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }
}

impl TrustedKey {
    /// Reads an SPKI PEM public key.
    pub fn from_pem_file(path: &Path) -> Result<TrustedKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read", e))?;
        let key = VerifyingKey::from_public_key_pem(&text)
            .map_err(|e| Error::input(path.display().to_string(), format!("not an ed25519 public key in PEM: {e}")))?;
        Ok(TrustedKey { id: key_id(&key), key })
    }

    fn verifies(&self, manifest: &[u8], entry: &SignatureEntry) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&entry.signature) else { return false };
        let Ok(sig) = Signature::from_slice(&bytes) else { return false };
        self.key.verify_strict(manifest, &sig).is_ok()
    }
}

/// Reads a signature file (`None` when it does not exist).
pub fn read_signatures(path: &Path) -> Result<Option<SignatureFile>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Integrity { path: path.to_path_buf(), message: format!("not a signature file: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "cannot read", e)),
    }
}

/// Adds (or replaces) `key`'s signature of an archive's manifest in its `.sig` file.
pub fn sign_archive(archive: &Path, manifest: &[u8], key: &SecretKey) -> Result<PathBuf> {
    let path = sig_path(archive);
    let mut file = read_signatures(&path)?.unwrap_or_default();
    file.signatures.retain(|s| s.key_id != key.id);
    file.signatures.push(key.sign(manifest));
    let text = serde_json::to_string_pretty(&file).map_err(|e| Error::input("signature", e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, "cannot write", e))?;
    Ok(path)
}

/// Checks that a trusted key signed `manifest`; returns the key id that did.
pub fn verify(
    archive: &Path,
    manifest: &[u8],
    signatures: Option<&SignatureFile>,
    trusted: &[TrustedKey],
) -> Result<String> {
    let fail = |message: String| Error::Integrity { path: archive.to_path_buf(), message };
    let Some(file) = signatures.filter(|f| !f.signatures.is_empty()) else {
        return Err(fail(format!(
            "unsigned: no signature file {} (sign it with `palisade bundle sign`)",
            sig_path(archive).display()
        )));
    };
    let mut unknown = Vec::new();
    for entry in &file.signatures {
        match trusted.iter().find(|k| k.id == entry.key_id) {
            Some(key) if entry.algorithm == "ed25519" && key.verifies(manifest, entry) => return Ok(key.id.clone()),
            Some(key) => {
                return Err(fail(format!(
                    "the signature by trusted key {} does not verify: the bundle was altered after it was signed",
                    key.id
                )));
            }
            None => unknown.push(entry.key_id.clone()),
        }
    }
    Err(fail(format!(
        "signed only by unknown key(s) {}; trusted: {}",
        unknown.join(", "),
        trusted.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
    )))
}
