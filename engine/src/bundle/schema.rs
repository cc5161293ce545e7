//! JSON Schemas for policy parameters. A policy may name a schema file
//! (`schema = "schemas/registries.json"`); its `parameters` are checked against it
//! when the bundle loads, and again after `--set`/`--parameters` overrides when an
//! engine is built, so a typo or a wrong type fails early with the JSON path.

use serde_json::Value;

/// A compiled parameter schema.
#[derive(Debug)]
pub struct ParameterSchema {
    validator: jsonschema::Validator,
}

impl ParameterSchema {
    /// Parses and compiles a schema file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ParameterSchema, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
        ParameterSchema::compile(&value)
    }

    /// Compiles a schema given as a JSON value (e.g. a plugin's `settings-schema`).
    pub fn compile(schema: &Value) -> Result<ParameterSchema, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
        Ok(ParameterSchema { validator })
    }

    /// Every violation of the schema by `parameters`, one line each (`/path: message`).
    pub fn violations(&self, parameters: &Value) -> Vec<String> {
        self.validator
            .iter_errors(parameters)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/".to_string() } else { at })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_violation_with_its_path() {
        let s = ParameterSchema::parse(
            r#"{"type": "object", "additionalProperties": false,
                "properties": {"registries": {"type": "array", "items": {"type": "string"}}}}"#,
        )
        .unwrap();
        assert!(s.violations(&json!({"registries": ["a"]})).is_empty());
        let v = s.violations(&json!({"registries": ["a", 7], "regsitries": []}));
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().any(|l| l.starts_with("/registries/1: 7 is not of type \"string\"")), "{v:?}");
        assert!(v.iter().any(|l| l.starts_with("/: ") && l.contains("regsitries")), "{v:?}");
        assert!(ParameterSchema::parse("{").unwrap_err().starts_with("is not JSON"));
        assert!(ParameterSchema::parse(r#"{"type": 12}"#).unwrap_err().starts_with("is not a valid JSON Schema"));
    }
}
