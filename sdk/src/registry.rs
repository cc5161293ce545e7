//! Image signatures (`host.image-signature` in the WIT): ask the host whether an image
//! is signed, as `cosign sign --key` signs, by one of the trusted keys. The host makes
//! the registry requests (the plugin itself still has no network) and answers only
//! policies granted `registry` in their bundle; it shares its answers (60 s) with the
//! Rego builtin `palisade.image_signature`. Natively (in `cargo test`) there is no
//! host, and the call returns an error.

/// What the registry says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureVerdict {
    /// Whether a trusted key signed the digest the reference names now.
    pub signed: bool,
    /// That digest (`sha256:...`).
    pub digest: String,
    /// The key that verified (`key 1`, `key 2`... in the order given), when signed.
    pub key: String,
    /// Why the image does not count as signed, when it does not.
    pub reason: String,
}

/// Whether `image` is signed by one of `keys` (PEM public keys, ECDSA P-256).
/// `plain_http` only for loopback registries; each registry request is given up
/// after `timeout_ms`. An error when the policy is not granted `registry`, a key is
/// not a P-256 key, or the registry does not answer.
pub fn image_signature(
    image: &str,
    keys: &[String],
    plain_http: bool,
    timeout_ms: u32,
) -> Result<SignatureVerdict, String> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::palisade::policy::host;
        host::image_signature(image, keys, plain_http, timeout_ms).map(|v| SignatureVerdict {
            signed: v.signed,
            digest: v.digest,
            key: v.key,
            reason: v.reason,
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (keys, plain_http, timeout_ms);
        Err(format!("image-signature {image}: only the palisade host can ask a registry"))
    }
}
