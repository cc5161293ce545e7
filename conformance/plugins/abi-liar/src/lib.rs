//! Exports the right functions but claims an ABI version the host does not
//! implement. Test-only.

use palisade_sdk::bindings::{Guest, PluginMetadata, Violation};

struct Liar;

impl Guest for Liar {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: "abi-liar".into(),
            version: "0.1.0".into(),
            description: "claims ABI 9.9.9".into(),
            abi_version: "9.9.9".into(),
            kinds: vec!["Pod".into()],
            requirements: vec![],
            settings_schema: None,
        }
    }

    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(_input: String) -> Result<Vec<Violation>, String> {
        Ok(vec![])
    }

    fn evaluate_batch(_review: String, settings: Vec<String>) -> Vec<Result<Vec<Violation>, String>> {
        settings.iter().map(|_| Ok(vec![])).collect()
    }
}

palisade_sdk::bindings::export!(Liar with_types_in palisade_sdk::bindings);
