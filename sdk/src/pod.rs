//! The security-relevant part of a Pod, read lazily: scalar fields and container
//! security contexts are parsed eagerly (`k8s-openapi` types); bulkier fields
//! (volumes, probes, ports, env, labels, ...) stay raw JSON slices of the input
//! until a policy asks for them through [`Lazy::get`]. A policy pays only for the
//! fields it reads.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::{ContainerPort, Lifecycle, PodSecurityContext, Probe, SecurityContext, Volume};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A field kept as raw JSON until [`Lazy::get`] parses it as `T`.
pub struct Lazy<'a, T> {
    raw: Option<&'a RawValue>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Lazy<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Lazy<'_, T> {}

impl<T> Default for Lazy<'_, T> {
    fn default() -> Self {
        Lazy { raw: None, _type: PhantomData }
    }
}

impl<T> std::fmt::Debug for Lazy<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.raw.map(RawValue::get).unwrap_or("null"))
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for Lazy<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lazy { raw: Option::<&'a RawValue>::deserialize(d)?, _type: PhantomData })
    }
}

impl<'a, T: DeserializeOwned + Default> Lazy<'a, T> {
    /// Parses the field; absent or `null` gives `T::default()`.
    pub fn get(&self) -> Result<T, String> {
        match self.raw.map(RawValue::get) {
            None | Some("null") => Ok(T::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| format!("unexpected shape: {e}")),
        }
    }

    /// Whether the field is present and not `null`.
    pub fn is_set(&self) -> bool {
        self.raw.is_some_and(|r| r.get() != "null")
    }

    /// The raw JSON text, if present.
    pub fn raw(&self) -> Option<&'a str> {
        self.raw.map(RawValue::get)
    }
}

/// A Pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod<'a> {
    /// Metadata.
    #[serde(default, borrow)]
    pub metadata: Meta<'a>,
    /// Spec.
    #[serde(default, borrow)]
    pub spec: PodSpec<'a>,
}

/// The metadata fields policies use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta<'a> {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, borrow)]
    pub labels: Lazy<'a, BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, borrow)]
    pub annotations: Lazy<'a, BTreeMap<String, String>>,
}

/// `spec.os`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodOs {
    /// `linux` or `windows`.
    #[serde(default)]
    pub name: String,
}

/// The security-relevant pod spec fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    /// Containers.
    #[serde(default, borrow)]
    pub containers: Vec<Container<'a>>,
    /// Init containers.
    #[serde(default, borrow)]
    pub init_containers: Vec<Container<'a>>,
    /// Ephemeral (debug) containers.
    #[serde(default, borrow)]
    pub ephemeral_containers: Vec<Container<'a>>,
    /// hostNetwork.
    #[serde(default)]
    pub host_network: Option<bool>,
    /// hostPID.
    #[serde(default, rename = "hostPID")]
    pub host_pid: Option<bool>,
    /// hostIPC.
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    /// hostUsers (false = user namespaces).
    #[serde(default)]
    pub host_users: Option<bool>,
    /// Pod security context.
    #[serde(default, borrow)]
    pub security_context: Lazy<'a, Option<PodSecurityContext>>,
    /// Volumes.
    #[serde(default, borrow)]
    pub volumes: Lazy<'a, Vec<Volume>>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<PodOs>,
    /// Service account name.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Whether the service account token is mounted.
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
    /// Runtime class.
    #[serde(default)]
    pub runtime_class_name: Option<String>,
    /// Node selector.
    #[serde(default, borrow)]
    pub node_selector: Lazy<'a, BTreeMap<String, String>>,
}

/// The fields of a container (regular, init or ephemeral) policies use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Image.
    #[serde(default)]
    pub image: Option<String>,
    /// Entrypoint (`command`); items as written (Kubernetes accepts only strings).
    #[serde(default, borrow)]
    pub command: Lazy<'a, Vec<serde_json::Value>>,
    /// Arguments (`args`); items as written.
    #[serde(default, borrow)]
    pub args: Lazy<'a, Vec<serde_json::Value>>,
    /// Security context.
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// Ports.
    #[serde(default, borrow)]
    pub ports: Lazy<'a, Vec<ContainerPort>>,
    /// Environment variables (name and literal value).
    #[serde(default, borrow)]
    pub env: Lazy<'a, Vec<EnvVar>>,
    /// Liveness probe.
    #[serde(default, borrow)]
    pub liveness_probe: Lazy<'a, Option<Probe>>,
    /// Readiness probe.
    #[serde(default, borrow)]
    pub readiness_probe: Lazy<'a, Option<Probe>>,
    /// Startup probe.
    #[serde(default, borrow)]
    pub startup_probe: Lazy<'a, Option<Probe>>,
    /// Lifecycle hooks.
    #[serde(default, borrow)]
    pub lifecycle: Lazy<'a, Option<Lifecycle>>,
}

/// An environment variable with a literal value (`valueFrom` is not read).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Literal value.
    #[serde(default)]
    pub value: Option<String>,
}

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `spec.containers`.
    Container,
    /// `spec.initContainers`.
    Init,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

impl ContainerKind {
    /// The field name in the pod spec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// A container with where it sits in the pod.
#[derive(Debug, Clone, Copy)]
pub struct ContainerRef<'p, 'a> {
    /// Which list.
    pub kind: ContainerKind,
    /// Index in that list.
    pub index: usize,
    /// The container.
    pub container: &'p Container<'a>,
}

impl ContainerRef<'_, '_> {
    /// JSON path of the container: `spec.containers[0]`.
    pub fn path(&self) -> String {
        format!("spec.{}[{}]", self.kind.field(), self.index)
    }
}

impl<'a> PodSpec<'a> {
    /// Every container, in the order Kubernetes lists them: containers, init
    /// containers, ephemeral containers.
    pub fn all_containers(&self) -> impl Iterator<Item = ContainerRef<'_, 'a>> {
        self.containers_of(ContainerKind::Container)
            .chain(self.containers_of(ContainerKind::Init))
            .chain(self.containers_of(ContainerKind::Ephemeral))
    }

    /// The containers of one list, with their kind and index.
    pub fn containers_of(&self, kind: ContainerKind) -> impl Iterator<Item = ContainerRef<'_, 'a>> {
        let list = match kind {
            ContainerKind::Container => &self.containers,
            ContainerKind::Init => &self.init_containers,
            ContainerKind::Ephemeral => &self.ephemeral_containers,
        };
        list.iter().enumerate().map(move |(index, container)| ContainerRef { kind, index, container })
    }

    /// Whether the pod declares a Windows OS.
    pub fn is_windows(&self) -> bool {
        self.os.as_ref().is_some_and(|o| o.name == "windows")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_containers_in_order_with_paths_and_lazy_fields() {
        let text = r#"{"spec": {"containers": [{"name": "a", "securityContext": {"privileged": true}, "resources": {"limits": {"cpu": "1"}},
                "env": [{"name": "X", "value": "1"}]}],
                "initContainers": [{"name": "i"}], "ephemeralContainers": [{"name": "e", "targetContainerName": "a"}],
                "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}}}"#;
        let pod: Pod<'_> = serde_json::from_str(text).unwrap();
        let all: Vec<_> = pod.spec.all_containers().map(|c| (c.container.name.clone(), c.path())).collect();
        assert_eq!(
            all,
            [
                ("a".into(), "spec.containers[0]".into()),
                ("i".into(), "spec.initContainers[0]".into()),
                ("e".into(), "spec.ephemeralContainers[0]".into())
            ]
        );
        assert_eq!(pod.spec.containers[0].security_context.as_ref().and_then(|s| s.privileged), Some(true));
        assert_eq!(pod.spec.containers[0].env.get().unwrap()[0].value.as_deref(), Some("1"));
        assert!(pod.spec.containers[1 - 1].ports.get().unwrap().is_empty());
        let sc = pod.spec.security_context.get().unwrap().unwrap();
        assert_eq!(sc.sysctls.unwrap()[0].name, "kernel.shm_rmid_forced");
        assert!(!pod.metadata.labels.is_set());
        assert!(pod.spec.volumes.get().unwrap().is_empty());
    }
}
