//! The settings: which check to run (`check`) and the parameters of the matching
//! `pss-*` policy of the pci-dss bundle (`exempt_namespaces` and the allowed lists).
//!
//! A list parameter that is absent or `null` is empty, as in the Rego (where `x in
//! input.parameters.absent` is undefined): with no `allowed_types`, every seccomp
//! profile type is forbidden.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// One Pod Security Standards check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Privileged,
    HostNamespaces,
    HostPorts,
    HostPathVolumes,
    HostProbesLifecycle,
    CapabilitiesBaseline,
    AppArmor,
    Selinux,
    ProcMount,
    SeccompBaseline,
    Sysctls,
    WindowsHostProcess,
    AllowPrivilegeEscalation,
    CapabilitiesRestricted,
    ProcMountRestricted,
    RestrictedVolumes,
    RunAsNonRoot,
    RunAsUser,
    SeccompRestricted,
}

/// A check's setting name, upstream id, and the parameters it takes besides
/// `exempt_namespaces`.
struct Info {
    check: Check,
    name: &'static str,
    id: &'static str,
    params: &'static [&'static str],
}

const CHECKS: &[Info] = &[
    Info { check: Check::Privileged, name: "privileged", id: "privileged", params: &[] },
    Info { check: Check::HostNamespaces, name: "host-namespaces", id: "hostNamespaces", params: &[] },
    Info { check: Check::HostPorts, name: "host-ports", id: "hostPorts", params: &[] },
    Info { check: Check::HostPathVolumes, name: "host-path-volumes", id: "hostPathVolumes", params: &[] },
    Info {
        check: Check::HostProbesLifecycle,
        name: "host-probes-lifecycle",
        id: "hostProbesAndHostLifecycle",
        params: &[],
    },
    Info {
        check: Check::CapabilitiesBaseline,
        name: "capabilities-baseline",
        id: "capabilities_baseline",
        params: &["allowed_capabilities"],
    },
    Info {
        check: Check::AppArmor,
        name: "app-armor",
        id: "appArmorProfile",
        params: &["allowed_types", "allowed_annotation_values", "allowed_annotation_prefixes"],
    },
    Info { check: Check::Selinux, name: "selinux", id: "seLinuxOptions", params: &["allowed_types"] },
    Info { check: Check::ProcMount, name: "proc-mount", id: "procMount", params: &["allowed_proc_mount_types"] },
    Info {
        check: Check::SeccompBaseline,
        name: "seccomp-baseline",
        id: "seccompProfile_baseline",
        params: &["allowed_types"],
    },
    Info { check: Check::Sysctls, name: "sysctls", id: "sysctls", params: &["allowed_sysctls"] },
    Info { check: Check::WindowsHostProcess, name: "windows-host-process", id: "windowsHostProcess", params: &[] },
    Info {
        check: Check::AllowPrivilegeEscalation,
        name: "allow-privilege-escalation",
        id: "allowPrivilegeEscalation",
        params: &[],
    },
    Info {
        check: Check::CapabilitiesRestricted,
        name: "capabilities-restricted",
        id: "capabilities_restricted",
        params: &["allowed_add_capabilities"],
    },
    Info {
        check: Check::ProcMountRestricted,
        name: "proc-mount-restricted",
        id: "procMount_restricted",
        params: &["allowed_proc_mount_types"],
    },
    Info {
        check: Check::RestrictedVolumes,
        name: "restricted-volumes",
        id: "restrictedVolumes",
        params: &["allowed_volume_types"],
    },
    Info { check: Check::RunAsNonRoot, name: "run-as-non-root", id: "runAsNonRoot", params: &[] },
    Info { check: Check::RunAsUser, name: "run-as-user", id: "runAsUser", params: &[] },
    Info {
        check: Check::SeccompRestricted,
        name: "seccomp-restricted",
        id: "seccompProfile_restricted",
        params: &["allowed_types"],
    },
];

/// Every list parameter, with its description for the schema.
const PARAMS: &[(&str, &str)] = &[
    ("exempt_namespaces", "Namespaces (globs: `*`, `prefix*`, `*suffix`, `*infix*`) whose pods are not checked"),
    ("allowed_capabilities", "capabilities-baseline: capabilities containers may add"),
    ("allowed_types", "app-armor, selinux, seccomp-baseline, seccomp-restricted: allowed profile / SELinux types"),
    (
        "allowed_annotation_values",
        "app-armor: allowed values of container.apparmor.security.beta.kubernetes.io/* annotations",
    ),
    ("allowed_annotation_prefixes", "app-armor: allowed prefixes of those annotation values"),
    ("allowed_proc_mount_types", "proc-mount, proc-mount-restricted: allowed securityContext.procMount values"),
    ("allowed_sysctls", "sysctls: allowed sysctl names (exact match)"),
    ("allowed_add_capabilities", "capabilities-restricted: capabilities containers may add"),
    ("allowed_volume_types", "restricted-volumes: allowed volume source fields"),
];

impl Check {
    fn info(self) -> &'static Info {
        // Every variant has exactly one entry.
        CHECKS.iter().find(|i| i.check == self).unwrap_or(&CHECKS[0])
    }

    /// The `check` setting's value, e.g. `host-ports`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Upstream's check id, reported in each finding's details.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The check named by a `check` setting.
    pub fn parse(name: &str) -> Result<Check, String> {
        CHECKS.iter().find(|i| i.name == name).map(|i| i.check).ok_or_else(|| {
            let names: Vec<_> = CHECKS.iter().map(|i| i.name).collect();
            format!("unknown check {name:?}: expected one of {}", names.join(", "))
        })
    }

    /// The baseline checks that upstream's restricted profile overrides: they step
    /// aside in restricted (cde, connected) namespaces.
    pub fn overridden_when_restricted(self) -> bool {
        matches!(self, Check::HostPathVolumes | Check::CapabilitiesBaseline | Check::SeccompBaseline | Check::ProcMount)
    }
}

/// The settings as evaluation reads them (validated by [`validate`] at load).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    exempt_namespaces: Option<Vec<String>>,
    #[serde(default)]
    allowed_capabilities: Option<Vec<String>>,
    #[serde(default)]
    allowed_types: Option<Vec<String>>,
    #[serde(default)]
    allowed_annotation_values: Option<Vec<String>>,
    #[serde(default)]
    allowed_annotation_prefixes: Option<Vec<String>>,
    #[serde(default)]
    allowed_proc_mount_types: Option<Vec<String>>,
    #[serde(default)]
    allowed_sysctls: Option<Vec<String>>,
    #[serde(default)]
    allowed_add_capabilities: Option<Vec<String>>,
    #[serde(default)]
    allowed_volume_types: Option<Vec<String>>,
}

fn list(l: &Option<Vec<String>>) -> &[String] {
    l.as_deref().unwrap_or(&[])
}

impl Settings {
    /// The selected check.
    pub fn check(&self) -> Result<Check, String> {
        match &self.check {
            Some(name) => Check::parse(name),
            None => Err(missing_check()),
        }
    }
    pub fn exempt_namespaces(&self) -> &[String] {
        list(&self.exempt_namespaces)
    }
    pub fn allowed_capabilities(&self) -> &[String] {
        list(&self.allowed_capabilities)
    }
    pub fn allowed_types(&self) -> &[String] {
        list(&self.allowed_types)
    }
    pub fn allowed_annotation_values(&self) -> &[String] {
        list(&self.allowed_annotation_values)
    }
    pub fn allowed_annotation_prefixes(&self) -> &[String] {
        list(&self.allowed_annotation_prefixes)
    }
    pub fn allowed_proc_mount_types(&self) -> &[String] {
        list(&self.allowed_proc_mount_types)
    }
    pub fn allowed_sysctls(&self) -> &[String] {
        list(&self.allowed_sysctls)
    }
    pub fn allowed_add_capabilities(&self) -> &[String] {
        list(&self.allowed_add_capabilities)
    }
    pub fn allowed_volume_types(&self) -> &[String] {
        list(&self.allowed_volume_types)
    }
}

fn missing_check() -> String {
    let names: Vec<_> = CHECKS.iter().map(|i| i.name).collect();
    format!("the setting \"check\" is required: one of {}", names.join(", "))
}

/// Checks the settings document, naming the offending setting.
pub fn validate(text: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("settings are not JSON: {e}"))?;
    let Value::Object(map) = doc else {
        return Err("settings must be a JSON object".into());
    };
    let check = match map.get("check") {
        None | Some(Value::Null) => return Err(missing_check()),
        Some(Value::String(name)) => Check::parse(name)?,
        Some(other) => return Err(format!("the setting \"check\" must be a string, got {other}")),
    };
    let takes = check.info().params;
    for (key, value) in &map {
        if key == "check" {
            continue;
        }
        if !PARAMS.iter().any(|(p, _)| p == key) {
            let known: Vec<_> = PARAMS.iter().map(|(p, _)| *p).collect();
            return Err(format!("unknown setting {key:?}: expected \"check\" or one of {}", known.join(", ")));
        }
        if key != "exempt_namespaces" && !takes.contains(&key.as_str()) {
            let mut accepted = vec!["exempt_namespaces"];
            accepted.extend(takes);
            return Err(format!(
                "the setting {key:?} does not apply to check {:?} (it takes {})",
                check.name(),
                accepted.join(", ")
            ));
        }
        match value {
            Value::Null => {}
            Value::Array(items) if items.iter().all(Value::is_string) => {}
            _ => return Err(format!("the setting {key:?} must be a list of strings, got {value}")),
        }
    }
    serde_json::from_str::<Settings>(text).map(drop).map_err(|e| format!("invalid settings: {e}"))
}

/// The JSON Schema of the settings: `check` is required, and each check accepts only
/// its own parameters.
pub fn schema() -> String {
    let strings =
        |description: &str| json!({"type": ["array", "null"], "items": {"type": "string"}, "description": description});
    let mut properties = Map::new();
    properties.insert(
        "check".into(),
        json!({
            "type": "string",
            "enum": CHECKS.iter().map(|i| i.name).collect::<Vec<_>>(),
            "description": "The Pod Security Standards check to run: the pss-* policy id without `pss-`"
        }),
    );
    for (name, description) in PARAMS {
        properties.insert((*name).into(), strings(description));
    }
    let per_check: Vec<Value> = CHECKS
        .iter()
        .map(|i| {
            let mut names = vec!["check", "exempt_namespaces"];
            names.extend(i.params);
            json!({
                "if": {"properties": {"check": {"const": i.name}}},
                "then": {"propertyNames": {"enum": names}}
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pod-security settings",
        "type": "object",
        "required": ["check"],
        "additionalProperties": false,
        "properties": properties,
        "allOf": per_check,
    })
    .to_string()
}
