//! Cosign signatures of container images: "is this image signed by one of these keys?"
//!
//! The image reference is resolved to its manifest digest in the registry (a reference
//! by digest is taken as is); the signature artifact is the tag
//! `sha256-<hex>.sig` in the same repository, as `cosign sign --key` writes it: each
//! layer of type [`SIMPLE_SIGNING_MEDIA_TYPE`] is a simple-signing payload whose
//! `critical.image.docker-manifest-digest` names the image, with its ECDSA P-256
//! signature (ASN.1 DER, base64) in the layer annotation [`SIGNATURE_ANNOTATION`].
//! A signature counts when it verifies with a trusted key over the payload bytes *and*
//! the payload names the digest the reference resolves to now, so a tag that moved to
//! an unsigned image since signing is reported as unsigned.
//!
//! Keys are cosign's public keys (`cosign generate-key-pair` writes `cosign.pub`: an
//! ECDSA P-256 key, PEM `PUBLIC KEY`). Keyless signing (Fulcio certificates) and the
//! Rekor transparency log are not checked: a signature is trusted by its key alone.

use std::path::Path;

use oci_client::Reference;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use super::{RegistryOptions, auth_for, call, client, client_error, parse, registry_error};
use crate::error::{Error, Result};

/// Media type of a cosign simple-signing layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A trusted cosign public key.
#[derive(Debug, Clone)]
pub struct CosignKey {
    /// How reports name it (the file it came from).
    pub name: String,
    key: VerifyingKey,
}

impl CosignKey {
    /// Parses a PEM `PUBLIC KEY` (ECDSA P-256); `name` names it in results and errors.
    pub fn from_pem(pem: &str, name: &str) -> Result<CosignKey> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            Error::input(name.to_string(), format!("expected an ECDSA P-256 public key (PEM, as cosign writes): {e}"))
        })?;
        Ok(CosignKey { name: name.to_string(), key })
    }

    /// Reads and parses a public key file.
    pub fn from_pem_file(path: &Path) -> Result<CosignKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read public key", e))?;
        CosignKey::from_pem(&text, &path.display().to_string())
    }
}

/// What a registry says about an image's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// A trusted key signed the image's current digest.
    Signed {
        /// The manifest digest the reference resolves to.
        digest: String,
        /// The key that verified ([`CosignKey::name`]).
        key: String,
    },
    /// No signature artifact for this digest.
    Unsigned {
        /// The manifest digest the reference resolves to.
        digest: String,
    },
    /// Signatures exist, but none verifies with a trusted key for this digest.
    Untrusted {
        /// The manifest digest the reference resolves to.
        digest: String,
        /// Why each signature was refused.
        reasons: Vec<String>,
    },
}

impl Verdict {
    /// Whether the image is signed by a trusted key.
    pub fn is_signed(&self) -> bool {
        matches!(self, Verdict::Signed { .. })
    }
}

/// Checks `image`'s cosign signatures against `keys`.
pub fn verify_image(image: &str, keys: &[CosignKey], options: &RegistryOptions) -> Result<Verdict> {
    let target = parse(image, options)?;
    let client = client(options)?;
    let auth = auth_for(&target)?;
    let check = async {
        let digest = match target.digest() {
            Some(d) => d.to_string(),
            None => client
                .fetch_manifest_digest(&target, &auth)
                .await
                .map_err(|e| client_error(image, "resolve the tag", &e))?,
        };
        let tag = format!("{}.sig", digest.replace(':', "-"));
        let signatures = Reference::with_tag(target.registry().into(), target.repository().into(), tag);
        let manifest = match client.pull_image_manifest(&signatures, &auth).await {
            Ok((m, _)) => m,
            Err(e) if not_found(&e) => return Ok(Verdict::Unsigned { digest }),
            Err(e) => return Err(client_error(image, "read the signatures", &e)),
        };
        let mut reasons = Vec::new();
        for layer in manifest.layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE) {
            let Some(sig) = layer.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION)) else {
                reasons.push(format!("layer {} has no {SIGNATURE_ANNOTATION} annotation", layer.digest));
                continue;
            };
            let mut payload = Vec::new();
            client
                .pull_blob(&signatures, layer, &mut payload)
                .await
                .map_err(|e| registry_error(image, "read a signature", &e))?;
            match check(&payload, sig, &digest, keys) {
                Ok(key) => return Ok(Verdict::Signed { digest, key }),
                Err(why) => reasons.push(why),
            }
        }
        if reasons.is_empty() {
            reasons.push(format!("{} holds no {SIMPLE_SIGNING_MEDIA_TYPE} layer", signatures));
        }
        Ok(Verdict::Untrusted { digest, reasons })
    };
    call(image, "check the signature", options, check)
}

/// The name of the key that signed `payload`, which must name `digest`.
fn check(payload: &[u8], signature: &str, digest: &str, keys: &[CosignKey]) -> std::result::Result<String, String> {
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signature.trim())
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let sig = Signature::from_der(&der).map_err(|e| format!("the signature is not an ECDSA signature: {e}"))?;
    let Some(key) = keys.iter().find(|k| k.key.verify(payload, &sig).is_ok()) else {
        return Err("a signature that no trusted key verifies".into());
    };
    let doc: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("the signed payload is not JSON: {e}"))?;
    let signed = doc["critical"]["image"]["docker-manifest-digest"].as_str().unwrap_or_default();
    if signed != digest {
        return Err(format!("a signature by {} for {signed}, not this digest", key.name));
    }
    Ok(key.name.clone())
}

fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|x| matches!(x.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn key(seed: u8) -> (SigningKey, CosignKey) {
        let signing = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        (signing.clone(), CosignKey::from_pem(&pem, &format!("key{seed}")).unwrap())
    }

    fn sign(k: &SigningKey, payload: &[u8]) -> String {
        let sig: Signature = k.sign(payload);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig.to_der().as_bytes())
    }

    #[test]
    fn a_signature_counts_only_with_a_trusted_key_and_the_current_digest() {
        let (a, trusted) = key(7);
        let (b, _) = key(9);
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/app"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"cosign container image signature"},"optional":null}"#;
        assert_eq!(check(payload, &sign(&a, payload), "sha256:aa", std::slice::from_ref(&trusted)), Ok("key7".into()));
        let e = check(payload, &sign(&b, payload), "sha256:aa", std::slice::from_ref(&trusted)).unwrap_err();
        assert!(e.contains("no trusted key"), "{e}");
        let e = check(payload, &sign(&a, payload), "sha256:bb", std::slice::from_ref(&trusted)).unwrap_err();
        assert!(e.contains("for sha256:aa, not this digest"), "{e}");
        let mut altered = payload.to_vec();
        altered[20] ^= 1;
        assert!(check(&altered, &sign(&a, payload), "sha256:aa", &[trusted]).is_err());
    }

    #[test]
    fn keys_that_are_not_p256_public_keys_are_named() {
        let e =
            CosignKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "k.pub").unwrap_err();
        assert!(e.to_string().starts_with("k.pub: expected an ECDSA P-256 public key"), "{e}");
    }
}
