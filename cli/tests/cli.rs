//! The `palisade` binary run as a user runs it: real fixture files, checking stdout,
//! stderr and exit codes (0 allowed / passed, 1 denied / failed, 2 error).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{code, copy_dir, engine_dir, palisade, palisade_stdin, plugin_path, text};

const BASIC: &str = "tests/bundles/basic";

#[test]
fn test_command_runs_the_fixture_bundle() {
    let o = palisade(&["test", BASIC, "-v"]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "stdout:\n{out}\nstderr:\n{}", text(&o.stderr));
    assert!(
        out.contains("PASS  tests/no_latest_tag.yaml no-latest-tag: a Deployment is judged through its pod template"),
        "{out}"
    );
    assert!(out.contains("ok: 21 passed, 0 failed, 0 errors, 0 problems"), "{out}");
}

#[test]
fn test_command_json_and_junit() {
    let o = palisade(&["test", BASIC, "-o", "json", "--filter", "no-latest-tag/"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["passed"], true);
    assert_eq!(v["bundles"][0]["cases"].as_array().map(Vec::len), Some(7));
    let o = palisade(&["test", BASIC, "-o", "junit"]);
    let xml = text(&o.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<testsuite name=\"basic 1.2.0\" tests=\"21\" failures=\"0\""), "{xml}");
}

#[test]
fn failing_cases_and_missing_coverage_fail_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(engine_dir().join(BASIC).as_path(), dir.path());
    // A case that expects a violation the policy does not produce, one naming an unknown
    // policy, and the passing cases of `owner-annotation` removed.
    std::fs::write(
        dir.path().join("tests/extra.yaml"),
        r#"cases:
  - name: expects a violation that does not happen
    policy: no-latest-tag
    object: {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: shop}, spec: {containers: [{name: a, image: "nginx:1.2"}]}}
    expect: {allowed: false}
  - name: names a policy the bundle lacks
    policy: no-such-policy
    object: {apiVersion: v1, kind: Pod, metadata: {name: a}}
    expect: {allowed: true}
"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("tests/owner_annotation.yaml"),
        "policy: owner-annotation\ncases:\n  - name: only a failing case\n    object: {apiVersion: v1, kind: Service, metadata: {name: s}}\n    expect: {violations: 1}\n",
    )
    .expect("write");
    let o = palisade(&["test", dir.path().to_str().expect("utf8")]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("expected policy no-latest-tag to deny, it allowed (no findings)"), "{out}");
    assert!(out.contains("policy no-such-policy does not exist in bundle basic"), "{out}");
    assert!(out.contains("PROBLEM policy owner-annotation has no passing case"), "{out}");
}

#[test]
fn scan_reports_findings_with_exit_1() {
    let o = palisade(&["scan", "-b", BASIC, "tests/bundles/basic/tests/objects/deployment.yaml"]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("DENY tests/bundles/basic/tests/objects/deployment.yaml:1 Deployment/shop/web"), "{out}");
    assert!(out.contains("no-latest-tag (PCI DSS 6.3.2): container web uses image nginx:latest"), "{out}");
    assert!(out.contains("[at spec.template]"), "{out}");
    assert!(out.contains("required-labels (PCI DSS 12.5.1): Deployment web is missing required labels"), "{out}");
    assert!(text(&o.stderr).is_empty(), "{}", text(&o.stderr));
}

/// The README's promise: compiled plugins are cached on disk by default (under
/// XDG_CACHE_HOME), and `--no-cache` writes nothing.
#[test]
fn compiled_plugins_are_cached_unless_no_cache() {
    let cached = tempfile::tempdir().expect("tempdir");
    let uncached = tempfile::tempdir().expect("tempdir");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: a, image: a:1}]}\n";
    let scan = |cache: &Path, extra: &[&str]| {
        let mut cmd = common::command();
        cmd.args(["scan", "-"]).args(extra).env("XDG_CACHE_HOME", cache);
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run palisade");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), pod.as_bytes()).expect("write");
        child.wait_with_output().expect("wait")
    };
    let entries = |dir: &Path| std::fs::read_dir(dir.join("palisade/plugins")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(code(&scan(cached.path(), &[])), 0);
    // The built-in bundle's one component (pci-workloads).
    assert_eq!(entries(cached.path()), 1);
    assert_eq!(code(&scan(uncached.path(), &["--no-cache"])), 0);
    assert_eq!(entries(uncached.path()), 0);
}

#[test]
fn scan_reads_stdin_and_allows_clean_objects() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok, namespace: shop}\nspec:\n  containers: [{name: a, image: 'nginx:1.27', resources: {limits: {memory: 1Gi}}}]\n";
    let o = palisade_stdin(&["scan", "-b", BASIC, "-"], Some(pod));
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("1 objects scanned with basic 1.2.0: 0 denied"), "{}", text(&o.stdout));
}

#[test]
fn scan_fail_on_warn() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: shop}\nspec: {containers: [{name: a, image: 'nginx:1.27'}]}\n";
    assert_eq!(code(&palisade_stdin(&["scan", "-b", BASIC], Some(pod))), 0);
    assert_eq!(code(&palisade_stdin(&["scan", "-b", BASIC, "--fail-on", "warn"], Some(pod))), 1);
}

#[test]
fn scan_output_formats() {
    let file = "tests/fixtures/manifests/pod.yaml";
    let o = palisade(&["scan", "-b", BASIC, "-o", "json", file]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["summary"]["denied"], 1);
    assert_eq!(v["results"][0]["decision"]["violations"][0]["policy"], "no-latest-tag");
    assert_eq!(v["bundles"][0]["name"], "basic");

    let o = palisade(&["scan", "-b", BASIC, "-o", "jsonl", file]);
    let lines: Vec<serde_json::Value> =
        text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["type"] == "finding"));

    let o = palisade(&["scan", "-b", BASIC, "-o", "junit", file]);
    let xml = text(&o.stdout);
    assert!(xml.contains("<failure message=\"container web uses image nginx:latest"), "{xml}");
}

#[test]
fn sarif_is_valid_2_1_0() {
    let o = palisade(&["scan", "-b", BASIC, "-o", "sarif", "tests/fixtures/manifests/three-docs-bad.yaml"]);
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 6);
    for rule in rules {
        for key in ["id", "shortDescription", "fullDescription", "help"] {
            assert!(!rule[key].is_null(), "rule lacks {key}: {rule}");
        }
    }
    let results = run["results"].as_array().expect("results");
    let deny = results.iter().find(|r| r["ruleId"] == "basic/no-latest-tag").expect("finding");
    assert_eq!(deny["level"], "error");
    let loc = &deny["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "tests/fixtures/manifests/three-docs-bad.yaml");
    assert_eq!(loc["region"]["startLine"], 1);
    let idx = deny["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[idx]["id"], "basic/no-latest-tag");
    let second = results.iter().find(|r| r["message"]["text"].as_str().is_some_and(|t| t.contains("Pod/shop/second")));
    assert_eq!(second.expect("warning on second pod")["locations"][0]["physicalLocation"]["region"]["startLine"], 11);
    assert_eq!(run["invocations"][0]["executionSuccessful"], false);
}

#[test]
fn eval_answers_admission_review() {
    let o = palisade(&["eval", "-b", BASIC, "tests/fixtures/manifests/admission-review.json"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let r = &v["response"];
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["uid"], "3f8e1c2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(msg.contains("[no-latest-tag] (PCI DSS 6.3.2) container web uses image nginx:latest"), "{msg}");
    assert!(msg.contains("[required-labels] (PCI DSS 12.5.1)"), "{msg}");
    assert_eq!(r["warnings"][0], "[resource-limits] container web has no memory limit");
    assert_eq!(r["auditAnnotations"]["decision"], "denied");
}

#[test]
fn eval_answers_a_v1beta1_review_in_v1beta1() {
    let text_of_review = std::fs::read_to_string(engine_dir().join("tests/fixtures/manifests/admission-review.json"))
        .expect("fixture")
        .replace("admission.k8s.io/v1\"", "admission.k8s.io/v1beta1\"");
    let o = palisade_stdin(&["eval", "-b", BASIC, "-"], Some(&text_of_review));
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(v["response"]["uid"], "3f8e1c2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b");
    assert_eq!(v["response"]["allowed"], false);
}

#[test]
fn eval_accepts_a_bare_request_on_stdin() {
    let review: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(engine_dir().join("tests/fixtures/manifests/admission-review.json")).expect("read"),
    )
    .expect("json");
    let mut req = review["request"].clone();
    req["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27".into();
    req["object"]["spec"]["template"]["spec"]["containers"][0]["resources"] =
        serde_json::json!({"limits": {"memory": "1Gi"}});
    req["object"]["metadata"]["labels"]["owner"] = "team-web".into();
    let o = palisade_stdin(&["eval", "-b", BASIC, "-"], Some(&req.to_string()));
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["response"]["allowed"], true);
}

#[test]
fn bundle_check() {
    let o = palisade(&["bundle", "check", BASIC]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).starts_with("ok: bundle basic 1.2.0 (sha256:"), "{}", text(&o.stdout));
}

// Bad input, tried as a new user would: one clear message naming the place, exit 2, no panic.

fn assert_error(o: &Output, expected: &str) {
    let err = text(&o.stderr);
    assert_eq!(code(o), 2, "stderr: {err}\nstdout: {}", text(&o.stdout));
    assert!(err.contains(expected), "expected {expected:?} in stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_file() {
    let o = palisade(&["scan", "-b", BASIC, "no/such/file.yaml"]);
    assert_error(&o, "palisade: no/such/file.yaml: cannot read: No such file or directory");
}

#[test]
fn paths_without_manifests_warn_and_fail_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let (empty, looped) = (dir.path().join("empty"), dir.path().join("looped"));
    std::fs::create_dir(&empty).unwrap();
    std::fs::create_dir(&looped).unwrap();
    std::os::unix::fs::symlink(looped.join("self"), looped.join("self")).unwrap();
    let (empty, looped) = (empty.display().to_string(), looped.display().to_string());
    for path in [&empty, &looped] {
        let o = palisade(&["scan", "-b", BASIC, path]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let warning = format!("palisade: warning: {path}: no Kubernetes manifests found (wrong path?)");
        assert!(text(&o.stderr).contains(&warning), "{}", text(&o.stderr));
    }
    assert_error(&palisade(&["scan", "-b", BASIC, "--strict", &empty]), "1 path(s) without manifests (--strict)");
    assert_error(&palisade(&["report", "-b", BASIC, "--strict", &looped]), "without manifests");
    let o = palisade_stdin(&["scan", "-b", BASIC, "--strict", "-"], Some("# nothing\n"));
    assert_error(&o, "palisade: warning: standard input: no Kubernetes manifests found");
    let file = "tests/fixtures/manifests/pod.yaml";
    let o = palisade(&["scan", "-b", BASIC, "--strict", file]);
    assert!(!text(&o.stderr).contains("warning"), "{}", text(&o.stderr));
}

#[test]
fn yaml_error_in_third_document_keeps_other_results() {
    let o = palisade(&["scan", "-b", BASIC, "tests/fixtures/manifests/three-docs-bad.yaml"]);
    assert_error(
        &o,
        "three-docs-bad.yaml: document 3 (line 27, column 5): invalid YAML: did not find expected ',' or ']'",
    );
    let out = text(&o.stdout);
    assert!(out.contains("Pod/shop/first") && out.contains("Pod/shop/second"), "{out}");
}

#[test]
fn bundle_with_unknown_key() {
    let o = palisade(&["scan", "-b", "tests/fixtures/bad-bundles/unknown-key", "tests/fixtures/manifests/pod.yaml"]);
    assert_error(&o, "unknown-key/bundle.toml: line 10, column 1: unknown field `severty`, expected one of");
}

#[test]
fn bundle_with_duplicate_policy_id() {
    let o = palisade(&["bundle", "check", "tests/fixtures/bad-bundles/duplicate-id"]);
    assert_error(&o, "duplicate-id/bundle.toml: policy `no-privileged`: `id`: duplicate policy id");
}

#[test]
fn bundle_with_unmet_engine_requirement() {
    let o = palisade(&["test", "tests/fixtures/bad-bundles/engine-req"]);
    assert_error(&o, "bundle future 3.0.0 requires palisade ^2.0, but this is palisade 0.1.0");
}

#[test]
fn rego_syntax_error() {
    let o = palisade(&["bundle", "check", "tests/fixtures/bad-bundles/rego-syntax"]);
    assert_error(
        &o,
        "policy `broken` of bundle rego-syntax: Rego does not compile: tests/fixtures/bad-bundles/rego-syntax/rules/broken.rego:6:1: expecting `)`",
    );
}

#[test]
fn rule_past_its_time_budget_is_a_finding_and_others_still_report() {
    let o = palisade(&[
        "scan",
        "-b",
        "tests/fixtures/bad-bundles/slow",
        "--rego-timeout",
        "200",
        "-o",
        "json",
        "tests/fixtures/manifests/pod.yaml",
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let d = &v["results"][0]["decision"];
    assert_eq!(d["allowed"], false);
    let errors = d["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["kind"], "timeout");
    assert_eq!(errors[0]["message"], "policy endless exceeded its 200 ms time budget");
    assert_eq!(errors[1]["failure_mode"], "ignore");
    assert_eq!(d["warnings"][0]["message"], "pod web was seen");
}

#[test]
fn bad_flags_exit_2() {
    let o = palisade(&["scan", "--output", "yaml"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("invalid value 'yaml'"), "{}", text(&o.stderr));
}

mod plugin_commands {
    use super::*;

    fn wasm(name: &str) -> String {
        plugin_path(name).display().to_string()
    }

    #[test]
    fn inspect_prints_metadata_and_digest() {
        let o = palisade(&["plugin", "inspect", &wasm("pod_privileged.wasm")]);
        let out = text(&o.stdout);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        assert!(out.contains("name:            pod-privileged"), "{out}");
        assert!(out.contains("abi version:     0.2.0"), "{out}");
        assert!(out.contains("requirements:    2.2.5, 7.2.2"), "{out}");
        let digest =
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(wasm("pod_privileged.wasm")).unwrap()));
        assert!(out.contains(&format!("sha256:          {digest}")), "{out}");
    }

    #[test]
    fn check_passes_a_good_plugin() {
        let o =
            palisade(&["plugin", "check", &wasm("default_credentials.wasm"), "--settings", r#"{"min_length": 10}"#]);
        let out = text(&o.stdout);
        assert_eq!(code(&o), 0, "{out}");
        assert!(out.contains("PASS  same input gives the same output"), "{out}");
        assert!(out.ends_with("ok: every check passed\n"), "{out}");
    }

    #[test]
    fn check_fails_bad_plugins() {
        let o = palisade(&["plugin", "check", &wasm("nondeterministic.wasm")]);
        assert_eq!(code(&o), 1);
        assert!(text(&o.stdout).contains("FAIL  same input gives the same output"), "{}", text(&o.stdout));

        let o =
            palisade(&["plugin", "check", &wasm("hostile.wasm"), "--settings", r#"{"mode": "loop"}"#, "-o", "json"]);
        assert_eq!(code(&o), 1);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let budget = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "standard fixtures within deadline and memory cap")
            .unwrap();
        assert_eq!(budget["passed"], false);
        assert!(budget["detail"].as_str().unwrap().contains("exceeded its 100 ms deadline"), "{budget}");

        let o = palisade(&["plugin", "check", &wasm("hostile.wasm"), "--settings", r#"{"mode": "reject-settings"}"#]);
        assert!(text(&o.stdout).contains("FAIL  accepts the given settings"), "{}", text(&o.stdout));

        let o = palisade(&["plugin", "check", &wasm("abi_liar.wasm")]);
        assert_eq!(code(&o), 1);
        assert!(text(&o.stdout).contains("the plugin declares ABI version \"9.9.9\""), "{}", text(&o.stdout));
    }

    #[test]
    fn inspect_refuses_non_components() {
        let o = palisade(&["plugin", "inspect", "tests/fixtures/manifests/pod.yaml"]);
        assert_error(&o, "tests/fixtures/manifests/pod.yaml: not a valid WebAssembly component");
    }
}

#[test]
fn test_command_catches_vm_interpreter_disagreement() {
    let o = palisade(&["test", "tests/fixtures/bad-bundles/vm-disagree"]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("the Rego VM and the interpreter disagree: the VM found [\"[flag-values] container app: 3 values for 3 arguments\"], the interpreter []"),
        "{out}"
    );
}

/// A Pod with a field of the wrong type fails closed in the plugin policies, and the
/// error names the field by its path, not a column of the host's serialisation.
#[test]
fn a_malformed_pod_is_denied_naming_the_field() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: app}\nspec:\n  containers:\n  - {name: c, image: 5}\n";
    let o = palisade_stdin(&["scan", "-"], Some(pod));
    let out = text(&o.stdout);
    assert_eq!(code(&o), 1, "{out}{}", text(&o.stderr));
    assert!(
        out.contains(
            "malformed review: review.object.spec.containers[0].image: invalid type: integer `5`, expected a string"
        ),
        "{out}"
    );
    assert!(!out.contains(" at line "), "{out}");
}
