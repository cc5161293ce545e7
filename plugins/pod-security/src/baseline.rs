//! The baseline checks (rules/pss/*.rego of the baseline level). Each returns the
//! check's one finding, or `None`; the skip rules are applied by the caller, except
//! those particular to a check (the `hostUsers: false` relaxation of procMount).

use palisade_sdk::Violation;
use serde_json::Value;

use crate::common::{
    APPARMOR_PREFIX, Ctx, Places, containers_phrase, contains, field, fmt_v, has, join_quote, message, name, pluralize,
    raw_value, sc, setters, sorted_set, str_field, visit,
};

type Found = Result<Option<Violation>, String>;

/// `privileged`.
pub fn privileged(ctx: &Ctx) -> Found {
    let (mut names, mut places) = (Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        if sc(&c).and_then(|s| s.privileged) == Some(true) {
            names.push(name(&c));
            places.add(format!("{}.securityContext.privileged", c.path()));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let detail = format!("{} must not set securityContext.privileged=true", containers_phrase(&names));
    Ok(ctx.finding(message("privileged", &detail), places))
}

/// `hostNamespaces`.
pub fn host_namespaces(ctx: &Ctx) -> Found {
    let spec = ctx.spec();
    let (mut set, mut places) = (Vec::new(), Places::default());
    for (field, value) in [("hostNetwork", spec.host_network), ("hostPID", spec.host_pid), ("hostIPC", spec.host_ipc)] {
        if value == Some(true) {
            set.push(format!("{field}=true"));
            places.add(format!("spec.{field}"));
        }
    }
    if set.is_empty() {
        return Ok(None);
    }
    Ok(ctx.finding(message("host namespaces", &set.join(", ")), places))
}

/// Rego's `format_int(n, 10)`: the sign, then the floor of the magnitude.
fn format_int(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let sign = if f < 0.0 { "-" } else { "" };
    format!("{sign}{}", f.abs().floor())
}

fn is_zero(n: &serde_json::Number) -> bool {
    n.as_f64() == Some(0.0)
}

/// `hostPorts`.
pub fn host_ports(ctx: &Ctx) -> Found {
    let (mut names, mut ports, mut places) = (Vec::new(), Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        if !c.container.ports.is_set() {
            continue;
        }
        let Value::Array(list) = raw_value(c.container.ports.raw())? else { continue };
        let before = ports.len();
        for p in &list {
            if let Some(Value::Number(n)) = p.get("hostPort")
                && !is_zero(n)
            {
                ports.push(format_int(n));
            }
        }
        if ports.len() > before {
            names.push(name(&c));
            places.add(format!("{}.ports", c.path()));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let ports = sorted_set(ports);
    let detail = format!(
        "{} {} {} {}",
        containers_phrase(&names),
        pluralize("uses", "use", names.len()),
        pluralize("hostPort", "hostPorts", ports.len()),
        ports.join(", ")
    );
    Ok(ctx.finding(message("hostPort", &detail), places))
}

/// The `name` of a volume ("" when not a string).
pub fn volume_name(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("")
}

/// `hostPathVolumes`.
pub fn host_path_volumes(ctx: &Ctx) -> Found {
    let Value::Array(volumes) = raw_value(ctx.spec().volumes.raw())? else { return Ok(None) };
    let (mut names, mut places) = (Vec::new(), Places::default());
    for (i, v) in volumes.iter().enumerate() {
        if has(v, "hostPath") {
            names.push(volume_name(v));
            places.add(format!("spec.volumes[{i}].hostPath"));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let detail = format!("{} {}", pluralize("volume", "volumes", names.len()), join_quote(&names));
    Ok(ctx.finding(message("hostPath volumes", &detail), places))
}

/// The non-empty `httpGet.host` and `tcpSocket.host` of a probe or lifecycle handler.
fn handler_hosts(handler: Option<&Value>, hosts: &mut Vec<String>) {
    let Some(handler) = handler else { return };
    for kind in ["httpGet", "tcpSocket"] {
        if let Some(host) = handler.get(kind).and_then(|a| a.get("host")).and_then(Value::as_str)
            && !host.is_empty()
        {
            hosts.push(host.to_string());
        }
    }
}

/// `hostProbesAndHostLifecycle`.
pub fn host_probes_lifecycle(ctx: &Ctx) -> Found {
    let (mut names, mut hosts, mut places) = (Vec::new(), Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        let k = c.container;
        let before = hosts.len();
        for probe in [&k.liveness_probe, &k.readiness_probe, &k.startup_probe] {
            if probe.is_set() {
                handler_hosts(Some(&raw_value(probe.raw())?), &mut hosts);
            }
        }
        if k.lifecycle.is_set() {
            let lifecycle = raw_value(k.lifecycle.raw())?;
            handler_hosts(lifecycle.get("postStart"), &mut hosts);
            handler_hosts(lifecycle.get("preStop"), &mut hosts);
        }
        if hosts.len() > before {
            names.push(name(&c));
            places.add(c.path());
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let (names, hosts) = (sorted_set(names), sorted_set(hosts));
    let detail = format!(
        "{} {} {} {}",
        containers_phrase(&names),
        pluralize("uses", "use", names.len()),
        pluralize("probe or lifecycle host", "probe or lifecycle hosts", hosts.len()),
        join_quote(&hosts)
    );
    Ok(ctx.finding(message("probe or lifecycle host", &detail), places))
}

/// `capabilities_baseline`.
pub fn capabilities_baseline(ctx: &Ctx) -> Found {
    let allowed = ctx.settings.allowed_capabilities();
    let (mut names, mut caps, mut places) = (Vec::new(), Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        let adds = sc(&c).and_then(|s| s.capabilities.as_ref()).and_then(|k| k.add.as_deref()).unwrap_or(&[]);
        let before = caps.len();
        caps.extend(adds.iter().filter(|a| !contains(allowed, a)).map(String::as_str));
        if caps.len() > before {
            names.push(name(&c));
            places.add(format!("{}.securityContext.capabilities.add", c.path()));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let detail = format!(
        "{} must not include {} in securityContext.capabilities.add",
        containers_phrase(&names),
        join_quote(&sorted_set(caps))
    );
    Ok(ctx.finding(message("non-default capabilities", &detail), places))
}

/// `appArmorProfile`: the pod's and containers' profiles and the beta annotations.
pub fn app_armor(ctx: &Ctx) -> Found {
    let allowed = ctx.settings.allowed_types();
    let bad = |p: &Option<k8s_openapi::api::core::v1::AppArmorProfile>| {
        p.as_ref().filter(|p| !contains(allowed, &p.type_)).map(|p| p.type_.clone())
    };
    let (mut types, mut names, mut places) = (Vec::new(), Vec::new(), Places::default());
    // `profile.type in allowed_types`: a missing or non-string type is not allowed.
    let pod_sc = ctx.pod_sc()?;
    let pod_bad = match field(&pod_sc, "appArmorProfile") {
        Some(p) if !str_field(p, "type").is_some_and(|t| contains(allowed, t)) => {
            types.push(str_field(p, "type").unwrap_or("").to_string());
            places.add("spec.securityContext.appArmorProfile".into());
            true
        }
        _ => false,
    };
    for c in visit(ctx.spec()) {
        if let Some(t) = sc(&c).and_then(|s| bad(&s.app_armor_profile)) {
            types.push(t);
            names.push(name(&c));
            places.add(format!("{}.securityContext.appArmorProfile", c.path()));
        }
    }
    let mut annotations = Vec::new();
    let meta = &ctx.pod.metadata.annotations;
    if meta.is_set()
        && let Value::Object(map) = raw_value(meta.raw())?
    {
        for (k, v) in map.iter().filter(|(k, _)| k.starts_with(APPARMOR_PREFIX)) {
            let ok = match v.as_str() {
                Some(s) => {
                    s.is_empty()
                        || contains(ctx.settings.allowed_annotation_values(), s)
                        || ctx.settings.allowed_annotation_prefixes().iter().any(|p| s.starts_with(p.as_str()))
                }
                None => false,
            };
            if !ok {
                annotations.push(format!("{k}={}", serde_json::to_string(v).map_err(|e| e.to_string())?));
            }
        }
    }
    if !annotations.is_empty() {
        annotations.sort();
        places.add("metadata.annotations".into());
    }
    let mut values = sorted_set(types);
    values.extend(annotations.iter().cloned());
    if values.is_empty() {
        return Ok(None);
    }
    let mut who = setters(pod_bad, &names);
    if !annotations.is_empty() {
        let part = pluralize("annotation", "annotations", annotations.len());
        who = if who.is_empty() { part.to_string() } else { format!("{who} and {part}") };
    }
    let reason = pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len());
    let detail = format!("{who} must not set AppArmor profile type to {}", join_quote(&values));
    Ok(ctx.finding(message(reason, &detail), places))
}

/// `seLinuxOptions`.
pub fn selinux(ctx: &Ctx) -> Found {
    let allowed = ctx.settings.allowed_types();
    let (mut bad_types, mut user, mut role) = (Vec::new(), false, false);
    // Whether the options are invalid; records their problems.
    let mut check = |t: &str, user_name: Option<&str>, role_name: Option<&str>| {
        let bad_type = !contains(allowed, t);
        if bad_type {
            bad_types.push(t.to_string());
        }
        let user_set = user_name.is_some_and(|u| !u.is_empty());
        let role_set = role_name.is_some_and(|r| !r.is_empty());
        user |= user_set;
        role |= role_set;
        bad_type || user_set || role_set
    };
    let (mut names, mut places) = (Vec::new(), Places::default());
    let pod_sc = ctx.pod_sc()?;
    let pod_bad = field(&pod_sc, "seLinuxOptions")
        .is_some_and(|o| check(str_field(o, "type").unwrap_or(""), str_field(o, "user"), str_field(o, "role")));
    if pod_bad {
        places.add("spec.securityContext.seLinuxOptions".into());
    }
    for c in visit(ctx.spec()) {
        let opts = sc(&c).and_then(|s| s.se_linux_options.as_ref());
        if opts.is_some_and(|o| check(o.type_.as_deref().unwrap_or(""), o.user.as_deref(), o.role.as_deref())) {
            names.push(name(&c));
            places.add(format!("{}.securityContext.seLinuxOptions", c.path()));
        }
    }
    let who = setters(pod_bad, &names);
    if who.is_empty() {
        return Ok(None);
    }
    let bad_types = sorted_set(bad_types);
    let mut problems = Vec::new();
    if !bad_types.is_empty() {
        problems.push(format!("{} {}", pluralize("type", "types", bad_types.len()), join_quote(&bad_types)));
    }
    if user {
        problems.push("user may not be set".into());
    }
    if role {
        problems.push("role may not be set".into());
    }
    let detail = format!("{who} set forbidden securityContext.seLinuxOptions: {}", problems.join("; "));
    Ok(ctx.finding(message("seLinuxOptions", &detail), places))
}

/// `procMount` (baseline: relaxed for user-namespaced pods) and `procMount_restricted`.
pub fn proc_mount(ctx: &Ctx, relax_for_user_namespaces: bool) -> Found {
    if relax_for_user_namespaces && ctx.spec().host_users == Some(false) {
        return Ok(None);
    }
    let allowed = ctx.settings.allowed_proc_mount_types();
    let (mut names, mut values, mut places) = (Vec::new(), Vec::new(), Places::default());
    for c in visit(ctx.spec()) {
        if let Some(v) = sc(&c).and_then(|s| s.proc_mount.as_deref())
            && !contains(allowed, v)
        {
            names.push(name(&c));
            values.push(v);
            places.add(format!("{}.securityContext.procMount", c.path()));
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let detail = format!(
        "{} must not set securityContext.procMount to {}",
        containers_phrase(&names),
        join_quote(&sorted_set(values))
    );
    Ok(ctx.finding(message("procMount", &detail), places))
}

/// The explicit part of `seccompProfile_baseline` and `seccompProfile_restricted`:
/// profiles set to a type that is not allowed. Also tells whether the pod sets an
/// allowed profile.
pub fn seccomp_explicit(ctx: &Ctx) -> Result<(Option<Violation>, bool), String> {
    let allowed = ctx.settings.allowed_types();
    let bad = |p: &Option<k8s_openapi::api::core::v1::SeccompProfile>| {
        p.as_ref().filter(|p| !contains(allowed, &p.type_)).map(|p| p.type_.clone())
    };
    let pod_sc = ctx.pod_sc()?;
    // The type of a set profile ("" when not a string).
    let pod_type = field(&pod_sc, "seccompProfile").map(|p| str_field(p, "type").unwrap_or(""));
    let pod_valid = pod_type.is_some_and(|t| contains(allowed, t));
    let (mut types, mut names, mut places) = (Vec::new(), Vec::new(), Places::default());
    let pod_bad = match pod_type {
        Some(t) if !contains(allowed, t) => {
            types.push(t.to_string());
            places.add("spec.securityContext.seccompProfile".into());
            true
        }
        _ => false,
    };
    for c in visit(ctx.spec()) {
        if let Some(t) = sc(&c).and_then(|s| bad(&s.seccomp_profile)) {
            types.push(t);
            names.push(name(&c));
            places.add(format!("{}.securityContext.seccompProfile", c.path()));
        }
    }
    if types.is_empty() {
        return Ok((None, pod_valid));
    }
    let detail = format!(
        "{} must not set securityContext.seccompProfile.type to {}",
        setters(pod_bad, &names),
        join_quote(&sorted_set(types))
    );
    Ok((ctx.finding(message("seccompProfile", &detail), places), pod_valid))
}

/// `seccompProfile_baseline`.
pub fn seccomp_baseline(ctx: &Ctx) -> Found {
    Ok(seccomp_explicit(ctx)?.0)
}

/// `sysctls`. A name that is not a string is printed as Rego prints it.
pub fn sysctls(ctx: &Ctx) -> Found {
    let allowed = ctx.settings.allowed_sysctls();
    let pod_sc = ctx.pod_sc()?;
    let Some(Value::Array(sysctls)) = pod_sc.get("sysctls") else { return Ok(None) };
    let (mut forbidden, mut places) = (Vec::new(), Places::default());
    for (i, s) in sysctls.iter().enumerate() {
        let name = match s {
            Value::Object(o) => o.get("name").unwrap_or(&Value::String(String::new())).clone(),
            _ => Value::String(String::new()),
        };
        if !name.as_str().is_some_and(|n| contains(allowed, n)) {
            forbidden.push(fmt_v(&name));
            places.add(format!("spec.securityContext.sysctls[{i}]"));
        }
    }
    if forbidden.is_empty() {
        return Ok(None);
    }
    Ok(ctx.finding(message("forbidden sysctls", &forbidden.join(", ")), places))
}

/// `windowsHostProcess`.
pub fn windows_host_process(ctx: &Ctx) -> Found {
    let host_process = |o: Option<&k8s_openapi::api::core::v1::WindowsSecurityContextOptions>| {
        o.and_then(|w| w.host_process) == Some(true)
    };
    let mut places = Places::default();
    let pod_bad =
        field(&ctx.pod_sc()?, "windowsOptions").and_then(|w| w.get("hostProcess")) == Some(&Value::Bool(true));
    if pod_bad {
        places.add("spec.securityContext.windowsOptions.hostProcess".into());
    }
    let mut names = Vec::new();
    for c in visit(ctx.spec()) {
        if host_process(sc(&c).and_then(|s| s.windows_options.as_ref())) {
            names.push(name(&c));
            places.add(format!("{}.securityContext.windowsOptions.hostProcess", c.path()));
        }
    }
    let who = setters(pod_bad, &names);
    if who.is_empty() {
        return Ok(None);
    }
    let detail = format!("{who} must not set securityContext.windowsOptions.hostProcess=true");
    Ok(ctx.finding(message("hostProcess", &detail), places))
}
