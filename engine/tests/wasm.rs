//! WebAssembly plugins built from this repository's sources (checked in by
//! `scripts/build-plugins.sh`) run through the engine: mixed Rego + WASM bundles,
//! the sandbox's containment of hostile plugins, digest pinning, ABI checks and
//! the precompiled cache.
#![cfg(feature = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use palisade::decision::PolicyErrorKind;
use palisade::wasm::WasmOptions;
use palisade::{Bundle, Engine, FailureMode, Input};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::plugin;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A bundle directory with the given checked-in plugins (see `common::plugin`) and
/// `[[policy]]` entries; `{sha:NAME}` in the manifest is replaced by NAME's sha256.
fn bundle(dir: &Path, plugins: &[&str], policies: &str, extra_files: &[(&str, &str)]) -> Bundle {
    let mut manifest = String::from("[bundle]\nname = \"mixed\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n");
    let mut policies = policies.to_string();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    for p in plugins {
        let bytes = plugin(p);
        policies = policies.replace(&format!("{{sha:{p}}}"), &sha(&bytes));
        std::fs::write(dir.join("plugins").join(p), bytes).unwrap();
    }
    manifest.push_str(&policies);
    std::fs::write(dir.join("bundle.toml"), manifest).unwrap();
    for (path, text) in extra_files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    Bundle::from_dir(dir).unwrap()
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "app", "image": "nginx:latest"}, {"name": "root", "image": "nginx:1.27", "securityContext": {"privileged": true}}]}}}})
}

#[test]
fn rego_and_wasm_policies_give_one_decision() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(
        dir.path(),
        &["pod_privileged.wasm"],
        r#"
[[policy]]
id = "pod-privileged"
title = "No privileged containers"
requirements = ["2.2.5"]
wasm = "plugins/pod_privileged.wasm"
sha256 = "{sha:pod_privileged.wasm}"
match = { kinds = ["Pod"] }

[[policy]]
id = "no-latest"
title = "No latest tags"
rego = "no_latest.rego"
match = { kinds = ["Pod"] }
"#,
        &[(
            "no_latest.rego",
            "package nl\ndeny contains sprintf(\"%s uses latest\", [c.name]) if { some c in input.review.object.spec.containers; endswith(c.image, \":latest\") }\n",
        )],
    );
    let engine = Engine::builder().bundle(b).build().unwrap();
    assert_eq!(engine.policies()[0].backend_name(), "wasm");
    assert_eq!(engine.policies()[0].plugin_info().unwrap().name, "pod-privileged");
    let d = engine.evaluate(&Input::from_object(deployment()).unwrap());
    assert!(!d.allowed);
    let mut found: Vec<(String, String, Option<String>)> =
        d.violations.iter().map(|v| (v.policy.clone(), v.message.clone(), v.path.clone())).collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("no-latest".into(), "app uses latest".into(), Some("spec.template".into())),
            (
                "pod-privileged".into(),
                "container root must not run privileged".into(),
                Some("spec.template.spec.containers[1].securityContext.privileged".into())
            ),
        ]
    );
    assert_eq!(d.violations.iter().find(|v| v.policy == "pod-privileged").unwrap().object.kind, "Deployment");
}

const HOSTILE: &[(&str, &str, &str)] = &[
    ("loop", "timeout_ms = 100", "plugin h-loop exceeded its 100 ms deadline"),
    ("memory", "memory_mb = 16", "plugin h-memory exceeded its 16 MiB memory limit"),
    ("trap", "", "plugin h-trap trapped: wasm `unreachable` instruction executed"),
    ("recursion", "", "plugin h-recursion trapped: call stack exhausted (recursion too deep)"),
    ("output", "", "plugin h-output wrote more than its 64 KiB output limit to stdout or stderr"),
    ("malformed", "", "plugin h-malformed returned a malformed result: violation details are not JSON"),
    ("error", "", "plugin h-error returned an error: cannot evaluate this input"),
    ("exit", "", "plugin h-exit trapped: called exit(err) instead of returning"),
    ("reject-settings", "", "plugin h-reject-settings rejected its settings: mode reject-settings is never valid"),
];

/// The README's promise: no files, no environment, and a clock only when granted.
#[test]
fn plugins_see_no_environment_no_files_and_a_clock_only_when_granted() {
    let dir = tempfile::tempdir().unwrap();
    let probe = |id: &str, extra: &str| {
        format!(
            "[[policy]]\nid = \"{id}\"\ntitle = \"probe\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{{sha:hostile.wasm}}\"\nmatch = {{ kinds = [\"Pod\"] }}\nparameters = {{ mode = \"probe\" }}\n{extra}\n"
        )
    };
    let policies = probe("sealed", "") + &probe("timed", "grants = [\"clock\"]");
    let b = bundle(dir.path(), &["hostile.wasm"], &policies, &[]);
    // The test process has PATH, HOME, CARGO_*: none of it reaches the plugin.
    let d = Engine::builder().bundle(b).build().unwrap().evaluate(&Input::from_object(deployment()).unwrap());
    let message = |id: &str| d.violations.iter().find(|v| v.policy == id).unwrap().message.clone();
    let sealed = message("sealed");
    assert!(sealed.starts_with("env=0 file="), "{sealed}");
    assert!(!sealed.contains("file=read"), "{sealed}");
    assert!(sealed.ends_with(" clock=zero"), "{sealed}");
    assert!(message("timed").ends_with(" clock=running"), "{}", message("timed"));
}

#[test]
fn hostile_plugins_are_contained_and_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut policies = String::new();
    for (mode, extra, _) in HOSTILE {
        policies.push_str(&format!(
            "[[policy]]\nid = \"h-{mode}\"\ntitle = \"hostile {mode}\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{{sha:hostile.wasm}}\"\nmatch = {{ kinds = [\"Pod\"] }}\nparameters = {{ mode = \"{mode}\" }}\n{extra}\n"
        ));
    }
    policies.push_str(
        "[[policy]]\nid = \"pod-privileged\"\ntitle = \"p\"\nwasm = \"plugins/pod_privileged.wasm\"\nsha256 = \"{sha:pod_privileged.wasm}\"\nmatch = { kinds = [\"Pod\"] }\n\
         [[policy]]\nid = \"seen\"\ntitle = \"r\"\nrego = \"seen.rego\"\nfailure_mode = \"ignore\"\n",
    );
    let b = bundle(
        dir.path(),
        &["hostile.wasm", "pod_privileged.wasm"],
        &policies,
        &[("seen.rego", "package seen\nwarn contains \"seen\" if input.review.object.kind == \"Deployment\"\n")],
    );
    let engine = Engine::builder().bundle(b).build().unwrap();
    for round in 0..2 {
        let d = engine.evaluate(&Input::from_object(deployment()).unwrap());
        assert!(!d.allowed);
        for (mode, _, message) in HOSTILE {
            let e = d
                .errors
                .iter()
                .find(|e| e.policy == format!("h-{mode}"))
                .unwrap_or_else(|| panic!("no error for {mode}"));
            assert!(e.message.starts_with(message), "round {round}, {mode}: {}", e.message);
            assert_eq!(e.failure_mode, FailureMode::Fail);
        }
        let kind = |m: &str| d.errors.iter().find(|e| e.policy == format!("h-{m}")).unwrap().kind;
        assert_eq!(kind("loop"), PolicyErrorKind::Timeout);
        assert_eq!(kind("memory"), PolicyErrorKind::OutOfMemory);
        assert_eq!(kind("trap"), PolicyErrorKind::Trap);
        assert_eq!(kind("recursion"), PolicyErrorKind::Trap);
        assert_eq!(kind("output"), PolicyErrorKind::OutputLimit);
        assert_eq!(kind("malformed"), PolicyErrorKind::MalformedResult);
        assert_eq!(kind("reject-settings"), PolicyErrorKind::InvalidSettings);
        assert_eq!(kind("exit"), PolicyErrorKind::Trap);
        // The well-behaved policies in the same evaluation still report.
        assert!(d.violations.iter().any(|v| v.policy == "pod-privileged"), "{d:?}");
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].message, "seen");
    }
}

fn counter_policy(id: &str, extra: &str) -> String {
    format!(
        "[[policy]]\nid = \"{id}\"\ntitle = \"c\"\naction = \"warn\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{{sha:hostile.wasm}}\"\nparameters = {{ mode = \"counter\" }}\n{extra}\n"
    )
}

/// The isolation unit, as the WIT and README state it: one fresh instance per
/// component per object, shared by that component's policies for that object.
#[test]
fn every_object_gets_a_fresh_instance_shared_by_its_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policies = counter_policy("first", "") + &counter_policy("second", "");
    let b = bundle(dir.path(), &["hostile.wasm"], &policies, &[]);
    let engine = Engine::builder().bundle(b).build().unwrap();
    let input = Input::from_object(deployment()).unwrap();
    for _ in 0..3 {
        let d = engine.evaluate(&input);
        let seen: Vec<(&str, &str)> = d.warnings.iter().map(|w| (w.policy.as_str(), w.message.as_str())).collect();
        assert_eq!(seen, [("first", "evaluation number 1"), ("second", "evaluation number 2")]);
    }
}

/// Two hostile policies in one plugin: the memory bomb fails the shared call; each
/// policy is then run alone, so the bomb's failure is its own (with its own 16 MiB
/// cap) and the other policy still reports, from a fresh instance.
#[test]
fn a_failing_policy_does_not_take_down_its_component_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = "[[policy]]\nid = \"bomb\"\ntitle = \"b\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{sha:hostile.wasm}\"\nmemory_mb = 16\nparameters = { mode = \"memory\" }\n";
    let policies = counter_policy("before", "") + bomb + &counter_policy("after", "");
    let b = bundle(dir.path(), &["hostile.wasm"], &policies, &[]);
    let d = Engine::builder().bundle(b).build().unwrap().evaluate(&Input::from_object(deployment()).unwrap());
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert_eq!(d.errors[0].policy, "bomb");
    assert_eq!(d.errors[0].kind, PolicyErrorKind::OutOfMemory);
    assert!(d.errors[0].message.ends_with("exceeded its 16 MiB memory limit"), "{}", d.errors[0].message);
    let seen: Vec<(&str, &str)> = d.warnings.iter().map(|w| (w.policy.as_str(), w.message.as_str())).collect();
    assert_eq!(seen, [("before", "evaluation number 1"), ("after", "evaluation number 1")]);
}

/// A plugin built for ABI 0.1.0 (no `evaluate-batch`) still runs: its policies get
/// one `evaluate` each, in the object's one instance.
#[test]
fn abi_0_1_0_plugins_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = |id: &str| {
        format!(
            "[[policy]]\nid = \"{id}\"\ntitle = \"l\"\nwasm = \"plugins/legacy_abi.wasm\"\nsha256 = \"{{sha:legacy_abi.wasm}}\"\nmatch = {{ kinds = [\"Pod\"] }}\n"
        )
    };
    let b = bundle(dir.path(), &["legacy_abi.wasm"], &(legacy("one") + &legacy("two")), &[]);
    let engine = Engine::builder().bundle(b).build().unwrap();
    assert_eq!(engine.policies()[0].plugin_info().unwrap().abi_version, "0.1.0");
    let d = engine.evaluate(&Input::from_object(deployment()).unwrap());
    let seen: Vec<(&str, &str)> = d.violations.iter().map(|v| (v.policy.as_str(), v.message.as_str())).collect();
    assert_eq!(
        seen,
        [("one", "container root is privileged (call 1)"), ("two", "container root is privileged (call 2)")]
    );
}

#[test]
fn failure_mode_ignore_allows_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(
        dir.path(),
        &["hostile.wasm"],
        "[[policy]]\nid = \"t\"\ntitle = \"t\"\nfailure_mode = \"ignore\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{sha:hostile.wasm}\"\nparameters = { mode = \"trap\" }\n",
        &[],
    );
    let d = Engine::builder().bundle(b).build().unwrap().evaluate(&Input::from_object(deployment()).unwrap());
    assert!(d.allowed);
    assert_eq!(d.errors[0].failure_mode, FailureMode::Ignore);
}

fn load_error(plugin_file: &str, sha256: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sha256 = sha256.map(str::to_string).unwrap_or_else(|| format!("{{sha:{plugin_file}}}"));
    let policies =
        format!("[[policy]]\nid = \"p\"\ntitle = \"p\"\nwasm = \"plugins/{plugin_file}\"\nsha256 = \"{sha256}\"\n");
    let b = bundle(dir.path(), &[plugin_file], &policies, &[]);
    Engine::builder().bundle(b).build().unwrap_err().to_string()
}

#[test]
fn a_plugin_that_imports_the_network_is_refused_at_load() {
    let e = load_error("network.wasm", None);
    assert!(e.contains("it imports `wasi:sockets/"), "{e}");
    assert!(e.contains("but plugins get no network"), "{e}");
}

#[test]
fn digest_mismatch_is_refused() {
    let e = load_error("pod_privileged.wasm", Some(&"0".repeat(64)));
    assert!(e.contains("plugins/pod_privileged.wasm: sha256 mismatch: bundle.toml pins 0000"), "{e}");
    assert!(e.contains(&format!("but the file's sha256 is {}", sha(&plugin("pod_privileged.wasm")))), "{e}");
}

#[test]
fn an_abi_liar_is_refused() {
    let e = load_error("abi_liar.wasm", None);
    assert!(e.contains("the plugin declares ABI version \"9.9.9\", but its exports are those of ABI 0.2.0"), "{e}");
}

#[test]
fn garbage_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let junk = b"\0asm this is not webassembly".to_vec();
    std::fs::write(dir.path().join("plugins/junk.wasm"), &junk).unwrap();
    std::fs::write(
        dir.path().join("bundle.toml"),
        format!("[bundle]\nname = \"j\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n[[policy]]\nid = \"j\"\ntitle = \"j\"\nwasm = \"plugins/junk.wasm\"\nsha256 = \"{}\"\n", sha(&junk)),
    )
    .unwrap();
    let e = Engine::builder().bundle(Bundle::from_dir(dir.path()).unwrap()).build().unwrap_err().to_string();
    assert!(e.contains("policy `j` of bundle j: plugin") && e.contains("not a valid WebAssembly component"), "{e}");
}

#[test]
fn second_start_deserialises_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let b = bundle(
        dir.path(),
        &["pod_privileged.wasm"],
        "[[policy]]\nid = \"p\"\ntitle = \"p\"\nwasm = \"plugins/pod_privileged.wasm\"\nsha256 = \"{sha:pod_privileged.wasm}\"\nmatch = { kinds = [\"Pod\"] }\n",
        &[],
    );
    let options = WasmOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() };
    let first = Engine::builder().bundle(b.clone()).wasm_options(options.clone()).build().unwrap();
    assert!(!first.policies()[0].plugin_load().unwrap().1);
    let second = Engine::builder().bundle(b.clone()).wasm_options(options.clone()).build().unwrap();
    assert!(second.policies()[0].plugin_load().unwrap().1);
    // A corrupted cache entry is ignored and rewritten, never loaded.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = Engine::builder().bundle(b).wasm_options(options).build().unwrap();
    assert!(!third.policies()[0].plugin_load().unwrap().1);
    let d = third.evaluate(&Input::from_object(deployment()).unwrap());
    assert_eq!(d.violations.len(), 1);
}
