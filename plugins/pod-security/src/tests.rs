//! Native tests: each check's message on failing and passing pods, the skip rules and
//! the settings. The messages are those pinned by the bundle's tests/pss_*.yaml.

use palisade_sdk::testing::{evaluate, input_with};
use palisade_sdk::{Policy, Violation};
use serde_json::{Value, json};

use crate::PodSecurity;

/// The parameters bundle.toml gives each pss-* policy, plus `check`.
fn settings(check: &str) -> Value {
    let mut s = json!({"check": check, "exempt_namespaces": ["kube-system", "kube-public", "kube-node-lease"]});
    let extra = match check {
        "capabilities-baseline" => json!({"allowed_capabilities": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER",
            "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]}),
        "app-armor" => json!({"allowed_types": ["RuntimeDefault", "Localhost"],
            "allowed_annotation_values": ["runtime/default"], "allowed_annotation_prefixes": ["localhost/"]}),
        "selinux" => {
            json!({"allowed_types": ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]})
        }
        "proc-mount" | "proc-mount-restricted" => json!({"allowed_proc_mount_types": ["Default"]}),
        "seccomp-baseline" | "seccomp-restricted" => json!({"allowed_types": ["RuntimeDefault", "Localhost"]}),
        "sysctls" => json!({"allowed_sysctls": ["kernel.shm_rmid_forced", "net.ipv4.tcp_syncookies"]}),
        "capabilities-restricted" => json!({"allowed_add_capabilities": ["NET_BIND_SERVICE"]}),
        "restricted-volumes" => json!({"allowed_volume_types": ["configMap", "csi", "downwardAPI", "emptyDir",
            "ephemeral", "image", "persistentVolumeClaim", "projected", "secret"]}),
        _ => json!({}),
    };
    if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), extra) {
        s.extend(extra);
    }
    s
}

fn pod_in(namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": spec})
}

fn pod(spec: Value) -> Value {
    pod_in("shop", spec)
}

fn run(check: &str, object: &Value) -> Vec<Violation> {
    evaluate::<PodSecurity>(&input_with(object, "", &settings(check))).expect("evaluates")
}

/// The one message of `check` on `object`, or `None` when it finds nothing.
fn message(check: &str, object: &Value) -> Option<String> {
    let found = run(check, object);
    assert!(found.len() <= 1, "{found:?}");
    found.into_iter().next().map(|v| v.message)
}

/// The input with a Namespace object carrying a PCI DSS scope.
fn in_scope(check: &str, object: &Value, scope: &str) -> String {
    let mut doc: Value = serde_json::from_str(&input_with(object, "", &settings(check))).expect("json");
    doc["review"]["namespaceObject"] = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": scope}}});
    doc.to_string()
}

fn update(check: &str, old: &Value, new: &Value) -> Vec<Violation> {
    let mut doc: Value = serde_json::from_str(&input_with(new, "UPDATE", &settings(check))).expect("json");
    doc["review"]["oldObject"] = old.clone();
    palisade_sdk::testing::evaluate::<crate::PodSecurity>(&doc.to_string()).expect("evaluates")
}

#[test]
fn privileged_names_containers_in_visit_order() {
    let p = pod(json!({
        "ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": true}}],
        "containers": [{"name": "app", "securityContext": {"privileged": true}}, {"name": "sidecar"}],
        "initContainers": [{"name": "init", "securityContext": {"privileged": true}}]}));
    let found = run("privileged", &p);
    assert_eq!(
        found[0].message,
        r#"privileged (containers "init", "app", "debug" must not set securityContext.privileged=true)"#
    );
    assert_eq!(found[0].details, Some(json!({"check": "privileged"})));
    assert_eq!(found[0].path.as_deref(), Some("spec"));
    let one = pod(json!({"containers": [{"name": "ok"}, {"name": "app", "securityContext": {"privileged": true}}]}));
    let found = run("privileged", &one);
    assert_eq!(found[0].message, r#"privileged (container "app" must not set securityContext.privileged=true)"#);
    assert_eq!(found[0].path.as_deref(), Some("spec.containers[1].securityContext.privileged"));
    assert_eq!(
        message("privileged", &pod(json!({"containers": [{"name": "a", "securityContext": {"privileged": false}}]}))),
        None
    );
}

#[test]
fn host_namespaces() {
    let p = pod(json!({"hostIPC": true, "hostNetwork": true, "hostPID": true, "containers": []}));
    assert_eq!(
        message("host-namespaces", &p).as_deref(),
        Some("host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)")
    );
    assert_eq!(run("host-namespaces", &pod(json!({"hostPID": true})))[0].path.as_deref(), Some("spec.hostPID"));
    assert_eq!(message("host-namespaces", &pod(json!({"hostNetwork": false, "containers": []}))), None);
}

#[test]
fn host_ports_are_sorted_as_strings() {
    let p = pod(json!({"containers": [
        {"name": "a", "ports": [{"containerPort": 1, "hostPort": 0}]},
        {"name": "b", "ports": [{"containerPort": 1, "hostPort": 20}, {"containerPort": 2, "hostPort": 100}]},
        {"name": "c", "ports": [{"containerPort": 1, "hostPort": 9}, {"containerPort": 2, "hostPort": 20}]}]}));
    assert_eq!(
        message("host-ports", &p).as_deref(),
        Some(r#"hostPort (containers "b", "c" use hostPorts 100, 20, 9)"#)
    );
    let one = pod(json!({"containers": [{"name": "b", "ports": [{"containerPort": 1, "hostPort": 20}]}]}));
    assert_eq!(message("host-ports", &one).as_deref(), Some(r#"hostPort (container "b" uses hostPort 20)"#));
    assert_eq!(
        message("host-ports", &pod(json!({"containers": [{"name": "a", "ports": [{"containerPort": 8}]}]}))),
        None
    );
}

#[test]
fn host_path_volumes_step_aside_in_restricted_namespaces() {
    let p = pod_in(
        "payments",
        json!({"containers": [{"name": "a"}], "volumes": [
        {"name": "varlog", "hostPath": {"path": "/var/log"}}, {"name": "tmp", "emptyDir": {}},
        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]}),
    );
    assert_eq!(message("host-path-volumes", &p).as_deref(), Some(r#"hostPath volumes (volumes "varlog", "docker")"#));
    assert!(evaluate::<PodSecurity>(&in_scope("host-path-volumes", &p, "cde")).expect("evaluates").is_empty());
    assert_eq!(evaluate::<PodSecurity>(&in_scope("host-path-volumes", &p, "dmz")).expect("evaluates").len(), 1);
    assert_eq!(message("host-path-volumes", &pod(json!({"volumes": [{"name": "t", "emptyDir": {}}]}))), None);
}

#[test]
fn probe_and_lifecycle_hosts_are_sorted_sets() {
    let p = pod(json!({
        "containers": [
            {"name": "z", "livenessProbe": {"httpGet": {"port": 80, "host": "localhost"}},
             "readinessProbe": {"tcpSocket": {"port": 80, "host": "::1"}}},
            {"name": "a", "startupProbe": {"httpGet": {"port": 80, "host": "127.0.0.1"}},
             "lifecycle": {"postStart": {"httpGet": {"port": 80, "host": "localhost"}}}}],
        "initContainers": [{"name": "m", "lifecycle": {"preStop": {"tcpSocket": {"port": 80, "host": "metadata.internal"}}}}]}));
    assert_eq!(
        message("host-probes-lifecycle", &p).as_deref(),
        Some(
            r#"probe or lifecycle host (containers "a", "m", "z" use probe or lifecycle hosts "127.0.0.1", "::1", "localhost", "metadata.internal")"#
        )
    );
    let ok = pod(json!({"containers": [{"name": "a", "livenessProbe": {"httpGet": {"port": 8080, "host": ""}},
        "readinessProbe": {"tcpSocket": {"port": 8080}}, "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}]}));
    assert_eq!(message("host-probes-lifecycle", &ok), None);
}

#[test]
fn capabilities_baseline() {
    let p = pod(json!({"containers": [
        {"name": "a", "securityContext": {"capabilities": {"add": ["NET_RAW", "CHOWN", "SYS_ADMIN"]}}},
        {"name": "b", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}}]}));
    assert_eq!(
        message("capabilities-baseline", &p).as_deref(),
        Some(
            r#"non-default capabilities (containers "a", "b" must not include "NET_ADMIN", "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)"#
        )
    );
    assert!(
        evaluate::<PodSecurity>(&in_scope("capabilities-baseline", &p, "connected")).expect("evaluates").is_empty()
    );
    let ok = pod(json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["CHOWN"]}}}]}));
    assert_eq!(message("capabilities-baseline", &ok), None);
}

#[test]
fn app_armor_fields_and_annotations() {
    let mut p = pod(json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}},
        "initContainers": [{"name": "b", "securityContext": {"appArmorProfile": {"type": "Bogus"}}}],
        "containers": [{"name": "a", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
                       {"name": "c", "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}]}));
    p["metadata"]["annotations"] = json!({"container.apparmor.security.beta.kubernetes.io/b": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/ok": "localhost/x", "other/x": "unconfined"});
    assert_eq!(
        message("app-armor", &p).as_deref(),
        Some(
            r#"forbidden AppArmor profiles (pod and containers "b", "a" and annotation must not set AppArmor profile type to "Bogus", "Unconfined", "container.apparmor.security.beta.kubernetes.io/b="unconfined"")"#
        )
    );
    let mut ok =
        pod(json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "a"}]}));
    ok["metadata"]["annotations"] = json!({"container.apparmor.security.beta.kubernetes.io/a": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/e": ""});
    assert_eq!(message("app-armor", &ok), None);
}

#[test]
fn selinux_problems() {
    let p = pod(json!({"securityContext": {"seLinuxOptions": {"type": "foo", "user": "u"}},
        "containers": [{"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar", "role": "r"}}},
                       {"name": "ok", "securityContext": {"seLinuxOptions": {"type": "container_t", "level": "s0"}}}]}));
    assert_eq!(
        message("selinux", &p).as_deref(),
        Some(
            r#"seLinuxOptions (pod and container "e" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set)"#
        )
    );
    let ok = pod(
        json!({"containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_init_t"}}}]}),
    );
    assert_eq!(message("selinux", &ok), None);
}

#[test]
fn proc_mount_and_its_user_namespace_relaxation() {
    let mut p = pod(json!({"initContainers": [{"name": "i", "securityContext": {"procMount": "Unmasked"}}],
        "containers": [{"name": "d", "securityContext": {"procMount": "other"}},
                       {"name": "ok", "securityContext": {"procMount": "Default"}}]}));
    let want = r#"procMount (containers "i", "d" must not set securityContext.procMount to "Unmasked", "other")"#;
    assert_eq!(message("proc-mount", &p).as_deref(), Some(want));
    assert_eq!(message("proc-mount-restricted", &p).as_deref(), Some(want));
    assert!(evaluate::<PodSecurity>(&in_scope("proc-mount", &p, "cde")).expect("evaluates").is_empty());
    p["spec"]["hostUsers"] = json!(false);
    assert_eq!(message("proc-mount", &p), None);
    assert_eq!(message("proc-mount-restricted", &p).as_deref(), Some(want));
    assert_eq!(message("proc-mount", &pod(json!({"containers": [{"name": "a"}]}))), None);
}

#[test]
fn seccomp_baseline() {
    let p = pod(json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Bogus"}}}, {"name": "b"},
                       {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}));
    assert_eq!(
        message("seccomp-baseline", &p).as_deref(),
        Some(
            r#"seccompProfile (pod and containers "a", "c" must not set securityContext.seccompProfile.type to "Bogus", "Unconfined")"#
        )
    );
    assert!(evaluate::<PodSecurity>(&in_scope("seccomp-baseline", &p, "cde")).expect("evaluates").is_empty());
    assert_eq!(message("seccomp-baseline", &pod(json!({"containers": [{"name": "a"}]}))), None);
}

#[test]
fn sysctls_in_spec_order() {
    let p = pod(json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
        {"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "net/ipv4/tcp_syncookies", "value": "1"},
        {"name": "kernel.msgmax", "value": "1"}]}, "containers": [{"name": "a"}]}));
    assert_eq!(
        message("sysctls", &p).as_deref(),
        Some("forbidden sysctls (kernel.msgmax, net/ipv4/tcp_syncookies, kernel.msgmax)")
    );
    let ok = pod(json!({"securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}}));
    assert_eq!(message("sysctls", &ok), None);
}

#[test]
fn windows_host_process() {
    let p = pod(json!({"securityContext": {"windowsOptions": {"hostProcess": true}},
        "containers": [{"name": "e", "securityContext": {"windowsOptions": {"hostProcess": true}}},
                       {"name": "f", "securityContext": {"windowsOptions": {"hostProcess": true}}}]}));
    assert_eq!(
        message("windows-host-process", &p).as_deref(),
        Some(
            r#"hostProcess (pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true)"#
        )
    );
    let ok = pod(json!({"containers": [{"name": "e", "securityContext": {"windowsOptions": {"hostProcess": false}}}]}));
    assert_eq!(message("windows-host-process", &ok), None);
}

#[test]
fn allow_privilege_escalation_and_windows() {
    let mut p =
        pod(json!({"containers": [{"name": "a"}, {"name": "b", "securityContext": {"allowPrivilegeEscalation": true}},
        {"name": "ok", "securityContext": {"allowPrivilegeEscalation": false}}]}));
    assert_eq!(
        message("allow-privilege-escalation", &p).as_deref(),
        Some(
            r#"allowPrivilegeEscalation != false (containers "a", "b" must set securityContext.allowPrivilegeEscalation=false)"#
        )
    );
    p["spec"]["os"] = json!({"name": "windows"});
    assert_eq!(message("allow-privilege-escalation", &p), None);
}

#[test]
fn capabilities_restricted() {
    let p = pod(json!({"containers": [
        {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "CHOWN"]}}},
        {"name": "b", "securityContext": {"capabilities": {"drop": ["all"], "add": ["BAR"]}}},
        {"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["BAZ", "NET_BIND_SERVICE"]}}}]}));
    assert_eq!(
        message("capabilities-restricted", &p).as_deref(),
        Some(
            r#"unrestricted capabilities (containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add)"#
        )
    );
    let ok = pod(
        json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}),
    );
    assert_eq!(message("capabilities-restricted", &ok), None);
}

#[test]
fn restricted_volumes() {
    let p = pod(json!({"containers": [{"name": "a"}], "volumes": [
        {"name": "z-host", "hostPath": {"path": "/"}}, {"name": "ok", "emptyDir": {}},
        {"name": "nfs", "nfs": {"server": "s", "path": "/"}}, {"name": "weird", "unknownSource": {}},
        {"name": "host2", "hostPath": {"path": "/tmp"}, "nfs": {"server": "x", "path": "/"}}]}));
    assert_eq!(
        message("restricted-volumes", &p).as_deref(),
        Some(
            r#"restricted volume types (volumes "z-host", "nfs", "weird", "host2" use restricted volume types "hostPath", "nfs", "unknown")"#
        )
    );
    let ok = pod(
        json!({"volumes": [{"name": "i", "image": {"reference": "r:1"}}, {"name": "s", "secret": {"secretName": "s"}}]}),
    );
    assert_eq!(message("restricted-volumes", &ok), None);
    // No source set: the API server defaults it to emptyDir.
    let defaulted = pod(json!({"volumes": [{"name": "volume0"}, {"name": "volume1", "hostPath": null}]}));
    assert_eq!(message("restricted-volumes", &defaulted), None);
}

#[test]
fn run_as_non_root_explicit_before_implicit() {
    let p = pod(json!({"securityContext": {"runAsNonRoot": false}, "containers": [{"name": "a"},
        {"name": "c", "securityContext": {"runAsNonRoot": false}}]}));
    assert_eq!(
        message("run-as-non-root", &p).as_deref(),
        Some(r#"runAsNonRoot != true (pod and container "c" must not set securityContext.runAsNonRoot=false)"#)
    );
    let mut implicit = pod(
        json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "ok", "securityContext": {"runAsNonRoot": true}}]}),
    );
    assert_eq!(
        message("run-as-non-root", &implicit).as_deref(),
        Some(r#"runAsNonRoot != true (pod or containers "a", "b" must set securityContext.runAsNonRoot=true)"#)
    );
    implicit["spec"]["hostUsers"] = json!(false);
    assert_eq!(message("run-as-non-root", &implicit), None);
    let ok = pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "a"}]}));
    assert_eq!(message("run-as-non-root", &ok), None);
}

#[test]
fn run_as_user() {
    let p = pod(
        json!({"securityContext": {"runAsUser": 0}, "containers": [{"name": "c", "securityContext": {"runAsUser": 0}},
        {"name": "d", "securityContext": {"runAsUser": 0}}, {"name": "ok", "securityContext": {"runAsUser": 1000}}]}),
    );
    assert_eq!(
        message("run-as-user", &p).as_deref(),
        Some(r#"runAsUser=0 (pod and containers "c", "d" must not set runAsUser=0)"#)
    );
    assert_eq!(message("run-as-user", &pod(json!({"securityContext": {"runAsUser": 1000}}))), None);
}

#[test]
fn seccomp_restricted_explicit_implicit_and_windows() {
    let explicit = pod(json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "a"}, {"name": "b", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}));
    assert_eq!(
        message("seccomp-restricted", &explicit).as_deref(),
        Some(r#"seccompProfile (container "b" must not set securityContext.seccompProfile.type to "Unconfined")"#)
    );
    let mut implicit = pod(json!({"containers": [{"name": "a"}, {"name": "b"},
        {"name": "ok", "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}));
    assert_eq!(
        message("seccomp-restricted", &implicit).as_deref(),
        Some(
            r#"seccompProfile (pod or containers "a", "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        )
    );
    implicit["spec"]["os"] = json!({"name": "windows"});
    assert_eq!(message("seccomp-restricted", &implicit), None);
    let ok =
        pod(json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "a"}]}));
    assert_eq!(message("seccomp-restricted", &ok), None);
}

#[test]
fn exempt_namespaces_are_globs() {
    let p = pod_in("kube-system", json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}]}));
    assert!(run("privileged", &p).is_empty());
    for (pattern, matches) in
        [("*", true), ("kube-*", true), ("*-system", true), ("*be-sy*", true), ("kube*system", false)]
    {
        let s = json!({"check": "privileged", "exempt_namespaces": [pattern]});
        let found = evaluate::<PodSecurity>(&input_with(&p, "", &s)).expect("evaluates");
        assert_eq!(found.is_empty(), matches, "{pattern}");
    }
}

#[test]
fn unchanged_updates_are_not_rechecked() {
    let old = pod(json!({"containers": [{"name": "app", "image": "app:1", "securityContext": {"privileged": true}}]}));
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"a": "2"});
    assert!(update("privileged", &old, &relabelled).is_empty());
    // A field no check reads still makes the spec differ.
    let mut resized = old.clone();
    resized["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
    assert_eq!(update("privileged", &old, &resized).len(), 1);
    let mut annotated = old.clone();
    annotated["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"});
    assert_eq!(update("privileged", &old, &annotated).len(), 1);
}

#[test]
fn settings_are_validated() {
    assert!(PodSecurity::validate_settings(&settings("sysctls").to_string()).is_ok());
    let err = |s: Value| PodSecurity::validate_settings(&s.to_string()).expect_err("rejected");
    assert!(err(json!({})).contains("\"check\" is required"));
    assert!(err(json!({"check": "nope"})).starts_with("unknown check \"nope\": expected one of privileged,"));
    assert!(
        err(json!({"check": "privileged", "allowed_sysctls": []})).contains("does not apply to check \"privileged\"")
    );
    assert!(err(json!({"check": "sysctls", "allowed_sysctls": "kernel.msgmax"})).contains("must be a list of strings"));
    assert!(err(json!({"check": "sysctls", "alowed_sysctls": []})).starts_with("unknown setting \"alowed_sysctls\""));
    let schema: Value = serde_json::from_str(&PodSecurity::metadata().settings_schema.expect("schema")).expect("JSON");
    assert_eq!(schema["properties"]["check"]["enum"].as_array().map(Vec::len), Some(19));
}
