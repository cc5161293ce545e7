//! `pod-privileged`: denies Pods with a privileged container of any kind (regular,
//! init, ephemeral) — the same policy Kubewarden ships as `pod-privileged`, so the
//! two can be compared.

use palisade_sdk::{Metadata, Policy, Request, Violation};

/// The policy.
pub struct PodPrivileged;

impl Policy for PodPrivileged {
    const PARSE_PODS: bool = true;

    fn metadata() -> Metadata {
        Metadata::new("pod-privileged", env!("CARGO_PKG_VERSION"), "Containers must not run privileged")
            .kinds(["Pod"])
            .requirements(["2.2.5", "7.2.2"])
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let Some(pod) = request.pod()? else { return Ok(Vec::new()) };
        Ok(pod
            .spec
            .all_containers()
            .filter(|c| c.container.security_context.as_ref().and_then(|s| s.privileged) == Some(true))
            .map(|c| {
                Violation::new(format!("container {} must not run privileged", c.container.name))
                    .at(format!("{}.securityContext.privileged", c.path()))
            })
            .collect())
    }
}

palisade_sdk::export_policy!(PodPrivileged);

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_sdk::testing::{evaluate, input};
    use serde_json::json;

    #[test]
    fn finds_privileged_containers_of_every_kind() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "spec": {
            "containers": [{"name": "ok"}, {"name": "bad", "securityContext": {"privileged": true}}],
            "initContainers": [{"name": "init", "securityContext": {"privileged": true}}],
            "ephemeralContainers": [{"name": "dbg", "securityContext": {"privileged": false}}]}});
        let found = evaluate::<PodPrivileged>(&input(&pod)).unwrap();
        let paths: Vec<_> = found.iter().map(|v| v.path.clone().unwrap()).collect();
        assert_eq!(
            paths,
            ["spec.containers[1].securityContext.privileged", "spec.initContainers[0].securityContext.privileged"]
        );
        assert_eq!(found[0].message, "container bad must not run privileged");
    }

    #[test]
    fn ignores_other_kinds() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert!(evaluate::<PodPrivileged>(&input(&svc)).unwrap().is_empty());
    }
}
