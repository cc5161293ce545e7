//! The security-relevant part of a Pod, using `k8s-openapi` types for the leaves
//! (security contexts, ports, probes, volumes) and skipping everything else, so a
//! policy pays only for the fields it reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerPort, Lifecycle, PodOS, PodSecurityContext, Probe, SecurityContext, Sysctl, Volume,
};
use serde::Deserialize;

/// A Pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Metadata.
    #[serde(default)]
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: PodSpec,
}

/// The metadata fields policies use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The security-relevant pod spec fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Init containers.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Ephemeral (debug) containers.
    #[serde(default)]
    pub ephemeral_containers: Vec<Container>,
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
    #[serde(default)]
    pub security_context: Option<PodSecurityContext>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<PodOS>,
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
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

/// The fields of a container (regular, init or ephemeral) policies use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Image.
    #[serde(default)]
    pub image: Option<String>,
    /// Security context.
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    /// Environment variables (name and literal value).
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Liveness probe.
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    /// Readiness probe.
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    /// Startup probe.
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    /// Lifecycle hooks.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
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
pub struct ContainerRef<'a> {
    /// Which list.
    pub kind: ContainerKind,
    /// Index in that list.
    pub index: usize,
    /// The container.
    pub container: &'a Container,
}

impl ContainerRef<'_> {
    /// JSON path of the container: `spec.containers[0]`.
    pub fn path(&self) -> String {
        format!("spec.{}[{}]", self.kind.field(), self.index)
    }
}

impl PodSpec {
    /// Every container, in the order Kubernetes lists them: containers, init
    /// containers, ephemeral containers.
    pub fn all_containers(&self) -> impl Iterator<Item = ContainerRef<'_>> {
        fn tag(kind: ContainerKind, list: &[Container]) -> impl Iterator<Item = ContainerRef<'_>> {
            list.iter().enumerate().map(move |(index, container)| ContainerRef { kind, index, container })
        }
        tag(ContainerKind::Container, &self.containers)
            .chain(tag(ContainerKind::Init, &self.init_containers))
            .chain(tag(ContainerKind::Ephemeral, &self.ephemeral_containers))
    }

    /// The pod's sysctls.
    pub fn sysctls(&self) -> &[Sysctl] {
        self.security_context.as_ref().and_then(|s| s.sysctls.as_deref()).unwrap_or_default()
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
    fn all_containers_in_order_with_paths() {
        let pod: Pod = serde_json::from_str(
            r#"{"spec": {"containers": [{"name": "a", "securityContext": {"privileged": true}, "resources": {"limits": {"cpu": "1"}}}],
                "initContainers": [{"name": "i"}], "ephemeralContainers": [{"name": "e", "targetContainerName": "a"}],
                "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}}}"#,
        )
        .unwrap();
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
        assert_eq!(pod.spec.sysctls()[0].name, "kernel.shm_rmid_forced");
    }
}
