//! The [`DefaultCredentials`] policy. `plugins/pci-workloads` compiles this file
//! into its component too.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use base64::Engine as _;
use palisade_sdk::{Metadata, Policy, Request, Violation};
use serde::Deserialize;
use serde_json::json;

/// Settings (`parameters` in bundle.toml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// Values shorter than this are weak.
    min_length: usize,
    /// More values to treat as defaults.
    extra_defaults: Vec<String>,
    /// Keys never checked (exact, case-insensitive).
    ignore_keys: Vec<String>,
    /// Namespaces not checked (system namespaces).
    exempt_namespaces: Vec<String>,
    /// Set, to `default-credentials`, by bundles that load this check from a
    /// component of several checks (`pci-workloads`); ignored otherwise.
    check: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_length: 8,
            extra_defaults: Vec::new(),
            ignore_keys: Vec::new(),
            exempt_namespaces: Vec::new(),
            check: None,
        }
    }
}

fn defaults() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("defaults.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// Number of known default values (at least 200).
pub fn known_default_count() -> usize {
    defaults().len()
}

/// Whether a key names a credential.
pub fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase().replace(['-', '.'], "_");
    [
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|p| k.contains(p))
        || k.ends_with("_PWD")
        || k == "PWD"
        || k.ends_with("_PASS")
        || k == "PASS"
}

/// Keys that hold a user name, preferring ones sharing the credential key's prefix.
fn user_for<'a>(key: &str, entries: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let upper = key.to_ascii_uppercase();
    let prefix = ["PASSWORD", "PASSWD", "PWD", "PASS"].iter().find_map(|p| upper.find(p).map(|i| &upper[..i]));
    let candidates = ["USER", "USERNAME", "USER_NAME", "LOGIN", "ADMIN_USER"];
    if let Some(prefix) = prefix {
        for c in candidates {
            let want = format!("{prefix}{c}");
            if let Some((_, v)) = entries.iter().find(|(k, _)| k.to_ascii_uppercase() == want) {
                return Some(v);
            }
        }
    }
    entries.iter().find(|(k, _)| candidates.contains(&k.to_ascii_uppercase().as_str())).map(|(_, v)| v.as_str())
}

/// Why a value is a weak credential, or `None`.
fn weakness(value: &str, user: Option<&str>, s: &Settings) -> Option<&'static str> {
    let v = value.trim();
    let lower = v.to_lowercase();
    if v.is_empty() {
        Some("is empty")
    } else if defaults().contains(&lower) || s.extra_defaults.iter().any(|d| d.to_lowercase() == lower) {
        Some("is a known vendor-default or well-known password")
    } else if user.is_some_and(|u| !u.is_empty() && u.to_lowercase() == lower) {
        Some("equals the user name")
    } else if v.chars().count() < s.min_length {
        Some("is shorter than the minimum length")
    } else {
        None
    }
}

/// Checks one set of key/value entries (`where_` names it in messages).
fn check(entries: &BTreeMap<String, String>, where_: &str, path: &str, s: &Settings, out: &mut Vec<Violation>) {
    for (key, value) in entries {
        if !is_credential_key(key) || s.ignore_keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            continue;
        }
        // Values that reference other material (a file, a variable) are not secrets.
        if value.starts_with("$(") || value.starts_with("${") || value.starts_with("/") {
            continue;
        }
        if let Some(why) = weakness(value, user_for(key, entries), s) {
            out.push(
                Violation::new(format!("{where_}: {key} {why}; set a strong, unique credential"))
                    .at(format!("{path}.{key}"))
                    .details(json!({"key": key, "reason": why})),
            );
        }
    }
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, String>,
}

/// The policy.
pub struct DefaultCredentials;

impl Policy for DefaultCredentials {
    const PARSE_PODS: bool = true;

    fn metadata() -> Metadata {
        Metadata::new(
            "default-credentials",
            env!("CARGO_PKG_VERSION"),
            "No vendor-default or weak passwords in workloads",
        )
        .kinds(["Pod", "ConfigMap", "Secret"])
        .requirements(["2.2.2", "8.3.6"])
        .settings_schema(
            r#"{"type": "object", "additionalProperties": false, "properties": {
                    "min_length": {"type": "integer", "minimum": 0},
                    "extra_defaults": {"type": "array", "items": {"type": "string"}},
                    "ignore_keys": {"type": "array", "items": {"type": "string"}},
                    "exempt_namespaces": {"type": "array", "items": {"type": "string"}},
                    "check": {"const": "default-credentials"}}}"#,
        )
    }

    fn validate_settings(settings: &str) -> Result<(), String> {
        let s = serde_json::from_str::<Settings>(settings).map_err(|e| format!("invalid settings: {e}"))?;
        match s.check.as_deref() {
            None | Some("default-credentials") => Ok(()),
            Some(other) => Err(format!("the setting \"check\" must be \"default-credentials\", got {other:?}")),
        }
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let settings: Settings = request.settings()?;
        let mut out = Vec::new();
        let kind = request.kind();
        if !kind.group.is_empty() || settings.exempt_namespaces.iter().any(|n| n == request.namespace()) {
            return Ok(out);
        }
        match kind.kind.as_str() {
            "Pod" => {
                let Some(pod) = request.shared_pod()? else { return Ok(out) };
                for c in pod.spec.all_containers() {
                    let env: BTreeMap<String, String> =
                        c.container.env.get()?.into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
                    let where_ = format!("container {} env", c.container.name);
                    check(&env, &where_, &format!("{}.env", c.path()), &settings, &mut out);
                }
            }
            "ConfigMap" => {
                let Some(cm) = request.object::<Data>()? else { return Ok(out) };
                check(&cm.data, &format!("ConfigMap {}", request.name()), "data", &settings, &mut out);
            }
            "Secret" => {
                let Some(secret) = request.object::<Data>()? else { return Ok(out) };
                let mut decoded = BTreeMap::new();
                for (k, v) in &secret.data {
                    // Values that are not valid base64 or not text are not passwords we can judge.
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v.trim())
                        && let Ok(text) = String::from_utf8(bytes)
                    {
                        decoded.insert(k.clone(), text);
                    }
                }
                let name = request.name();
                check(&decoded, &format!("Secret {name} data"), "data", &settings, &mut out);
                check(&secret.string_data, &format!("Secret {name} stringData"), "stringData", &settings, &mut out);
            }
            _ => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::testing::{evaluate, input};

    fn run(obj: serde_json::Value) -> Vec<Violation> {
        evaluate::<DefaultCredentials>(&input(&obj)).unwrap()
    }

    #[test]
    fn list_is_large_enough() {
        assert!(known_default_count() >= 200, "{}", known_default_count());
    }

    #[test]
    fn env_values_in_every_container_kind() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db"}, "spec": {
            "containers": [{"name": "pg", "env": [
                {"name": "POSTGRES_USER", "value": "payments"},
                {"name": "POSTGRES_PASSWORD", "value": "postgres"},
                {"name": "LOG_LEVEL", "value": "admin"},
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "t"}}}]}],
            "initContainers": [{"name": "init", "env": [{"name": "ADMIN_PASSWORD", "value": "Zx9!qT4#mL2@vR8"}]}],
            "ephemeralContainers": [{"name": "dbg", "env": [{"name": "DB_PWD", "value": "short"}]}]}});
        let found = run(pod);
        let msgs: Vec<_> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "container pg env: POSTGRES_PASSWORD is a known vendor-default or well-known password; set a strong, unique credential",
                "container dbg env: DB_PWD is shorter than the minimum length; set a strong, unique credential",
            ]
        );
        assert_eq!(found[0].path.as_deref(), Some("spec.containers[0].env.POSTGRES_PASSWORD"));
        assert!(found.iter().all(|v| !v.message.contains("postgres\"") && !v.message.contains("short;")));
    }

    #[test]
    fn secrets_are_decoded_and_never_echoed() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"username": b64("paymentsvc"), "password": b64("paymentsvc"), "tls.key": b64("-----BEGIN")},
            "stringData": {"redis-password": "foobared", "api-token": "c2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ="}});
        let found = run(secret);
        let msgs: Vec<_> = found.iter().map(|v| v.message.clone()).collect();
        assert_eq!(
            msgs,
            [
                "Secret db data: password equals the user name; set a strong, unique credential",
                "Secret db stringData: redis-password is a known vendor-default or well-known password; set a strong, unique credential",
            ]
        );
        for m in msgs {
            assert!(!m.contains("paymentsvc") && !m.contains("foobared"), "{m}");
        }
    }

    #[test]
    fn configmaps_and_settings() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
            "data": {"ADMIN_PASSWORD": "", "GREETING": "changeme"}});
        let found = run(cm);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "ConfigMap app: ADMIN_PASSWORD is empty; set a strong, unique credential");
        assert!(DefaultCredentials::validate_settings(r#"{"min_length": "x"}"#).is_err());
        assert!(DefaultCredentials::validate_settings(r#"{"min_length": 12}"#).is_ok());
        let exempt = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "kube-system"},
            "data": {"ADMIN_PASSWORD": ""}});
        let input = palisade_sdk::testing::input_with(&exempt, "", &json!({"exempt_namespaces": ["kube-system"]}));
        assert!(evaluate::<DefaultCredentials>(&input).unwrap().is_empty());
    }

    #[test]
    fn credential_keys() {
        for k in [
            "DB_PASSWORD",
            "db-passwd",
            "MYSQL_ROOT_PASSWORD",
            "API_KEY",
            "slack.token",
            "APP_SECRET",
            "SMTP_PWD",
            "private_key",
        ] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in ["USER", "PASSWORD_FILE_PATH_X", "HOST"] {
            let _ = is_credential_key(k);
        }
        assert!(!is_credential_key("HOSTNAME"));
        assert!(!is_credential_key("PATH"));
    }
}
