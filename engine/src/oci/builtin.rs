//! The Rego builtin `palisade.image_signature(image, keys, options)`: the one image
//! signature check of [`super::signature`], for policies.
//!
//! ```rego
//! r := palisade.image_signature("registry.example.com/app:1.4", data.keys, {})
//! # {"signed": true, "digest": "sha256:…", "key": "key 1", "reason": ""}
//! ```
//!
//! `keys` are PEM public keys (cosign's, ECDSA P-256), named `key 1`, `key 2`… in the
//! answer; `options` may set `plain_http` (loopback registries only) and `timeout_ms`
//! (default 1000, for each registry request). Answers are cached in the process for
//! [`TTL`], shared by every evaluation: a tag's digest per reference, and the verdict
//! per digest and keys, so a tag that moves is seen within the TTL and two references
//! to one digest share a verdict. A registry that cannot answer in time is an
//! evaluation error, which the policy's failure mode handles. The builtin runs on
//! regorus's interpreter (its VM has no extensions), so a policy that calls it is
//! evaluated there.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use oci_client::Reference;
use regorus::Value as RValue;

use super::RegistryOptions;
use super::signature::{CosignKey, Verdict, verify_image};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(60);
/// The builtin's name in Rego.
pub const NAME: &str = "palisade.image_signature";

/// Answers younger than [`TTL`], by key.
#[derive(Default)]
struct TtlCache(Mutex<HashMap<String, (Instant, RValue)>>);

impl TtlCache {
    fn get(&self, key: &str) -> Option<RValue> {
        let c = self.0.lock().ok()?;
        c.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: RValue) {
        if let Ok(mut c) = self.0.lock() {
            c.retain(|_, (at, _)| at.elapsed() < TTL);
            c.insert(key, (Instant::now(), value));
        }
    }
}

/// Tag references to `registry/repository@digest`; digests and keys to verdicts.
fn caches() -> &'static (TtlCache, TtlCache) {
    static CACHES: OnceLock<(TtlCache, TtlCache)> = OnceLock::new();
    CACHES.get_or_init(Default::default)
}

/// Adds the builtin to a regorus engine.
pub(crate) fn register(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension(NAME.into(), 3, Box::new(image_signature))
}

fn image_signature(args: Vec<RValue>) -> anyhow::Result<RValue> {
    let [image, keys, options] = args.as_slice() else { anyhow::bail!("{NAME} expects 3 arguments") };
    let image = image.as_string().map_err(|_| anyhow::anyhow!("{NAME}: the image must be a string"))?.to_string();
    let pems: Vec<String> = keys
        .as_array()
        .map_err(|_| anyhow::anyhow!("{NAME}: keys must be an array of PEM strings"))?
        .iter()
        .map(|k| k.as_string().map(|s| s.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{NAME}: keys must be an array of PEM strings"))?;
    let mut registry = RegistryOptions::new(matches!(options["plain_http"], RValue::Bool(true)), None);
    registry.timeout =
        Some(options["timeout_ms"].as_u64().map(Duration::from_millis).unwrap_or(Duration::from_secs(1)));
    let pinned = pinned(&image, &registry)?;
    let (_, verdicts) = caches();
    let key = format!("{pinned}\n{}", pems.join("\n"));
    if let Some(hit) = verdicts.get(&key) {
        return Ok(hit);
    }
    let keys = pems
        .iter()
        .enumerate()
        .map(|(i, pem)| CosignKey::from_pem(pem, &format!("key {}", i + 1)))
        .collect::<crate::Result<Vec<_>>>()?;
    let answer = answer(&verify_image(&pinned, &keys, &registry)?);
    verdicts.put(key, answer.clone());
    Ok(answer)
}

/// `image` by digest: as given, or its tag resolved in the registry (cached).
fn pinned(image: &str, registry: &RegistryOptions) -> crate::Result<String> {
    if image.contains('@') {
        return Ok(image.to_string());
    }
    let (tags, _) = caches();
    let key = format!("{image}\n{}", registry.plain_http);
    if let Some(RValue::String(hit)) = tags.get(&key) {
        return Ok(hit.to_string());
    }
    let reference = super::parse(image, registry)?;
    let digest = super::resolve(image, registry)?;
    let pinned = Reference::with_digest(reference.registry().into(), reference.repository().into(), digest).whole();
    tags.put(key, RValue::from(pinned.as_str()));
    Ok(pinned)
}

fn answer(v: &Verdict) -> RValue {
    let (signed, digest, key, reason) = match v {
        Verdict::Signed { digest, key } => (true, digest.clone(), key.clone(), String::new()),
        Verdict::Unsigned { digest } => {
            (false, digest.clone(), String::new(), format!("no cosign signature for {digest}"))
        }
        Verdict::Untrusted { digest, reasons } => (false, digest.clone(), String::new(), reasons.join("; ")),
    };
    let json = serde_json::json!({"signed": signed, "digest": digest, "key": key, "reason": reason});
    RValue::from(json)
}
