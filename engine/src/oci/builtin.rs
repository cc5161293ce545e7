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
//! (default 1000). An answer (signed or not) is cached for [`TTL`] per image reference,
//! keys and options, shared by every evaluation of the process; a registry that cannot
//! answer in time is an evaluation error, which the policy's failure mode handles. The
//! builtin runs on regorus's interpreter (its VM has no extensions), so a policy that
//! calls it is evaluated there.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use regorus::Value as RValue;

use super::RegistryOptions;
use super::signature::{CosignKey, Verdict, verify_image};

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(60);
/// The builtin's name in Rego.
pub const NAME: &str = "palisade.image_signature";

type Cache = Mutex<HashMap<String, (Instant, RValue)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
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
    let plain_http = matches!(options["plain_http"], RValue::Bool(true));
    let timeout = options["timeout_ms"].as_u64().map(Duration::from_millis).unwrap_or(Duration::from_secs(1));
    let key = format!("{image}\n{plain_http}\n{}", pems.join("\n"));
    if let Some(hit) = cached(&key) {
        return Ok(hit);
    }
    let keys = pems
        .iter()
        .enumerate()
        .map(|(i, pem)| CosignKey::from_pem(pem, &format!("key {}", i + 1)))
        .collect::<crate::Result<Vec<_>>>()?;
    let mut registry = RegistryOptions::new(plain_http, None);
    registry.timeout = Some(timeout);
    let answer = answer(&verify_image(&image, &keys, &registry)?);
    if let Ok(mut c) = cache().lock() {
        c.retain(|_, (at, _)| at.elapsed() < TTL);
        c.insert(key, (Instant::now(), answer.clone()));
    }
    Ok(answer)
}

fn cached(key: &str) -> Option<RValue> {
    let c = cache().lock().ok()?;
    c.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
}

fn answer(v: &Verdict) -> RValue {
    let (signed, digest, key, reason) = match v {
        Verdict::Signed { digest, key } => (true, digest.clone(), key.clone(), String::new()),
        Verdict::Unsigned { digest } => (false, digest.clone(), String::new(), "no cosign signature".into()),
        Verdict::Untrusted { digest, reasons } => (false, digest.clone(), String::new(), reasons.join("; ")),
    };
    let json = serde_json::json!({"signed": signed, "digest": digest, "key": key, "reason": reason});
    RValue::from(json)
}
