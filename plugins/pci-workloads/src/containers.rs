//! The pci-dss bundle's checks of a Pod's containers that are not Pod Security
//! Standards: `image-digest`, `no-latest-tag`, `trusted-registries` and
//! `read-only-root-filesystem`. Each is the twin of its Rego policy
//! (`rules/software/*.rego`, `rules/change/read_only_root_filesystem.rego`), with the
//! same messages, which `palisade test` compares on every case of the bundle. As in
//! the Rego, a policy's findings form a set (two containers with the same name and
//! image give one finding), containers are visited init, regular, ephemeral, and a
//! Pod in an `exempt_namespaces` namespace has none.

use std::collections::BTreeSet;

use palisade_sdk::pod::ContainerRef;
use palisade_sdk::{Request, Violation};
use serde::Deserialize;
use serde_json::json;

use crate::common;

/// One container check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    ImageDigest,
    NoLatestTag,
    TrustedRegistries,
    ReadOnlyRootFilesystem,
}

/// Each check's `check` setting (its policy id).
pub const CHECKS: [(&str, Check); 4] = [
    ("image-digest", Check::ImageDigest),
    ("no-latest-tag", Check::NoLatestTag),
    ("trusted-registries", Check::TrustedRegistries),
    ("read-only-root-filesystem", Check::ReadOnlyRootFilesystem),
];

/// The requirements of the four policies (bundle.toml).
pub const REQUIREMENTS: [&str; 4] = ["6.3.1", "6.3.2", "6.5.1", "11.5.2"];

/// The `check` settings of the four.
pub fn names() -> Vec<&'static str> {
    CHECKS.iter().map(|(n, _)| *n).collect()
}

impl Check {
    /// The check a `check` setting names, if it is one of these.
    pub fn parse(name: &str) -> Option<Check> {
        CHECKS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
}

/// The settings: the policy's Rego parameters plus `check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    check: String,
    #[serde(default)]
    exempt_namespaces: Option<Vec<String>>,
    /// trusted-registries: registry or repository prefixes (absent: the Rego policy
    /// reports nothing, as its message cannot be built).
    #[serde(default)]
    allowed_registries: Option<Vec<String>>,
}

impl Settings {
    /// The check, once the settings are known to fit it.
    fn check(&self) -> Result<Check, String> {
        let check = Check::parse(&self.check).ok_or_else(|| format!("unknown check {:?}", self.check))?;
        if self.allowed_registries.is_some() && check != Check::TrustedRegistries {
            return Err(format!("the setting \"allowed_registries\" does not apply to check {:?}", self.check));
        }
        Ok(check)
    }
}

/// Checks the settings of a container check.
pub fn validate(settings: &str) -> Result<(), String> {
    let s: Settings = serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
    s.check().map(drop)
}

/// The settings' JSON Schema (a subschema of pci-workloads').
pub fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "check": {"enum": names()},
            "exempt_namespaces": crate::string_list(),
            "allowed_registries": crate::string_list(),
        },
    })
}

/// Evaluates the check the settings select.
pub fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
    let settings: Settings = request.settings()?;
    let check = settings.check()?;
    let Some(pod) = request.shared_pod()? else { return Ok(Vec::new()) };
    let namespace = common::namespace(request, pod.metadata.namespace.as_deref());
    if common::exempt(namespace, settings.exempt_namespaces.as_deref().unwrap_or_default()) {
        return Ok(Vec::new());
    }
    if check == Check::TrustedRegistries && settings.allowed_registries.is_none() {
        return Ok(Vec::new());
    }
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in common::visit(&pod.spec) {
        if let Some(v) = finding(check, &settings, &c, pod_name)
            && seen.insert(v.message.clone())
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// The container's finding for the check, if any.
fn finding(check: Check, s: &Settings, c: &ContainerRef<'_, '_>, pod: &str) -> Option<Violation> {
    let name = common::name(c);
    let image = c.container.image.as_deref();
    let at_image = || format!("{}.image", c.path());
    let about = |image: &str| json!({"container": name, "image": image});
    match check {
        Check::ImageDigest => {
            let image = image.unwrap_or("");
            (!has_digest(image)).then(|| {
                let quoted = serde_json::to_string(image).unwrap_or_default();
                Violation::new(format!(
                    "container {name} of pod {pod} uses image {quoted}, not pinned by digest: use <image>@sha256:<digest>"
                ))
                .details(about(image))
                .at(at_image())
            })
        }
        Check::NoLatestTag => {
            let image = image?;
            (!has_digest(image) && !versioned(image)).then(|| {
                Violation::new(format!(
                    "container {name} of pod {pod} uses image {image}, which floats with `latest`: pin a version tag or digest"
                ))
                .details(about(image))
                .at(at_image())
            })
        }
        Check::TrustedRegistries => {
            let (image, allowed) = (image?, s.allowed_registries.as_deref()?);
            (!allowed.iter().any(|prefix| trusted(image, prefix))).then(|| {
                Violation::new(format!(
                    "container {name} of pod {pod} uses image {image} from an untrusted registry (allowed: {})",
                    allowed.join(", ")
                ))
                .details(about(image))
                .at(at_image())
            })
        }
        Check::ReadOnlyRootFilesystem => {
            let read_only = c.container.security_context.as_ref().and_then(|sc| sc.read_only_root_filesystem);
            (read_only != Some(true)).then(|| {
                Violation::new(format!(
                    "container {name} of pod {pod} does not set securityContext.readOnlyRootFilesystem=true"
                ))
                .at(format!("{}.securityContext.readOnlyRootFilesystem", c.path()))
            })
        }
    }
}

/// Whether the image ends with `@sha256:` and 64 lowercase hex digits (lib/pci.rego
/// `has_digest`: exactly one `@sha256:`).
pub fn has_digest(image: &str) -> bool {
    let mut parts = image.split("@sha256:");
    let (_, Some(hex), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    hex.chars().count() == 64 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Whether the image names a tag other than `latest` (lib/pci.rego `tag`: the part
/// after the first `:` of the last path component, the digest cut off).
pub fn versioned(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or("");
    let last = without_digest.rsplit('/').next().unwrap_or("");
    last.split(':').nth(1).is_some_and(|tag| tag != "latest")
}

/// Whether the image comes from `prefix`: a prefix ending in `/` matches as text, any
/// other prefix only up to a `/`, `:` or `@`.
pub fn trusted(image: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        image.starts_with(prefix)
    } else {
        image.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(['/', ':', '@']))
    }
}
