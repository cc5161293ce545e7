//! The [`PodSecurity`] policy: settings to check, the skip rules, the finding.
//! `plugins/pci-workloads` compiles this file (and the check modules) into its
//! component too, so it names its siblings through `crate::`.

use palisade_sdk::{Metadata, Operation, Policy, Request, Violation};

use crate::common::{self, Ctx};
use crate::settings::{self, Check, Settings};
use crate::{baseline, restricted};

/// The policy.
pub struct PodSecurity;

impl Policy for PodSecurity {
    const PARSE_PODS: bool = true;

    fn metadata() -> Metadata {
        Metadata::new(
            "pod-security",
            env!("CARGO_PKG_VERSION"),
            "Pod Security Standards (Kubernetes v1.37) checks, one per policy: the pci-dss bundle's pss-* policies",
        )
        .kinds(["Pod"])
        .requirements(["2.2.1", "2.2.5", "2.2.6", "5.3.5"])
        .settings_schema(&settings::schema())
    }

    fn validate_settings(settings: &str) -> Result<(), String> {
        settings::validate(settings)
    }

    /// The check's finding on the one-pass parse; then, only for an UPDATE with a
    /// finding, the unchanged-UPDATE skip, which compares the whole old and new pod
    /// specs (fields the checks do not read included) and so parses the raw review.
    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let found = Self::check(request)?;
        if !found.is_empty()
            && request.operation() == Operation::Update
            && common::unchanged_update(request.review_json())?
        {
            return Ok(Vec::new());
        }
        Ok(found)
    }
}

impl PodSecurity {
    /// The check the settings select, without the unchanged-UPDATE skip.
    fn check(request: &Request) -> Result<Vec<Violation>, String> {
        let settings: Settings = request.settings()?;
        let check = settings.check()?;
        let Some(pod) = request.shared_pod()? else { return Ok(Vec::new()) };
        let namespace = common::namespace(request, pod.metadata.namespace.as_deref());
        if common::exempt(namespace, settings.exempt_namespaces()) {
            return Ok(Vec::new());
        }
        let ctx = Ctx { check, pod: &pod, settings: &settings };
        let found = match check {
            Check::Privileged => baseline::privileged(&ctx),
            Check::HostNamespaces => baseline::host_namespaces(&ctx),
            Check::HostPorts => baseline::host_ports(&ctx),
            Check::HostPathVolumes => baseline::host_path_volumes(&ctx),
            Check::HostProbesLifecycle => baseline::host_probes_lifecycle(&ctx),
            Check::CapabilitiesBaseline => baseline::capabilities_baseline(&ctx),
            Check::AppArmor => baseline::app_armor(&ctx),
            Check::Selinux => baseline::selinux(&ctx),
            Check::ProcMount => baseline::proc_mount(&ctx, true),
            Check::SeccompBaseline => baseline::seccomp_baseline(&ctx),
            Check::Sysctls => baseline::sysctls(&ctx),
            Check::WindowsHostProcess => baseline::windows_host_process(&ctx),
            Check::AllowPrivilegeEscalation => restricted::allow_privilege_escalation(&ctx),
            Check::CapabilitiesRestricted => restricted::capabilities_restricted(&ctx),
            Check::ProcMountRestricted => baseline::proc_mount(&ctx, false),
            Check::RestrictedVolumes => restricted::restricted_volumes(&ctx),
            Check::RunAsNonRoot => restricted::run_as_non_root(&ctx),
            Check::RunAsUser => restricted::run_as_user(&ctx),
            Check::SeccompRestricted => restricted::seccomp_restricted(&ctx),
        }?;
        let Some(found) = found else { return Ok(Vec::new()) };
        // Read the Namespace only when there is something to report.
        if check.overridden_when_restricted() && common::restricted_namespace(request)? {
            return Ok(Vec::new());
        }
        Ok(vec![found])
    }
}
