//! A template policy plugin. Copy this directory, rename the package and the
//! policy, and replace `evaluate`. It requires every Pod to carry the labels listed
//! in its settings (`{"labels": ["app", "owner"]}`).

use palisade_sdk::{Metadata, Policy, Request, Violation};
use serde::Deserialize;

/// The policy's settings (the `parameters` of the policy in `bundle.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Labels every Pod must carry.
    #[serde(default)]
    labels: Vec<String>,
}

/// The policy.
pub struct RequiredLabels;

impl Policy for RequiredLabels {
    fn metadata() -> Metadata {
        Metadata::new("required-labels", env!("CARGO_PKG_VERSION"), "Pods carry the labels listed in the settings")
            .kinds(["Pod"])
            .requirements(["12.5.1"])
            .settings_schema(
                r#"{"type": "object", "properties": {"labels": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": false}"#,
            )
    }

    fn validate_settings(settings: &str) -> Result<(), String> {
        let s: Settings = serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
        if s.labels.iter().any(|l| l.is_empty()) {
            return Err("labels must not be empty strings".into());
        }
        Ok(())
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let settings: Settings = request.settings()?;
        let Some(pod) = request.pod()? else { return Ok(Vec::new()) };
        let labels = pod.metadata.labels.get()?;
        Ok(settings
            .labels
            .iter()
            .filter(|l| !labels.contains_key(*l))
            .map(|l| Violation::new(format!("pod {} is missing label {l}", request.name())).at("metadata.labels"))
            .collect())
    }
}

palisade_sdk::export_policy!(RequiredLabels);

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::testing::{evaluate, input_with};
    use serde_json::json;

    #[test]
    fn reports_missing_labels() {
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {}});
        let found =
            evaluate::<RequiredLabels>(&input_with(&pod, "CREATE", &json!({"labels": ["app", "owner"]}))).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "pod p is missing label owner");
        assert!(RequiredLabels::validate_settings(r#"{"labels": [""]}"#).is_err());
        assert!(RequiredLabels::validate_settings(r#"{"colour": 1}"#).is_err());
    }
}
