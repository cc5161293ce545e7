//! What every check shares (lib/pss.rego and lib/pci.rego): the container visit
//! order, upstream's phrases, the skip rules, and the finding itself.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::SecurityContext;
use palisade_sdk::pod::{ContainerKind, ContainerRef, Pod, PodSpec};
use palisade_sdk::{Request, Violation};
use serde_json::{Map, Value, json};

use crate::settings::{Check, Settings};

/// Every container, in the order upstream visits them: initContainers, containers,
/// ephemeralContainers.
pub fn visit<'p, 'a>(spec: &'p PodSpec<'a>) -> impl Iterator<Item = ContainerRef<'p, 'a>> {
    spec.containers_of(ContainerKind::Init)
        .chain(spec.containers_of(ContainerKind::Container))
        .chain(spec.containers_of(ContainerKind::Ephemeral))
}

/// The container's name.
pub fn name<'p>(c: &ContainerRef<'p, '_>) -> &'p str {
    c.container.name.as_str()
}

/// `singular` when `n` is 1.
pub fn pluralize<'s>(singular: &'s str, plural: &'s str, n: usize) -> &'s str {
    if n == 1 { singular } else { plural }
}

/// Kubernetes' joinQuote: `"a", "b"`.
pub fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = String::from("\"");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str("\", \"");
        }
        out.push_str(item.as_ref());
    }
    out.push('"');
    out
}

/// `container "a"` / `containers "a", "b"`.
pub fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!("{} {}", pluralize("container", "containers", names.len()), join_quote(names))
}

/// Upstream's "bad setters": `pod` and/or `container(s) "a", ...`, joined by " and ".
pub fn setters<S: AsRef<str>>(pod_bad: bool, names: &[S]) -> String {
    match (pod_bad, names.is_empty()) {
        (false, true) => String::new(),
        (true, true) => "pod".into(),
        (false, false) => containers_phrase(names),
        (true, false) => format!("pod and {}", containers_phrase(names)),
    }
}

/// `<reason> (<detail>)`.
pub fn message(reason: &str, detail: &str) -> String {
    format!("{reason} ({detail})")
}

/// A de-duplicated, byte-order sorted list (upstream's `sets.List`).
pub fn sorted_set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    items.into_iter().map(Into::into).collect::<BTreeSet<String>>().into_iter().collect()
}

/// Whether `list` holds `value`.
pub fn contains(list: &[String], value: &str) -> bool {
    list.iter().any(|s| s == value)
}

/// The places a finding is about: one place is reported as is, several as `spec`.
#[derive(Debug, Default)]
pub struct Places(Vec<String>);

impl Places {
    pub fn add(&mut self, path: String) {
        self.0.push(path);
    }

    pub fn path(self) -> String {
        match <[String; 1]>::try_from(self.0) {
            Ok([one]) => one,
            Err(_) => "spec".into(),
        }
    }
}

/// The finding of `check`: the message, `{"check": <upstream id>}` and the path.
pub fn finding(check: Check, message: String, path: String) -> Violation {
    Violation::new(message).details(json!({"check": check.id()})).at(path)
}

/// Parses a raw JSON field (already validated by the SDK's parser) as a value.
pub fn raw_value(raw: Option<&str>) -> Result<Value, String> {
    match raw {
        None => Ok(Value::Null),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("unexpected shape: {e}")),
    }
}

/// Field `k` of `o`, when set (present and not null; `None` when `o` is no object).
pub fn field<'v>(o: &'v Value, k: &str) -> Option<&'v Value> {
    o.get(k).filter(|v| !v.is_null())
}

/// Field `k` of `o` is set (present and not null).
pub fn has(o: &Value, k: &str) -> bool {
    field(o, k).is_some()
}

/// Field `k` of `o` when it is a string.
pub fn str_field<'v>(o: &'v Value, k: &str) -> Option<&'v str> {
    o.get(k).and_then(Value::as_str)
}

// Skip rules ------------------------------------------------------------------

/// The request's namespace as lib/pci.rego computes it: the review's, else the
/// object's.
pub fn namespace<'a>(request: &'a Request<'_>, object_namespace: Option<&'a str>) -> &'a str {
    match request.namespace() {
        "" => object_namespace.unwrap_or(""),
        ns => ns,
    }
}

/// Whether one of the `exempt_namespaces` globs names the namespace.
pub fn exempt(namespace: &str, patterns: &[String]) -> bool {
    !namespace.is_empty() && patterns.iter().any(|p| glob_match(p, namespace))
}

/// Gatekeeper-style glob: `*`, `prefix*`, `*suffix`, `*infix*` or an exact value
/// (any other `*` matches nothing).
pub fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (None, None) => !pattern.contains('*') && pattern == value,
        (None, Some(prefix)) => value.starts_with(prefix),
        (Some(suffix), None) => value.ends_with(suffix),
        (Some(rest), Some(_)) => value.contains(rest.strip_suffix('*').unwrap_or(rest)),
    }
}

const SCOPE_LABEL: &str = "pci-dss.palisade.dev/scope";

/// Whether the pod's Namespace is in a restricted scope (`cde`, `connected`).
pub fn restricted_namespace(request: &Request<'_>) -> Result<bool, String> {
    // Any shape parses: what is not an object with object labels has no scope.
    let ns: Option<Value> = request.namespace_object()?;
    let Some(ns) = ns else { return Ok(false) };
    let scope =
        ns.get("metadata").and_then(|m| m.get("labels")).and_then(|l| l.get(SCOPE_LABEL)).and_then(Value::as_str);
    Ok(matches!(scope, Some("cde" | "connected")))
}

pub const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// An UPDATE that changes neither the pod spec nor the AppArmor annotations
/// (`unchanged_update` of lib/pss.rego), given the raw review. Reads the raw objects:
/// the whole spec counts, not only the fields the checks read.
pub fn unchanged_update(review: &str) -> Result<bool, String> {
    let request = Request::parse_review(review)?;
    if request.operation() != palisade_sdk::Operation::Update {
        return Ok(false);
    }
    let old: Option<Value> = request.old_object()?;
    let Some(old) = old.filter(Value::is_object) else { return Ok(false) };
    let new: Value = request.object::<Value>()?.filter(Value::is_object).unwrap_or(Value::Object(Map::new()));
    let spec = |o: &Value| o.get("spec").cloned().unwrap_or(Value::Null);
    let (a, b) = (apparmor_annotations(&old), apparmor_annotations(&new));
    Ok(json_eq(&spec(&old), &spec(&new))
        && a.len() == b.len()
        && a.iter().all(|(k, v)| b.iter().any(|(l, w)| k == l && json_eq(v, w))))
}

fn apparmor_annotations(o: &Value) -> Vec<(&String, &Value)> {
    match o.get("metadata").and_then(|m| m.get("annotations")) {
        Some(Value::Object(a)) => a.iter().filter(|(k, _)| k.starts_with(APPARMOR_PREFIX)).collect(),
        _ => Vec::new(),
    }
}

/// Rego equality of JSON values: numbers compare by value (1 == 1.0).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// The evaluation context ----------------------------------------------------

/// What a check reads: the pod and the settings.
pub struct Ctx<'p, 'a> {
    pub check: Check,
    pub pod: &'p Pod<'a>,
    pub settings: &'p Settings,
}

impl<'p, 'a> Ctx<'p, 'a> {
    pub fn spec(&self) -> &'p PodSpec<'a> {
        &self.pod.spec
    }

    /// The pod-level securityContext as JSON (`null` when absent), read as the Rego
    /// reads it: a field of an unexpected type does not stop the checks of the others.
    pub fn pod_sc(&self) -> Result<Value, String> {
        let raw = &self.pod.spec.security_context;
        if raw.is_set() { raw_value(raw.raw()) } else { Ok(Value::Null) }
    }

    /// The finding of this check.
    pub fn finding(&self, message: String, places: Places) -> Option<Violation> {
        Some(finding(self.check, message, places.path()))
    }
}

/// A container's securityContext.
pub fn sc<'p>(c: &ContainerRef<'p, '_>) -> Option<&'p SecurityContext> {
    c.container.security_context.as_ref()
}

/// Rego's `sprintf("%v", [v])` (regorus): strings as they are, other values as
/// regorus prints them.
pub fn fmt_v(v: &Value) -> String {
    fn go(v: &Value, quote: bool, out: &mut String) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::String(s) if quote => out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| s.clone())),
            Value::String(s) => out.push_str(s),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => out.push_str(&i.to_string()),
                (_, Some(u), _) => out.push_str(&u.to_string()),
                (_, _, Some(f)) => out.push_str(&f.to_string()),
                _ => out.push_str(&n.to_string()),
            },
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(item, true, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(&Value::String(k.clone()), true, out);
                    out.push_str(": ");
                    go(item, true, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    go(v, false, &mut out);
    out
}
