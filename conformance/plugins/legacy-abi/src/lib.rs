//! A plugin built for ABI 0.1.0 (`sdk/wit/v0.1.0`): no `evaluate-batch`. It reports
//! privileged containers and counts the calls its instance received, so tests can
//! see that the host still runs such plugins, one `evaluate` per policy. Test-only.

use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({ world: "policy", path: "../sdk/wit/v0.1.0" });


static CALLS: AtomicU32 = AtomicU32::new(0);

struct Legacy;

impl Guest for Legacy {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: "legacy-abi".into(),
            version: "0.1.0".into(),
            description: "built for ABI 0.1.0".into(),
            abi_version: "0.1.0".into(),
            kinds: vec!["Pod".into()],
            requirements: vec!["2.2.5".into()],
            settings_schema: None,
        }
    }

    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(input: String) -> Result<Vec<Violation>, String> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let doc: serde_json::Value = serde_json::from_str(&input).map_err(|e| e.to_string())?;
        let containers = doc.pointer("/review/object/spec/containers").and_then(|c| c.as_array());
        let privileged = containers.into_iter().flatten().filter(|c| {
            c.pointer("/securityContext/privileged").and_then(serde_json::Value::as_bool) == Some(true)
        });
        Ok(privileged
            .map(|c| Violation {
                message: format!("container {} is privileged (call {calls})", c["name"].as_str().unwrap_or("?")),
                details: None,
                path: None,
            })
            .collect())
    }
}

export!(Legacy);
