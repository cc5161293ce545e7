//! Image signatures for policies: the one check of [`super::signature`] behind a
//! process-wide cache, as the Rego builtin `palisade.image_signature(image, keys,
//! options)` and as the plugin host function `host.image-signature` (`sdk/wit`).
//!
//! ```rego
//! r := palisade.image_signature("registry.example.com/app:1.4", data.keys, {})
//! # {"signed": true, "digest": "sha256:…", "key": "key 1", "reason": ""}
//! ```
//!
//! `keys` are PEM public keys (cosign's, ECDSA P-256), named `key 1`, `key 2`… in the
//! answer; `options` may set `plain_http` (loopback registries only) and `timeout_ms`
//! (default 1000, for each registry request). A registry with a private CA is trusted
//! through [`set_registry_ca`], process-wide (the CLI's `--registry-ca`, the flag that
//! also serves `-b oci://`). Answers are cached in the process for
//! [`TTL`], shared by every evaluation and both callers: a tag's digest per reference,
//! and the verdict per digest and keys, so a tag that moves is seen within the TTL and
//! two references to one digest share a verdict. A registry that cannot answer in time
//! is an evaluation error, which the policy's failure mode handles. The builtin runs on
//! regorus's interpreter (its VM has no extensions), so a policy that calls it is
//! evaluated there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use oci_client::Reference;
use regorus::Value as RValue;

use super::RegistryOptions;
use super::signature::{CosignKey, Verdict, verify_image};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(60);
/// The builtin's name in Rego.
pub const NAME: &str = "palisade.image_signature";

/// The answer to "is this image signed by one of these keys?".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// Whether a trusted key signed the digest the reference names now.
    pub signed: bool,
    /// That digest.
    pub digest: String,
    /// The key that verified (`key N`), when signed.
    pub key: String,
    /// Why it does not count as signed, when it does not.
    pub reason: String,
}

/// Values younger than [`TTL`], by key.
struct TtlCache<V>(Mutex<HashMap<String, (Instant, V)>>);

impl<V: Clone> TtlCache<V> {
    fn get(&self, key: &str) -> Option<V> {
        let c = self.0.lock().ok()?;
        c.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: V) {
        if let Ok(mut c) = self.0.lock() {
            c.retain(|_, (at, _)| at.elapsed() < TTL);
            c.insert(key, (Instant::now(), value));
        }
    }
}

/// Tag references to `registry/repository@digest`.
fn tags() -> &'static TtlCache<String> {
    static TAGS: OnceLock<TtlCache<String>> = OnceLock::new();
    TAGS.get_or_init(|| TtlCache(Mutex::default()))
}

/// Digests and keys to answers.
fn verdicts() -> &'static TtlCache<Answer> {
    static VERDICTS: OnceLock<TtlCache<Answer>> = OnceLock::new();
    VERDICTS.get_or_init(|| TtlCache(Mutex::default()))
}

static REGISTRY_CA: RwLock<Option<PathBuf>> = RwLock::new(None);

/// CA certificates (PEM file) trusted for registries besides the system's by every
/// image-signature check of this process (`None`: the system's alone).
pub fn set_registry_ca(ca_file: Option<PathBuf>) {
    if let Ok(mut ca) = REGISTRY_CA.write() {
        *ca = ca_file;
    }
}

/// Whether `image` is signed by one of `keys` (PEM), through the cache.
pub fn check(image: &str, keys: &[String], plain_http: bool, timeout: Duration) -> crate::Result<Answer> {
    let ca_file = REGISTRY_CA.read().ok().and_then(|ca| ca.clone());
    let mut registry = RegistryOptions::new(plain_http, ca_file);
    registry.timeout = Some(timeout);
    let pinned = pinned(image, &registry)?;
    let key = format!("{pinned}\n{}", keys.join("\n"));
    if let Some(hit) = verdicts().get(&key) {
        return Ok(hit);
    }
    let trusted = keys
        .iter()
        .enumerate()
        .map(|(i, pem)| CosignKey::from_pem(pem, &format!("key {}", i + 1)))
        .collect::<crate::Result<Vec<_>>>()?;
    let answer = answer(verify_image(&pinned, &trusted, &registry)?);
    verdicts().put(key, answer.clone());
    Ok(answer)
}

/// `image` by digest: as given, or its tag resolved in the registry (cached).
fn pinned(image: &str, registry: &RegistryOptions) -> crate::Result<String> {
    if image.contains('@') {
        return Ok(image.to_string());
    }
    let key = format!("{image}\n{}", registry.plain_http);
    if let Some(hit) = tags().get(&key) {
        return Ok(hit);
    }
    let reference = super::parse(image, registry)?;
    let digest = super::resolve(image, registry)?;
    let pinned = Reference::with_digest(reference.registry().into(), reference.repository().into(), digest).whole();
    tags().put(key, pinned.clone());
    Ok(pinned)
}

fn answer(v: Verdict) -> Answer {
    let (signed, digest, key, reason) = match v {
        Verdict::Signed { digest, key } => (true, digest, key, String::new()),
        Verdict::Unsigned { digest } => {
            let reason = format!("no cosign signature for {digest}");
            (false, digest, String::new(), reason)
        }
        Verdict::Untrusted { digest, reasons } => (false, digest, String::new(), reasons.join("; ")),
    };
    Answer { signed, digest, key, reason }
}

/// Adds the builtin to a regorus engine.
pub(crate) fn register(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension(NAME.into(), 3, Box::new(image_signature))
}

fn image_signature(args: Vec<RValue>) -> anyhow::Result<RValue> {
    let [image, keys, options] = args.as_slice() else { anyhow::bail!("{NAME} expects 3 arguments") };
    let image = image.as_string().map_err(|_| anyhow::anyhow!("{NAME}: the image must be a string"))?;
    let pems: Vec<String> = keys
        .as_array()
        .map_err(|_| anyhow::anyhow!("{NAME}: keys must be an array of PEM strings"))?
        .iter()
        .map(|k| k.as_string().map(|s| s.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{NAME}: keys must be an array of PEM strings"))?;
    let plain_http = matches!(options["plain_http"], RValue::Bool(true));
    let timeout = options["timeout_ms"].as_u64().map(Duration::from_millis).unwrap_or(Duration::from_secs(1));
    let a = check(image, &pems, plain_http, timeout)?;
    let json = serde_json::json!({"signed": a.signed, "digest": a.digest, "key": a.key, "reason": a.reason});
    Ok(RValue::from(json))
}
