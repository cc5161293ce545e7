//! Signed exceptions: an ed25519 signature per PolicyException, with the bundle signing
//! keys (`palisade bundle keygen`), in the annotation `palisade.dev/signature`, so a
//! signed exception stays signed as a file and as an object applied to a cluster.
//!
//! What is signed is the canonical JSON (keys sorted, no spaces) of
//! `{"name": metadata.name, "spec": spec}`: changing the scope, the policies or the
//! expiry breaks the signature; labels and other annotations do not matter. The
//! annotation holds a signature file (`{"signatures": [...]}`, as `.sig` files do), so
//! several approvers' keys can sign one exception.

use std::path::Path;

use serde_json::Value;

use crate::bundle::sign::{SecretKey, SignatureFile, TrustedKey};
use crate::error::{Error, Result};

/// The annotation that carries the signatures.
pub const ANNOTATION: &str = "palisade.dev/signature";

/// The bytes signed for an exception document.
pub fn message(doc: &Value) -> Vec<u8> {
    let payload = serde_json::json!({
        "name": doc.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "spec": doc.get("spec").cloned().unwrap_or(Value::Null),
    });
    canonical(&payload).to_string().into_bytes()
}

/// The value with every object's keys in sorted order (whatever serde_json's map keeps).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Adds (or replaces) `key`'s signature in the document's annotation.
pub fn sign(doc: &mut Value, key: &SecretKey) -> Result<()> {
    let mut file = signatures(doc)?.unwrap_or_default();
    file.signatures.retain(|s| s.key_id != key.id);
    file.signatures.push(key.sign(&message(doc)));
    let text = serde_json::to_string(&file).map_err(|e| Error::input("signature", e.to_string()))?;
    let meta = doc
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::input("exception", "no metadata to annotate"))?;
    let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
    match annotations.as_object_mut() {
        Some(a) => {
            a.insert(ANNOTATION.into(), Value::String(text));
            Ok(())
        }
        None => Err(Error::input("exception", "metadata.annotations is not a map")),
    }
}

/// The signatures of the document, if it carries the annotation.
fn signatures(doc: &Value) -> Result<Option<SignatureFile>> {
    let Some(text) = doc.pointer("/metadata/annotations").and_then(|a| a.get(ANNOTATION)).and_then(Value::as_str)
    else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::input(format!("annotation {ANNOTATION}"), format!("not a signature list: {e}")))
}

/// The key id of a trusted key that signed the document, or why none did.
pub fn verify(doc: &Value, trusted: &[TrustedKey]) -> std::result::Result<String, String> {
    let file = signatures(doc).map_err(|e| e.to_string())?;
    let Some(file) = file else {
        return Err(format!("unsigned: no {ANNOTATION} annotation (sign it with `palisade exception sign`)"));
    };
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("exception");
    crate::bundle::sign::verify(Path::new(name), &message(doc), Some(&file), trusted).map_err(|e| match e {
        Error::Integrity { message, .. } => message.replace("the bundle was altered", "the exception was altered"),
        other => other.to_string(),
    })
}
