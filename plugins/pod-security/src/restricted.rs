//! The restricted checks (rules/pss/*.rego of the restricted level). Each returns the
//! check's one finding, or `None`, and applies its own exemptions (Windows pods,
//! `hostUsers: false`); the shared skip rules are applied by the caller.

use palisade_sdk::Violation;
use serde_json::Value;

use crate::baseline::{seccomp_explicit, volume_name};
use crate::common::{
    Ctx, Places, containers_phrase, contains, has, join_quote, message, name, pluralize, raw_value, sc, setters,
    sorted_set, visit,
};

type Found = Result<Option<Violation>, String>;

/// `allowPrivilegeEscalation`: every container sets it to false explicitly.
pub fn allow_privilege_escalation(ctx: &Ctx) -> Found {
    if ctx.spec().is_windows() {
        return Ok(None);
    }
    let (mut names, mut places) = (Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        if sc(&c).and_then(|s| s.allow_privilege_escalation) != Some(false) {
            names.push(name(&c));
            places.add(format!("{}.securityContext.allowPrivilegeEscalation", c.path()));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let detail = format!("{} must set securityContext.allowPrivilegeEscalation=false", containers_phrase(&names));
    Ok(ctx.finding(message("allowPrivilegeEscalation != false", &detail), places))
}

/// `capabilities_restricted`: drop ALL, add only the allowed ones.
pub fn capabilities_restricted(ctx: &Ctx) -> Found {
    if ctx.spec().is_windows() {
        return Ok(None);
    }
    let allowed = ctx.settings.allowed_add_capabilities();
    let (mut missing_drop, mut adding, mut forbidden) = (Vec::new(), Vec::new(), Vec::new());
    let mut places = Places::default();
    for c in visit(ctx.spec()) {
        let caps = sc(&c).and_then(|s| s.capabilities.as_ref());
        let drop = caps.and_then(|k| k.drop.as_deref()).unwrap_or(&[]);
        let add = caps.and_then(|k| k.add.as_deref()).unwrap_or(&[]);
        let drops_all = drop.iter().any(|d| d == "ALL");
        if !drops_all {
            missing_drop.push(name(&c));
        }
        let before = forbidden.len();
        forbidden.extend(add.iter().filter(|a| !contains(allowed, a)).map(String::as_str));
        if forbidden.len() > before {
            adding.push(name(&c));
        }
        if !drops_all || forbidden.len() > before {
            places.add(format!("{}.securityContext.capabilities", c.path()));
        }
    }
    let mut parts = Vec::new();
    if !missing_drop.is_empty() {
        parts.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        parts.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&sorted_set(forbidden))
        ));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(ctx.finding(message("unrestricted capabilities", &parts.join("; ")), places))
}

/// Upstream's order: the first set field names a volume's type in the message.
const KNOWN_TYPES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

/// The API server defaults a volume that sets no source to `emptyDir: {}`
/// (SetDefaults_Volume), so such a volume is judged as one.
fn sets_no_source(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.iter().all(|(k, x)| k == "name" || x.is_null()))
}

/// `restrictedVolumes`: every volume has an allowed source.
pub fn restricted_volumes(ctx: &Ctx) -> Found {
    let Value::Array(volumes) = raw_value(ctx.spec().volumes.raw())? else { return Ok(None) };
    let allowed = ctx.settings.allowed_volume_types();
    let (mut names, mut types, mut places) = (Vec::new(), Vec::new(), Places::default());
    for (i, v) in volumes.iter().enumerate() {
        if allowed.iter().any(|t| has(v, t)) || (sets_no_source(v) && allowed.iter().any(|t| t == "emptyDir")) {
            continue;
        }
        names.push(volume_name(v));
        types.push(KNOWN_TYPES.iter().copied().find(|k| has(v, k)).unwrap_or("unknown"));
        places.add(format!("spec.volumes[{i}]"));
    }
    if names.is_empty() {
        return Ok(None);
    }
    let types = sorted_set(types);
    let detail = format!(
        "{} {} {} {} {}",
        pluralize("volume", "volumes", names.len()),
        join_quote(&names),
        pluralize("uses", "use", names.len()),
        pluralize("restricted volume type", "restricted volume types", types.len()),
        join_quote(&types)
    );
    Ok(ctx.finding(message("restricted volume types", &detail), places))
}

/// `runAsNonRoot`: explicit `false` settings first, else containers that leave it
/// unset under a pod that does not set `true`. Not for user-namespaced pods.
pub fn run_as_non_root(ctx: &Ctx) -> Found {
    if ctx.spec().host_users == Some(false) {
        return Ok(None);
    }
    let pod = ctx.pod_sc()?.get("runAsNonRoot").and_then(Value::as_bool);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    let (mut explicit_places, mut implicit_places) = (Places::default(), Places::default());
    if pod == Some(false) {
        explicit_places.add("spec.securityContext.runAsNonRoot".into());
    }
    for c in visit(ctx.spec()) {
        match sc(&c).and_then(|s| s.run_as_non_root) {
            Some(false) => {
                explicit.push(name(&c));
                explicit_places.add(format!("{}.securityContext.runAsNonRoot", c.path()));
            }
            None if pod != Some(true) => {
                implicit.push(name(&c));
                implicit_places.add(format!("{}.securityContext.runAsNonRoot", c.path()));
            }
            _ => {}
        }
    }
    let who = setters(pod == Some(false), &explicit);
    if !who.is_empty() {
        let detail = format!("{who} must not set securityContext.runAsNonRoot=false");
        return Ok(ctx.finding(message("runAsNonRoot != true", &detail), explicit_places));
    }
    if implicit.is_empty() {
        return Ok(None);
    }
    let detail = format!("pod or {} must set securityContext.runAsNonRoot=true", containers_phrase(&implicit));
    Ok(ctx.finding(message("runAsNonRoot != true", &detail), implicit_places))
}

/// `runAsUser`: no explicit UID 0. Not for user-namespaced pods.
pub fn run_as_user(ctx: &Ctx) -> Found {
    if ctx.spec().host_users == Some(false) {
        return Ok(None);
    }
    let mut places = Places::default();
    let pod_bad = ctx.pod_sc()?.get("runAsUser").and_then(Value::as_f64) == Some(0.0);
    if pod_bad {
        places.add("spec.securityContext.runAsUser".into());
    }
    let mut names = Vec::new();
    for c in visit(ctx.spec()) {
        if sc(&c).and_then(|s| s.run_as_user) == Some(0) {
            names.push(name(&c));
            places.add(format!("{}.securityContext.runAsUser", c.path()));
        }
    }
    let who = setters(pod_bad, &names);
    if who.is_empty() {
        return Ok(None);
    }
    Ok(ctx.finding(message("runAsUser=0", &format!("{who} must not set runAsUser=0")), places))
}

/// `seccompProfile_restricted`: explicit bad types first, else containers without a
/// profile under a pod without a valid one. Windows pods are exempt.
pub fn seccomp_restricted(ctx: &Ctx) -> Found {
    if ctx.spec().is_windows() {
        return Ok(None);
    }
    let (explicit, pod_valid) = seccomp_explicit(ctx)?;
    if explicit.is_some() || pod_valid {
        return Ok(explicit);
    }
    let (mut implicit, mut places) = (Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        if sc(&c).and_then(|s| s.seccomp_profile.as_ref()).is_none() {
            implicit.push(name(&c));
            places.add(format!("{}.securityContext.seccompProfile", c.path()));
        }
    }
    if implicit.is_empty() {
        return Ok(None);
    }
    let detail = format!(
        r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
        containers_phrase(&implicit)
    );
    Ok(ctx.finding(message("seccompProfile", &detail), places))
}
