//! `pci-workloads`: the pci-dss bundle's checks of workloads in one component: the
//! 19 Pod Security Standards checks of `plugins/pod-security` and the check of
//! `plugins/default-credentials`, compiled from those crates' own source files (the
//! `#[path]` modules below, so the three components cannot drift apart), and checks
//! of its own: four container checks (`containers.rs`: image-digest, no-latest-tag,
//! trusted-registries, read-only-root-filesystem) and apiserver-audit-logging
//! (`audit_logging.rs`). Each policy selects its check with the `check` setting (a
//! pod-security check name such as `privileged`, or the policy id of one of the
//! others), with that check's other settings beside it.
//!
//! Why one component: the host runs one fresh instance per component per object,
//! and each instance parses the review once. With the two plugins apart, a Pod paid
//! for two instances and two parses; together they cost a typical Deployment ~30 µs
//! less (benches/README.md). The standalone plugins stay for bundles that want one
//! of them alone.

mod audit_logging;
#[path = "../../pod-security/src/baseline.rs"]
mod baseline;
#[path = "../../pod-security/src/common.rs"]
mod common;
mod containers;
#[path = "../../default-credentials/src/credentials.rs"]
mod default_credentials;
#[path = "../../pod-security/src/policy.rs"]
mod pod_security;
#[path = "../../pod-security/src/restricted.rs"]
mod restricted;
#[path = "../../pod-security/src/settings.rs"]
mod settings;

#[cfg(test)]
mod tests;

use palisade_sdk::{Metadata, Policy, Request, Violation};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::default_credentials::{DefaultCredentials, known_default_count};
pub use crate::pod_security::PodSecurity;

/// The `check` value that selects default-credentials.
const DEFAULT_CREDENTIALS: &str = "default-credentials";

/// The policy: routes each policy to its check.
pub struct PciWorkloads;

/// The part of the settings that picks the check.
#[derive(Deserialize)]
struct Route {
    #[serde(default)]
    check: Option<String>,
}

/// Which implementation a `check` setting selects.
enum Target {
    DefaultCredentials,
    Container,
    AuditLogging,
    /// Also for a missing or unknown check: pod-security's error names its checks.
    PodSecurity,
}

impl Route {
    fn target(&self) -> Target {
        match self.check.as_deref() {
            Some(DEFAULT_CREDENTIALS) => Target::DefaultCredentials,
            Some(c) if containers::Check::parse(c).is_some() => Target::Container,
            Some(audit_logging::CHECK) => Target::AuditLogging,
            _ => Target::PodSecurity,
        }
    }
}

fn route(settings: &str) -> Target {
    serde_json::from_str::<Route>(settings).map_or(Target::PodSecurity, |r| r.target())
}

impl Policy for PciWorkloads {
    const PARSE_PODS: bool = true;

    fn metadata() -> Metadata {
        let (pss, dc) = (PodSecurity::metadata(), DefaultCredentials::metadata());
        let mut requirements = pss.requirements;
        let ours = containers::REQUIREMENTS.iter().chain(&audit_logging::REQUIREMENTS);
        let more = dc.requirements.into_iter().chain(ours.map(|r| r.to_string()));
        for r in more {
            if !requirements.contains(&r) {
                requirements.push(r);
            }
        }
        Metadata::new(
            "pci-workloads",
            env!("CARGO_PKG_VERSION"),
            "The pci-dss bundle's workload checks, one per policy: the Pod Security Standards checks (pss-*), default-credentials, four container checks and apiserver-audit-logging",
        )
        .kinds(["Pod", "ConfigMap", "Secret"])
        .requirements(requirements)
        .settings_schema(&schema(pss.settings_schema, dc.settings_schema))
    }

    fn validate_settings(settings: &str) -> Result<(), String> {
        match route(settings) {
            Target::DefaultCredentials => DefaultCredentials::validate_settings(settings),
            Target::Container => containers::validate(settings),
            Target::AuditLogging => audit_logging::validate(settings),
            Target::PodSecurity => PodSecurity::validate_settings(settings).map_err(|e| {
                format!("{e}; or {DEFAULT_CREDENTIALS}, {}, {}", containers::names().join(", "), audit_logging::CHECK)
            }),
        }
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        match request.settings::<Route>()?.target() {
            Target::DefaultCredentials => DefaultCredentials::evaluate(request),
            Target::Container => containers::evaluate(request),
            Target::AuditLogging => audit_logging::evaluate(request),
            Target::PodSecurity => PodSecurity::evaluate(request),
        }
    }
}

/// The schema of a list-of-strings setting (`null` reads as empty).
fn string_list() -> Value {
    json!({"type": ["array", "null"], "items": {"type": "string"}})
}

/// The schema of the check that `check` selects.
fn schema(pss: Option<String>, dc: Option<String>) -> String {
    // Each as a subschema: without the keywords only a schema's root may carry.
    let parse = |s: Option<String>| {
        let mut v = s.and_then(|s| serde_json::from_str::<Value>(&s).ok()).unwrap_or(json!({}));
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
        }
        v
    };
    let mut dc = parse(dc);
    if let Some(required) = dc.as_object_mut() {
        required.insert("required".into(), json!(["check"]));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pci-workloads settings",
        "type": "object",
        "required": ["check"],
        "if": {"properties": {"check": {"const": DEFAULT_CREDENTIALS}}},
        "then": dc,
        "else": {
            "if": {"properties": {"check": {"enum": containers::names()}}},
            "then": containers::schema(),
            "else": {
                "if": {"properties": {"check": {"const": audit_logging::CHECK}}},
                "then": audit_logging::schema(),
                "else": parse(pss),
            },
        },
    })
    .to_string()
}

palisade_sdk::export_policy!(PciWorkloads);
