//! Run a plugin's logic natively in `cargo test`, with the same input document the
//! host builds.

use serde_json::{Value, json};

use crate::{Policy, Violation};

/// The scan-mode input document for an object, with empty settings.
pub fn input(object: &Value) -> String {
    input_with(object, "", &json!({}))
}

/// The input document for an object under an admission `operation` (`""` for scan
/// mode) with the given settings.
pub fn input_with(object: &Value, operation: &str, settings: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "review": {
            "uid": "",
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "", "groups": []},
            "object": object,
            "oldObject": null,
        },
        "parameters": settings,
    })
    .to_string()
}

/// Evaluates `input` with policy `P`, natively, as the component's `evaluate` does.
pub fn evaluate<P: Policy>(input: &str) -> Result<Vec<Violation>, String> {
    crate::evaluate_one::<P>(input)
}

/// Evaluates one review for several settings with policy `P`, natively, as the
/// component's `evaluate-batch` does (the review parsed once).
pub fn evaluate_batch<P: Policy>(review: &str, settings: &[&str]) -> Vec<Result<Vec<Violation>, String>> {
    crate::evaluate_many::<P>(review, settings)
}
