//! Which objects a policy applies to: kinds (with API group), namespaces and excluded
//! namespaces (with `prefix*` / `*suffix` globs), label selector, namespace selector,
//! scope, operations and names. Matching happens before evaluation, so a policy that
//! does not match costs nothing.
//!
//! The same [`MatchSpec`] is read from `bundle.toml` (snake_case keys) and from
//! Gatekeeper constraints (camelCase keys); both spellings are accepted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::Gvk;

/// Kinds a policy applies to, either a shorthand string or Gatekeeper's `{apiGroups, kinds}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KindSelector {
    /// `"Pod"` (any API group), `"apps/Deployment"` (that group), `"core/Pod"` (core group only),
    /// `"*"` (everything).
    Short(String),
    /// `{ api_groups = ["apps"], kinds = ["Deployment"] }`; `"*"` is a wildcard in either list.
    Full {
        /// API groups (`""` is the core group, `"*"` any).
        #[serde(alias = "apiGroups", default)]
        api_groups: Vec<String>,
        /// Kinds (`"*"` any).
        #[serde(default)]
        kinds: Vec<String>,
    },
}

impl KindSelector {
    /// Whether the selector covers the kind.
    pub fn matches(&self, gvk: &Gvk) -> bool {
        match self {
            KindSelector::Short(s) => {
                if s == "*" {
                    return true;
                }
                match s.rsplit_once('/') {
                    Some((group, kind)) => {
                        let group = if group == "core" { "" } else { group };
                        group == gvk.group && (kind == gvk.kind || kind == "*")
                    }
                    None => s == &gvk.kind,
                }
            }
            KindSelector::Full { api_groups, kinds } => {
                let group_ok = api_groups.is_empty() || api_groups.iter().any(|g| g == "*" || g == &gvk.group);
                let kind_ok = kinds.is_empty() || kinds.iter().any(|k| k == "*" || k == &gvk.kind);
                group_ok && kind_ok
            }
        }
    }

    /// Whether this selector names the given kind explicitly (not through a wildcard).
    fn names_kind(&self, group: &str, kind: &str) -> bool {
        match self {
            KindSelector::Short(s) => match s.rsplit_once('/') {
                Some((g, k)) => (if g == "core" { "" } else { g }) == group && k == kind,
                None => s == kind,
            },
            KindSelector::Full { api_groups, kinds } => {
                kinds.iter().any(|k| k == kind)
                    && (api_groups.is_empty() || api_groups.iter().any(|g| g == "*" || g == group))
            }
        }
    }

    /// The (groups, kinds) this selector covers, for webhook configuration rules.
    pub fn groups_and_kinds(&self) -> (Vec<String>, Vec<String>) {
        match self {
            KindSelector::Short(s) if s == "*" => (vec!["*".into()], vec!["*".into()]),
            KindSelector::Short(s) => match s.rsplit_once('/') {
                Some((g, k)) => (vec![if g == "core" { String::new() } else { g.to_string() }], vec![k.to_string()]),
                None => (vec!["*".into()], vec![s.clone()]),
            },
            KindSelector::Full { api_groups, kinds } => (api_groups.clone(), kinds.clone()),
        }
    }
}

/// Whether a policy applies to cluster-scoped objects, namespaced ones, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Scope {
    /// Both (the default).
    #[default]
    #[serde(rename = "*", alias = "all")]
    All,
    /// Only cluster-scoped objects.
    #[serde(rename = "Cluster", alias = "cluster")]
    Cluster,
    /// Only namespaced objects.
    #[serde(rename = "Namespaced", alias = "namespaced")]
    Namespaced,
}

/// Admission operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
    /// Any operation (`*`).
    #[serde(rename = "*")]
    All,
}

impl Operation {
    /// The name the API server uses (`CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
            Operation::All => "*",
        }
    }

    /// Parses `CREATE`, `UPDATE`, `DELETE`, `CONNECT` (case-insensitive); `*` is only
    /// meaningful in match criteria and is not an operation.
    pub fn parse(s: &str) -> Option<Operation> {
        match s.to_ascii_uppercase().as_str() {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
}

/// The match criteria of a policy (`match = { ... }` in `bundle.toml`, `spec.match` of a
/// Gatekeeper constraint). Every criterion that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Kinds; empty means every kind.
    #[serde(default)]
    pub kinds: Vec<KindSelector>,
    /// Namespaces the object must be in (globs allowed); empty means any.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces excluded (globs allowed).
    #[serde(default, alias = "excludedNamespaces", alias = "exclude-namespaces")]
    pub exclude_namespaces: Vec<String>,
    /// Selector on the object's labels.
    #[serde(default, alias = "labelSelector", skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Selector on the labels of the object's Namespace.
    #[serde(default, alias = "namespaceSelector", skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Cluster, Namespaced or `*`.
    #[serde(default)]
    pub scope: Scope,
    /// Admission operations; empty means all. Ignored in scan mode (no operation).
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Object names (globs allowed); empty means any. Gatekeeper's singular `name` is accepted.
    #[serde(default, alias = "name", deserialize_with = "one_or_many")]
    pub names: Vec<String>,
    /// Whose matching rules apply: Palisade's (the default) or Gatekeeper's, for
    /// constraints loaded from Gatekeeper sources.
    #[serde(default, skip_serializing_if = "is_default")]
    pub semantics: Semantics,
}

/// Matching rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// Scope from the kind (known cluster-scoped kinds); a namespace selector whose
    /// Namespace is unknown does not match.
    #[default]
    Palisade,
    /// Gatekeeper's: an object without `metadata.namespace` counts as cluster-scoped;
    /// labels match on the object or the old object; a namespace selector whose
    /// Namespace is unknown is a match error (Gatekeeper's autoreject).
    Gatekeeper,
}

fn is_default(s: &Semantics) -> bool {
    *s == Semantics::Palisade
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What matching looks at, extracted once per object.
#[derive(Debug, Clone, Copy)]
pub struct MatchTarget<'a> {
    /// The object's kind.
    pub gvk: &'a Gvk,
    /// The object's namespace (for a Namespace object: its own name).
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
    /// The object (for labels; for DELETE, the old object).
    pub object: &'a Value,
    /// The previous object (UPDATE), for Gatekeeper's label matching.
    pub old_object: Option<&'a Value>,
    /// `metadata.namespace` as written (Gatekeeper decides scope from it).
    pub metadata_namespace: Option<&'a str>,
    /// The object's Namespace, when known.
    pub namespace_object: Option<&'a Value>,
    /// Admission operation; `None` in scan mode.
    pub operation: Option<Operation>,
}

/// Why a policy does not match (for `--explain`-style diagnostics and skipped reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Kind not listed.
    Kind,
    /// Scope differs.
    Scope,
    /// Namespace not included or excluded.
    Namespace,
    /// Labels do not match.
    Labels,
    /// Namespace labels do not match, or the Namespace is unknown.
    NamespaceSelector,
    /// Operation not listed.
    Operation,
    /// Name not listed.
    Name,
    /// Gatekeeper semantics: a namespace selector applies but the Namespace is unknown
    /// (Gatekeeper reports this as a result, not a skip).
    MissingNamespace,
}

impl MatchSpec {
    /// Checks every criterion; `Ok(())` when the policy applies.
    pub fn check(&self, t: &MatchTarget<'_>) -> Result<(), Mismatch> {
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k.matches(t.gvk)) {
            return Err(Mismatch::Kind);
        }
        let gatekeeper = self.semantics == Semantics::Gatekeeper;
        let is_namespace = t.gvk.group.is_empty() && t.gvk.kind == "Namespace";
        let namespaced = if gatekeeper {
            !is_namespace && t.metadata_namespace.is_some_and(|n| !n.is_empty())
        } else {
            t.gvk.is_namespaced()
        };
        match self.scope {
            Scope::Cluster if namespaced => return Err(Mismatch::Scope),
            Scope::Namespaced if !namespaced => return Err(Mismatch::Scope),
            _ => {}
        }
        if let Some(op) = t.operation
            && !self.operations.is_empty()
            && !self.operations.iter().any(|o| *o == Operation::All || *o == op)
        {
            return Err(Mismatch::Operation);
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| glob_match(n, t.name)) {
            return Err(Mismatch::Name);
        }
        // Namespace lists apply to namespaced objects and to Namespaces themselves.
        if namespaced || is_namespace {
            let ns = t.namespace.unwrap_or("");
            if !self.namespaces.is_empty() && !self.namespaces.iter().any(|p| glob_match(p, ns)) {
                return Err(Mismatch::Namespace);
            }
            if self.exclude_namespaces.iter().any(|p| glob_match(p, ns)) {
                return Err(Mismatch::Namespace);
            }
        }
        if let Some(sel) = &self.label_selector {
            let old = gatekeeper && t.old_object.is_some_and(|o| o.is_object() && selector_matches(sel, o));
            if !selector_matches(sel, t.object) && !old {
                return Err(Mismatch::Labels);
            }
        }
        if let Some(sel) = &self.namespace_selector {
            if is_namespace {
                if !selector_matches(sel, t.object) {
                    return Err(Mismatch::NamespaceSelector);
                }
            } else if namespaced {
                match t.namespace_object {
                    Some(ns) if selector_matches(sel, ns) => {}
                    None if gatekeeper => return Err(Mismatch::MissingNamespace),
                    _ => return Err(Mismatch::NamespaceSelector),
                }
            }
        }
        Ok(())
    }

    /// Whether the kinds list names `group/kind` explicitly (used to decide between
    /// evaluating a workload itself or the Pod synthesised from its template).
    pub fn names_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds.iter().any(|k| k.names_kind(group, kind))
    }

    /// Whether the policy could apply to Pods.
    pub fn matches_pods(&self) -> bool {
        let pod = Gvk { group: String::new(), version: "v1".into(), kind: "Pod".into() };
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k.matches(&pod))) && self.scope != Scope::Cluster
    }
}

/// Gatekeeper-style glob: `*` matches everything, `prefix*`, `*suffix`, `*infix*`, or exact.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(rest), _) if rest.ends_with('*') => value.contains(&rest[..rest.len() - 1]),
        (Some(suffix), _) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

/// Evaluates a Kubernetes label selector (matchLabels and matchExpressions with
/// `In`, `NotIn`, `Exists`, `DoesNotExist`) against an object's labels. An empty
/// selector matches everything; an unknown operator matches nothing.
pub fn selector_matches(sel: &LabelSelector, object: &Value) -> bool {
    let get = |key: &str| crate::object::label(object, key);
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| get(k) != Some(v.as_str()))
    {
        return false;
    }
    for expr in sel.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let actual = get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
            "NotIn" => actual.is_none_or(|a| !values.iter().any(|v| v == a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(toml_src: &str) -> MatchSpec {
        toml::from_str(toml_src).unwrap()
    }

    fn target<'a>(gvk: &'a Gvk, ns: Option<&'a str>, obj: &'a Value, nso: Option<&'a Value>) -> MatchTarget<'a> {
        MatchTarget {
            gvk,
            namespace: ns,
            name: "web",
            object: obj,
            old_object: None,
            metadata_namespace: ns,
            namespace_object: nso,
            operation: Some(Operation::Create),
        }
    }

    #[test]
    fn gatekeeper_semantics() {
        let pod = Gvk { group: "".into(), version: "v1".into(), kind: "Pod".into() };
        let obj = json!({"metadata": {"labels": {"app": "web"}}});
        let mut s = spec(
            r#"namespaces = ["prod"]
namespace_selector = { matchLabels = { env = "prod" } }
semantics = "gatekeeper""#,
        );
        // No metadata.namespace: cluster-scoped for Gatekeeper, so namespace criteria pass.
        let mut t = target(&pod, None, &obj, None);
        t.metadata_namespace = None;
        assert_eq!(s.check(&t), Ok(()));
        // Namespaced with an unknown Namespace: Gatekeeper's autoreject.
        assert_eq!(s.check(&target(&pod, Some("prod"), &obj, None)), Err(Mismatch::MissingNamespace));
        s.semantics = Semantics::Palisade;
        assert_eq!(s.check(&target(&pod, Some("prod"), &obj, None)), Err(Mismatch::NamespaceSelector));
        // Labels match on the object or the old object.
        let labelled = spec(
            r#"label_selector = { matchLabels = { app = "api" } }
semantics = "gatekeeper""#,
        );
        let old = json!({"metadata": {"labels": {"app": "api"}}});
        let mut t = target(&pod, Some("prod"), &obj, None);
        assert_eq!(labelled.check(&t), Err(Mismatch::Labels));
        t.old_object = Some(&old);
        assert_eq!(labelled.check(&t), Ok(()));
    }

    #[test]
    fn kinds_groups_namespaces() {
        let deploy = Gvk { group: "apps".into(), version: "v1".into(), kind: "Deployment".into() };
        let obj = json!({"metadata": {"labels": {"app": "web"}}});
        let s = spec(
            r#"kinds = ["apps/Deployment"]
exclude_namespaces = ["kube-*"]"#,
        );
        assert_eq!(s.check(&target(&deploy, Some("prod"), &obj, None)), Ok(()));
        assert_eq!(s.check(&target(&deploy, Some("kube-system"), &obj, None)), Err(Mismatch::Namespace));
        let s = spec(r#"kinds = [{ api_groups = ["extensions"], kinds = ["Deployment"] }]"#);
        assert_eq!(s.check(&target(&deploy, Some("prod"), &obj, None)), Err(Mismatch::Kind));
        let s = spec(r#"kinds = ["core/Deployment"]"#);
        assert_eq!(s.check(&target(&deploy, Some("prod"), &obj, None)), Err(Mismatch::Kind));
        let s = spec(
            r#"namespaces = ["*-prod"]
scope = "Namespaced"
operations = ["UPDATE"]"#,
        );
        assert_eq!(s.check(&target(&deploy, Some("a-prod"), &obj, None)), Err(Mismatch::Operation));
    }

    #[test]
    fn selectors() {
        let pod = Gvk { group: "".into(), version: "v1".into(), kind: "Pod".into() };
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "db"}}});
        let ns_cde = json!({"metadata": {"name": "pay", "labels": {"pci-dss.palisade.dev/scope": "cde"}}});
        let ns_out = json!({"metadata": {"name": "other"}});
        let s = spec(
            r#"label_selector = { matchLabels = { app = "web" }, matchExpressions = [{ key = "tier", operator = "NotIn", values = ["cache"] }] }
namespace_selector = { matchExpressions = [{ key = "pci-dss.palisade.dev/scope", operator = "In", values = ["cde", "connected"] }] }"#,
        );
        assert_eq!(s.check(&target(&pod, Some("pay"), &obj, Some(&ns_cde))), Ok(()));
        assert_eq!(s.check(&target(&pod, Some("other"), &obj, Some(&ns_out))), Err(Mismatch::NamespaceSelector));
        assert_eq!(s.check(&target(&pod, Some("unknown"), &obj, None)), Err(Mismatch::NamespaceSelector));
        let other = json!({"metadata": {"labels": {"app": "api"}}});
        assert_eq!(s.check(&target(&pod, Some("pay"), &other, Some(&ns_cde))), Err(Mismatch::Labels));
        // A Namespace is matched by the namespace selector against its own labels.
        let nsgvk = Gvk { group: "".into(), version: "v1".into(), kind: "Namespace".into() };
        assert_eq!(s.check(&target(&nsgvk, Some("pay"), &ns_cde, None)), Err(Mismatch::Labels));
        let s2 = spec(r#"namespace_selector = { matchLabels = { "pci-dss.palisade.dev/scope" = "cde" } }"#);
        assert_eq!(s2.check(&target(&nsgvk, Some("pay"), &ns_cde, None)), Ok(()));
    }

    #[test]
    fn gatekeeper_spelling() {
        let s: MatchSpec = serde_json::from_value(json!({
            "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
            "excludedNamespaces": ["kube-system"], "name": "web", "scope": "Namespaced"
        }))
        .unwrap();
        assert_eq!(s.names, vec!["web"]);
        assert!(s.matches_pods());
        assert!(s.names_kind("", "Pod"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("kube-*", "kube-system"));
        assert!(glob_match("*-system", "kube-system"));
        assert!(glob_match("*be-sy*", "kube-system"));
        assert!(!glob_match("kube-*", "default"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("x", "x"));
    }
}
