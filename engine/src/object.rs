//! The Kubernetes object model Palisade works on: objects stay `serde_json::Value`
//! (policies see exactly what the user wrote), with typed accessors for what the
//! engine itself needs — group/version/kind, name, namespace, labels, scope — and
//! the extraction of pod templates from workloads (Deployment → Pod expansion).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Group, version and kind of an object (`apps`, `v1`, `Deployment`). The core group is `""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gvk {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl Gvk {
    /// Reads `apiVersion` and `kind` of an object; `None` when either is missing or not a string.
    pub fn of(object: &Value) -> Option<Gvk> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Some(Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() })
    }

    /// `group/version`, or just `version` for the core group (the `apiVersion` field).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The `kind` object of an AdmissionRequest: `{"group", "version", "kind"}`.
    pub fn to_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "kind": self.kind})
    }

    /// The `resource` object of an AdmissionRequest, using [`resource_name`] for the plural.
    pub fn resource_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "resource": resource_name(&self.group, &self.kind)})
    }

    /// Whether objects of this kind live in a namespace (see [`is_cluster_scoped`]).
    pub fn is_namespaced(&self) -> bool {
        !is_cluster_scoped(&self.group, &self.kind)
    }
}

/// Well-known kinds: (group, kind, plural resource, namespaced).
const KNOWN_KINDS: &[(&str, &str, &str, bool)] = &[
    ("", "Pod", "pods", true),
    ("", "Service", "services", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "Secret", "secrets", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "ReplicationController", "replicationcontrollers", true),
    ("", "Endpoints", "endpoints", true),
    ("", "LimitRange", "limitranges", true),
    ("", "ResourceQuota", "resourcequotas", true),
    ("", "Namespace", "namespaces", false),
    ("", "Node", "nodes", false),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", true),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", true),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", false),
    ("storage.k8s.io", "StorageClass", "storageclasses", false),
    ("storage.k8s.io", "CSIDriver", "csidrivers", false),
    ("node.k8s.io", "RuntimeClass", "runtimeclasses", false),
    ("scheduling.k8s.io", "PriorityClass", "priorityclasses", false),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", false),
    ("apiregistration.k8s.io", "APIService", "apiservices", false),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false),
    ("certificates.k8s.io", "CertificateSigningRequest", "certificatesigningrequests", false),
    ("gateway.networking.k8s.io", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io", "GatewayClass", "gatewayclasses", false),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    ("cert-manager.io", "Certificate", "certificates", true),
    ("cert-manager.io", "Issuer", "issuers", true),
    ("cert-manager.io", "ClusterIssuer", "clusterissuers", false),
    ("templates.gatekeeper.sh", "ConstraintTemplate", "constrainttemplates", false),
];

fn known(group: &str, kind: &str) -> Option<&'static (&'static str, &'static str, &'static str, bool)> {
    KNOWN_KINDS.iter().find(|(g, k, _, _)| *g == group && *k == kind)
}

/// The API groups of the well-known kinds with this name (usually one).
pub fn known_groups(kind: &str) -> Vec<String> {
    KNOWN_KINDS.iter().filter(|(_, k, _, _)| *k == kind).map(|(g, _, _, _)| g.to_string()).collect()
}

/// Whether a kind is cluster-scoped. Known cluster-scoped kinds are listed; everything
/// else (including unknown custom resources) is treated as namespaced.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    known(group, kind).is_some_and(|(_, _, _, namespaced)| !namespaced)
        || (group.ends_with("constraints.gatekeeper.sh"))
}

/// The plural resource name of a kind (`NetworkPolicy` → `networkpolicies`): from the
/// table of well-known kinds, else by the API server's default pluralisation rules.
pub fn resource_name(group: &str, kind: &str) -> String {
    if let Some((_, _, plural, _)) = known(group, kind) {
        return (*plural).to_string();
    }
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u'])) {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Whether the kind is one of the well-known kinds (whose scope is known).
pub fn is_well_known(group: &str, kind: &str) -> bool {
    known(group, kind).is_some()
}

/// The well-known kind of a plural resource (`apps`, `deployments` → `Deployment`).
pub fn kind_of_resource(group: &str, resource: &str) -> Option<&'static str> {
    KNOWN_KINDS.iter().find(|(g, _, r, _)| *g == group && *r == resource).map(|(_, k, _, _)| *k)
}

/// `metadata.name` (or `metadata.generateName` when there is no name).
pub fn name(object: &Value) -> Option<&str> {
    let meta = object.get("metadata")?;
    meta.get("name").and_then(Value::as_str).or_else(|| meta.get("generateName").and_then(Value::as_str))
}

/// `metadata.namespace`.
pub fn namespace(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("namespace")?.as_str()
}

/// `metadata.labels` as a map (empty when absent). Non-string values are ignored.
pub fn labels(object: &Value) -> impl Iterator<Item = (&str, &str)> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))))
}

/// One label value.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// Where an object came from when it was read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    /// File path as given (`-` for standard input).
    pub file: String,
    /// Index of the YAML/JSON document in the file, starting at 1.
    pub document: usize,
    /// Line where the document (or list item) starts, 1-based.
    pub line: usize,
}

/// A reference to the object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `apiVersion` of the object.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    /// Name (or generateName).
    pub name: String,
    /// File and document, when the object was read from a file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<SourceLocation>,
}

impl ObjectRef {
    /// The reference of an object as found in a document.
    pub fn of(object: &Value, source: Option<SourceLocation>) -> ObjectRef {
        ObjectRef {
            api_version: object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string(),
            kind: object.get("kind").and_then(Value::as_str).unwrap_or_default().to_string(),
            namespace: namespace(object).map(str::to_string),
            name: name(object).unwrap_or_default().to_string(),
            source,
        }
    }
}

impl std::fmt::Display for ObjectRef {
    /// `Kind/namespace/name` or `Kind/name`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Kinds whose pod template Palisade evaluates as a Pod, and where the template sits.
pub const WORKLOAD_TEMPLATES: &[(&str, &str, &[&str])] = &[
    ("apps", "Deployment", &["spec", "template"]),
    ("apps", "StatefulSet", &["spec", "template"]),
    ("apps", "DaemonSet", &["spec", "template"]),
    ("apps", "ReplicaSet", &["spec", "template"]),
    ("", "ReplicationController", &["spec", "template"]),
    ("batch", "Job", &["spec", "template"]),
    ("batch", "CronJob", &["spec", "jobTemplate", "spec", "template"]),
];

/// Path of the pod template inside a workload kind (`spec.template`), if it is one.
pub fn template_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    WORKLOAD_TEMPLATES.iter().find(|(g, k, _)| *g == group && *k == kind).map(|(_, _, p)| *p)
}

/// Builds the Pod a workload would create from its template: `apiVersion: v1`,
/// `kind: Pod`, the template's metadata (labels, annotations) with the workload's name
/// and namespace, and the template's spec. Returns the Pod and the template's path
/// (`spec.template`), or `None` when the object is not a workload or has no template.
pub fn synthesize_pod(workload: &Value, gvk: &Gvk) -> Option<(Value, String)> {
    let path = template_path(&gvk.group, &gvk.kind)?;
    let mut template = workload;
    for key in path {
        template = template.get(key)?;
    }
    let template = template.as_object()?;
    let mut metadata = template.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(n) = name(workload) {
        metadata.entry("name").or_insert_with(|| Value::String(n.to_string()));
    }
    if let Some(ns) = namespace(workload) {
        metadata.insert("namespace".into(), Value::String(ns.to_string()));
    }
    let mut pod = Map::new();
    pod.insert("apiVersion".into(), Value::String("v1".into()));
    pod.insert("kind".into(), Value::String("Pod".into()));
    pod.insert("metadata".into(), Value::Object(metadata));
    pod.insert("spec".into(), template.get("spec").cloned().unwrap_or_else(|| json!({})));
    Some((Value::Object(pod), path.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvk_and_scope() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"}});
        let gvk = Gvk::of(&d).unwrap();
        assert_eq!((gvk.group.as_str(), gvk.version.as_str()), ("apps", "v1"));
        assert!(gvk.is_namespaced());
        let ns = Gvk::of(&json!({"apiVersion": "v1", "kind": "Namespace"})).unwrap();
        assert_eq!(ns.group, "");
        assert!(!ns.is_namespaced());
        assert_eq!(resource_name("networking.k8s.io", "NetworkPolicy"), "networkpolicies");
        assert_eq!(resource_name("example.com", "Policy"), "policies");
        assert_eq!(resource_name("example.com", "Gateway"), "gateways");
        assert_eq!(resource_name("example.com", "Widget"), "widgets");
        assert_eq!(resource_name("example.com", "Class"), "classes");
    }

    #[test]
    fn synthesizes_pod_from_cronjob() {
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "i"}]}}}}}});
        let (pod, path) = synthesize_pod(&cj, &Gvk::of(&cj).unwrap()).unwrap();
        assert_eq!(path, "spec.jobTemplate.spec.template");
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["metadata"]["namespace"], "n");
        assert_eq!(pod["metadata"]["name"], "c");
        assert_eq!(pod["metadata"]["labels"]["a"], "b");
        assert_eq!(pod["spec"]["containers"][0]["name"], "x");
        let svc = json!({"apiVersion": "v1", "kind": "Service"});
        assert!(synthesize_pod(&svc, &Gvk::of(&svc).unwrap()).is_none());
    }
}
