//! `palisade bundle doc`: the rule table of a bundle, generated from `bundle.toml`,
//! so a bundle's README never drifts from its manifest.

use serde_json::Value;

use super::{Bundle, PolicySpec};

/// Marks the start of the generated table in a README.
pub const BEGIN: &str = "<!-- BEGIN palisade bundle doc: generated from bundle.toml, do not edit -->";
/// Marks its end.
pub const END: &str = "<!-- END palisade bundle doc -->";

fn backend(p: &PolicySpec, default: super::BackendKind) -> String {
    match (&p.rego, &p.wasm) {
        (Some(_), Some(_)) => format!("rego + wasm (runs {})", p.backend.unwrap_or(default)),
        (Some(_), None) => "rego".into(),
        _ => "wasm".into(),
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown table: id, title, requirements, severity, action, backend, parameters.
pub fn rule_table(bundle: &Bundle) -> String {
    let default = bundle.manifest().bundle.backend;
    let mut out = String::from(
        "| Id | Title | Requirements | Severity | Action | Backend | Parameters |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for p in bundle.policies() {
        let action = match p.admission_action {
            Some(a) if a != p.action => format!("{} ({} at admission)", p.action, a),
            _ => p.action.to_string(),
        };
        let action = match &p.enabled_by {
            Some(key) => format!("{action}, off until `{key}` is set"),
            None => action,
        };
        let params: Vec<String> = p
            .parameters
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("`{k}`: `{}`", cell(&value(v))))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            p.id,
            cell(&p.title),
            p.requirements.join(", "),
            p.severity,
            action,
            backend(p, default),
            if params.is_empty() { "-".to_string() } else { params.join("<br>") }
        ));
    }
    out
}

/// Replaces the text between [`BEGIN`] and [`END`] with `table`; `None` when the
/// markers are missing or out of order.
pub fn replace_section(text: &str, table: &str) -> Option<String> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(format!("{}\n{}{}", &text[..start], table, &text[end..]))
}

/// The table currently between the markers.
pub fn current_section(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(text[start..end].trim_start_matches('\n'))
}
