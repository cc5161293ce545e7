//! `palisade plugin inspect|check`: load a third-party plugin outside any bundle,
//! and run a conformance pass on it — ABI, metadata, settings validation, hostile
//! inputs, determinism, and deadline and memory use on standard fixtures.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::wasm::{CallStats, PluginInfo, PluginSource, WasmOptions, WasmPolicy, WasmRuntime};

/// A plugin loaded for inspection or checking.
#[derive(Debug, Clone)]
pub struct Plugin {
    policy: WasmPolicy,
    size: usize,
}

/// Outcome of one plugin call, as `plugin check` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    /// Messages of the violations returned, or `None` when the call failed.
    pub violations: Option<Vec<String>>,
    /// The failure (error returned, trap, deadline, memory), if any.
    pub failure: Option<String>,
    /// Whether the failure was a trap, deadline or memory exhaustion (not an error return).
    pub crashed: bool,
}

impl Plugin {
    /// Loads a plugin from its bytes (no digest pin), with `settings` as its parameters.
    pub fn load(path: &str, bytes: &[u8], settings: &Value, options: WasmOptions) -> Result<Plugin> {
        let err = |message: String| Error::Input { context: path.to_string(), message };
        let runtime = WasmRuntime::new(options.clone()).map_err(err)?;
        let policy = WasmPolicy::load(
            &runtime,
            &PluginSource {
                id: "plugin",
                bytes,
                sha256: None,
                memory_mb: None,
                deadline: None,
                grants: Default::default(),
                settings,
            },
        )
        .map_err(err)?;
        Ok(Plugin { policy, size: bytes.len() })
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.policy.info
    }

    /// sha256 of the `.wasm` (hex).
    pub fn sha256(&self) -> &str {
        &self.policy.sha256
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The settings error, when the plugin rejected its settings.
    pub fn settings_error(&self) -> Option<&str> {
        self.policy.settings_rejection()
    }

    /// Evaluates a complete input document (any text, for hostile-input checks).
    pub fn call(&self, input: &str) -> (CallOutcome, Duration, usize) {
        let (result, CallStats { duration, peak_memory }) = self.policy.evaluate_input(input);
        let outcome = match result {
            Ok(found) => CallOutcome {
                violations: Some(found.into_iter().map(|f| f.message).collect()),
                failure: None,
                crashed: false,
            },
            Err(f) => CallOutcome {
                violations: None,
                crashed: f.kind != crate::decision::PolicyErrorKind::Runtime,
                failure: Some(f.message),
            },
        };
        (outcome, duration, peak_memory)
    }

    /// Calls `validate-settings` with arbitrary text.
    fn validate(&self, settings: &str) -> std::result::Result<std::result::Result<(), String>, String> {
        self.policy.call(|b, store| b.validate_settings(store, settings)).0.map_err(|f| f.message)
    }
}

/// One line of the check table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub check: String,
    /// Whether it held.
    pub passed: bool,
    /// Evidence.
    pub detail: String,
}

/// The result of `plugin check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Plugin metadata (when it loaded).
    pub plugin: Option<PluginInfo>,
    /// sha256 of the file.
    pub sha256: String,
    /// Every check.
    pub checks: Vec<CheckResult>,
}

impl CheckReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// The standard fixtures every plugin must answer within its budget.
pub fn fixtures() -> Vec<(&'static str, Value)> {
    let pod = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": name}}, "spec": spec});
    vec![
        (
            "compliant pod",
            pod(
                "web",
                json!({"containers": [{"name": "web", "image": "registry.example.com/web@sha256:0f", "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}),
            ),
        ),
        (
            "privileged pod",
            pod(
                "root",
                json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}], "initContainers": [{"name": "i", "image": "busybox"}]}),
            ),
        ),
        (
            "pod with env secrets",
            pod(
                "db",
                json!({"containers": [{"name": "db", "image": "postgres:16", "env": [{"name": "POSTGRES_PASSWORD", "value": "postgres"}]}]}),
            ),
        ),
        ("empty pod", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}})),
        (
            "service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}),
        ),
        (
            "secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "data": {"password": "YWRtaW4="}}),
        ),
        (
            "namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": "cde"}}}),
        ),
        (
            "cluster role",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        ),
    ]
}

/// Builds the input document for a fixture object (scan mode).
pub fn fixture_input(object: &Value, operation: &str, settings: &Value) -> String {
    let input = crate::input::Input::from_object(object.clone()).ok();
    let mut review = input.map(|i| i.review().clone()).unwrap_or_else(|| json!({}));
    review["operation"] = json!(operation);
    json!({"review": review, "parameters": settings}).to_string()
}

fn huge_input(settings: &Value) -> String {
    let containers: Vec<Value> = (0..2000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox", "env": [{"name": "PAD", "value": "x".repeat(1000)}]}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "default"}, "spec": {"containers": containers}});
    fixture_input(&pod, "CREATE", settings)
}

/// Name of the check that evaluates each fixture twice and compares.
pub const DETERMINISM: &str = "same input gives the same output";

/// Runs the conformance pass. `settings` are the parameters to validate and use.
pub fn check(path: &str, bytes: &[u8], settings: &Value, options: WasmOptions) -> CheckReport {
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
    let mut checks = Vec::new();
    let mut push = |check: &str, passed: bool, detail: String| {
        checks.push(CheckResult { check: check.to_string(), passed, detail })
    };
    let plugin = match Plugin::load(path, bytes, settings, options.clone()) {
        Ok(p) => {
            push("loads as a palisade:policy@0.1.0 component", true, format!("{} bytes", bytes.len()));
            push("ABI version", true, format!("declares {}", p.info().abi_version));
            p
        }
        Err(e) => {
            let msg = e.to_string();
            let abi = msg.contains("declares ABI version");
            push("loads as a palisade:policy@0.1.0 component", abi, if abi { "loads".into() } else { msg.clone() });
            if abi {
                push("ABI version", false, msg);
            }
            return CheckReport { plugin: None, sha256, checks };
        }
    };
    let info = plugin.info().clone();
    let mut problems = Vec::new();
    if info.name.trim().is_empty() {
        problems.push("name is empty".to_string());
    }
    if semver::Version::parse(&info.version).is_err() {
        problems.push(format!("version {:?} is not semver", info.version));
    }
    if info.description.trim().is_empty() {
        problems.push("description is empty".into());
    }
    if info.kinds.is_empty() {
        problems.push("kinds is empty".into());
    }
    if let Some(schema) = &info.settings_schema
        && serde_json::from_str::<Value>(schema).is_err()
    {
        problems.push("settings-schema is not JSON".into());
    }
    push(
        "metadata is complete",
        problems.is_empty(),
        if problems.is_empty() {
            format!("{} {} ({})", info.name, info.version, info.kinds.join(", "))
        } else {
            problems.join("; ")
        },
    );
    match plugin.settings_error() {
        None => push("accepts the given settings", true, settings.to_string()),
        Some(e) => push("accepts the given settings", false, e.to_string()),
    }
    match plugin.validate("this is not JSON") {
        Ok(Err(e)) => push("rejects malformed settings with a message", true, e),
        Ok(Ok(())) => {
            push("rejects malformed settings with a message", true, "accepted (the plugin ignores settings)".into())
        }
        Err(e) => push("rejects malformed settings with a message", false, format!("crashed: {e}")),
    }
    let deadline = options.default_deadline;
    let cap = options.default_memory_mb as usize * 1024 * 1024;
    for (label, input) in [
        ("empty input", String::new()),
        ("malformed input", "{\"review\": [1, 2".to_string()),
        ("input of the wrong shape", json!({"review": {"object": 42}, "parameters": "x"}).to_string()),
        ("huge input (2000 containers, 2 MB)", huge_input(settings)),
    ] {
        let (outcome, took, _) = plugin.call(&input);
        let ok = !outcome.crashed;
        let detail = match (&outcome.failure, &outcome.violations) {
            (Some(f), _) => format!("{f} ({} ms)", took.as_millis()),
            (None, Some(v)) => format!("{} violation(s) ({} ms)", v.len(), took.as_millis()),
            _ => String::new(),
        };
        push(&format!("answers {label} without a trap"), ok, detail);
    }
    let mut slowest = (Duration::ZERO, "");
    let mut peak = (0usize, "");
    let mut budget_problems = Vec::new();
    let mut nondeterministic = Vec::new();
    for (name, object) in fixtures() {
        let input = fixture_input(&object, "CREATE", settings);
        let (first, took, mem) = plugin.call(&input);
        let (second, took2, mem2) = plugin.call(&input);
        if first.crashed {
            budget_problems.push(format!("{name}: {}", first.failure.clone().unwrap_or_default()));
        }
        if first != second {
            nondeterministic.push(name);
        }
        for (t, m) in [(took, mem), (took2, mem2)] {
            if t > slowest.0 {
                slowest = (t, name);
            }
            if m > peak.0 {
                peak = (m, name);
            }
        }
    }
    push(
        "standard fixtures within deadline and memory cap",
        budget_problems.is_empty() && slowest.0 <= deadline && peak.0 <= cap,
        if budget_problems.is_empty() {
            format!(
                "slowest {} µs ({}), peak memory {} KiB ({}); limits {} ms, {} MiB",
                slowest.0.as_micros(),
                slowest.1,
                peak.0 / 1024,
                peak.1,
                deadline.as_millis(),
                options.default_memory_mb
            )
        } else {
            budget_problems.join("; ")
        },
    );
    push(
        DETERMINISM,
        nondeterministic.is_empty(),
        if nondeterministic.is_empty() {
            format!("{} fixtures evaluated twice", fixtures().len())
        } else {
            format!("different results for: {}", nondeterministic.join(", "))
        },
    );
    CheckReport { plugin: Some(info), sha256, checks }
}
