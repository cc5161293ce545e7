//! The component exports. `palisade_sdk::export_policy!` would call
//! `PodSecurity::evaluate` on the one-pass (`PODS_ONLY`) parse, which keeps no raw
//! object; the unchanged-UPDATE skip of lib/pss.rego compares whole pod specs, so
//! evaluation goes through [`crate::evaluate_input`], which has the input text.
//! Metadata and settings validation are the SDK's glue, as in `export_policy!`.

use palisade_sdk::Policy;
use palisade_sdk::bindings::{Guest, PluginMetadata, Violation};

use crate::PodSecurity;

struct Export;

impl Guest for Export {
    fn metadata() -> PluginMetadata {
        palisade_sdk::__private::metadata::<PodSecurity>()
    }

    fn validate_settings(settings: String) -> Result<(), String> {
        PodSecurity::validate_settings(&settings)
    }

    fn evaluate(input: String) -> Result<Vec<Violation>, String> {
        Ok(crate::evaluate_input(&input)?
            .into_iter()
            .map(|v| Violation { message: v.message, details: v.details.map(|d| d.to_string()), path: v.path })
            .collect())
    }
}

palisade_sdk::bindings::export!(Export with_types_in palisade_sdk::bindings);
