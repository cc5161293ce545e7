//! `signed-images`: the pci-dss `image-signature` check as a plugin, through the
//! host function `host.image-signature` (the Rego builtin's implementation and
//! cache). Every container image that starts with one of `prefixes` must carry a
//! cosign signature by one of `keys` (PEM) for the digest it names now. The policy
//! must be granted `registry` in its bundle; a registry that does not answer is an
//! evaluation error, which the policy's failure mode decides.

use palisade_sdk::registry::image_signature;
use palisade_sdk::{Metadata, Policy, Request, Violation};
use serde::Deserialize;

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Image reference prefixes whose images must be signed.
    prefixes: Vec<String>,
    /// Trusted cosign public keys (PEM).
    keys: Vec<String>,
    #[serde(default)]
    plain_http: bool,
    #[serde(default = "timeout_ms")]
    timeout_ms: u32,
}

fn timeout_ms() -> u32 {
    1000
}

/// The policy.
pub struct SignedImages;

impl Policy for SignedImages {
    const PARSE_PODS: bool = true;

    fn metadata() -> Metadata {
        Metadata::new("signed-images", env!("CARGO_PKG_VERSION"), "Images are signed by a trusted cosign key")
            .kinds(["Pod"])
            .requirements(["6.3.2", "11.5.1"])
    }

    fn validate_settings(settings: &str) -> Result<(), String> {
        let s: Settings = serde_json::from_str(settings).map_err(|e| format!("settings: {e}"))?;
        if s.keys.is_empty() && !s.prefixes.is_empty() {
            return Err("settings: keys must name at least one trusted key".into());
        }
        Ok(())
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let settings: Settings = request.settings()?;
        let Some(pod) = request.pod()? else { return Ok(Vec::new()) };
        let mut found = Vec::new();
        for c in pod.spec.all_containers() {
            let Some(image) = c.container.image.as_deref() else { continue };
            if !settings.prefixes.iter().any(|p| image.starts_with(p.as_str())) {
                continue;
            }
            let v = image_signature(image, &settings.keys, settings.plain_http, settings.timeout_ms)?;
            if !v.signed {
                let message = format!(
                    "container {} uses image {image}, which is not signed by a trusted key: {}",
                    c.container.name, v.reason
                );
                found.push(Violation::new(message).at(format!("{}.image", c.path())));
            }
        }
        Ok(found)
    }
}

palisade_sdk::export_policy!(SignedImages);

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::testing::{evaluate, input_with};
    use serde_json::json;

    fn pod(image: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
               "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    #[test]
    fn images_outside_the_prefixes_are_not_looked_up() {
        let settings = json!({"prefixes": ["registry.example.com/"], "keys": ["k"]});
        assert!(evaluate::<SignedImages>(&input_with(&pod("busybox:1.36"), "CREATE", &settings)).unwrap().is_empty());
    }

    #[test]
    fn natively_there_is_no_registry_to_ask() {
        let settings = json!({"prefixes": ["registry.example.com/"], "keys": ["k"]});
        let e =
            evaluate::<SignedImages>(&input_with(&pod("registry.example.com/app:1"), "CREATE", &settings)).unwrap_err();
        assert!(e.contains("only the palisade host can ask a registry"), "{e}");
    }

    #[test]
    fn settings_need_keys_when_they_name_images() {
        assert!(SignedImages::validate_settings(r#"{"prefixes": ["r/"], "keys": []}"#).is_err());
        assert!(SignedImages::validate_settings(r#"{"prefixes": [], "keys": []}"#).is_ok());
    }
}
