//! `apiserver-audit-logging`: the kube-apiserver (its static Pod, or any pod running a
//! container named in `container_names`, by name or by its command's program) writes
//! an audit log. Twin of `rules/logging/apiserver_audit_logging.rego`, with the same
//! messages and flag parsing as lib/pci.rego's `flag_value` (`--flag=value` or
//! `--flag value` among command then args, string items only, the last occurrence
//! wins, an empty value counts as unset). It applies in every namespace.

use std::collections::BTreeSet;

use palisade_sdk::pod::ContainerRef;
use palisade_sdk::{Request, Violation};
use serde::Deserialize;
use serde_json::{Number, Value, json};

use crate::common;

/// The `check` setting of this check.
pub const CHECK: &str = "apiserver-audit-logging";

/// The policy's requirements (bundle.toml).
pub const REQUIREMENTS: [&str; 3] = ["10.2.1", "10.2.2", "10.5.1"];

/// The settings: the Rego policy's parameters plus `check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(rename = "check")]
    _check: String,
    /// Read by the other checks; this one applies everywhere, as its Rego does.
    #[serde(default, rename = "exempt_namespaces")]
    _exempt_namespaces: Option<Vec<String>>,
    #[serde(default)]
    container_names: Option<Vec<String>>,
    #[serde(default)]
    allow_stdout: Option<bool>,
    #[serde(default)]
    min_log_maxage_days: Option<Number>,
    #[serde(default)]
    min_log_maxbackup: Option<Number>,
    #[serde(default)]
    min_log_maxsize_mb: Option<Number>,
}

/// Checks the settings.
pub fn validate(settings: &str) -> Result<(), String> {
    serde_json::from_str::<Settings>(settings).map(drop).map_err(|e| format!("invalid settings: {e}"))
}

/// The settings' JSON Schema (a subschema of pci-workloads').
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "check": {"const": CHECK},
            "exempt_namespaces": crate::string_list(),
            "container_names": crate::string_list(),
            "allow_stdout": {"type": ["boolean", "null"]},
            "min_log_maxage_days": {"type": ["number", "null"]},
            "min_log_maxbackup": {"type": ["number", "null"]},
            "min_log_maxsize_mb": {"type": ["number", "null"]},
        },
    })
}

/// Evaluates the check.
pub fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
    let s: Settings = request.settings()?;
    let Some(pod) = request.shared_pod()? else { return Ok(Vec::new()) };
    let Some(names) = s.container_names.as_deref() else { return Ok(Vec::new()) };
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let mut messages = BTreeSet::new();
    for c in common::visit(&pod.spec) {
        let args = arguments(&c)?;
        if !is_apiserver(common::name(&c), &args, names) {
            continue;
        }
        for problem in problems(&args, &s) {
            messages.insert(format!(
                "kube-apiserver container {} of pod {pod_name}: audit logging: {problem}",
                common::name(&c)
            ));
        }
    }
    Ok(messages.into_iter().map(Violation::new).collect())
}

/// The container's command then args, string items only.
fn arguments(c: &ContainerRef<'_, '_>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for items in [c.container.command.get()?, c.container.args.get()?] {
        out.extend(items.into_iter().filter_map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        }));
    }
    Ok(out)
}

/// Named like the API server, or running a program of that name.
fn is_apiserver(name: &str, args: &[String], names: &[String]) -> bool {
    let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    names.iter().any(|n| n == name || program == Some(n.as_str()))
}

/// The value of `--flag=value` or `--flag value` (the last occurrence); `None` when
/// absent or empty.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut last = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            last = Some(v);
        } else if a == flag && i + 1 < args.len() {
            last = Some(args[i + 1].as_str());
        }
    }
    last.filter(|v| !v.is_empty())
}

/// What is wrong with an API server's audit flags.
fn problems(args: &[String], s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if flag(args, "--audit-policy-file").is_none() {
        out.push("--audit-policy-file is not set".to_string());
    }
    let log_path = flag(args, "--audit-log-path").filter(|p| *p != "-" || s.allow_stdout == Some(true));
    if log_path.is_none() && flag(args, "--audit-webhook-config-file").is_none() {
        out.push("neither --audit-log-path (to a file) nor --audit-webhook-config-file is set".to_string());
    }
    if log_path.is_none() {
        return out;
    }
    let retention = [
        ("--audit-log-maxage", &s.min_log_maxage_days),
        ("--audit-log-maxbackup", &s.min_log_maxbackup),
        ("--audit-log-maxsize", &s.min_log_maxsize_mb),
    ];
    for (name, minimum) in retention {
        let (Some(minimum), Some(value)) = (minimum, flag(args, name)) else { continue };
        let Some(n) = value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse::<f64>().ok()).flatten() else {
            continue;
        };
        if n > 0.0 && minimum.as_f64().is_some_and(|m| n < m) {
            out.push(format!("{name}={value} is below the minimum of {}", whole(minimum)));
        }
    }
    out
}

/// A number as Rego's `%d` prints it (an integer; a fraction cut off).
fn whole(n: &Number) -> String {
    n.as_i64().map_or_else(|| format!("{}", n.as_f64().unwrap_or_default().trunc()), |i| i.to_string())
}
