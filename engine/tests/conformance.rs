//! `palisade conformance` and the checks behind it: the pci-dss bundle conforms,
//! the deliberately broken fixture fails with exactly one line per problem, and
//! parameters are validated against their schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use palisade::Bundle;
use palisade::conformance::{self, Options, Outcome};

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run palisade")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BROKEN: &str = "../conformance/fixtures/broken";

#[test]
fn the_pci_dss_bundle_conforms() {
    let bundle = Bundle::from_dir("../policy-bundles/pci-dss").unwrap();
    let report = conformance::check_bundle(&bundle, &Options::default()).unwrap();
    assert!(report.passed(), "{}", report.pretty(false));
    // Every policy was checked on every axis, and the checks that apply to all held.
    for spec in bundle.policies() {
        let mine: Vec<_> = report.checks.iter().filter(|c| c.policy.as_deref() == Some(&spec.id)).collect();
        assert_eq!(mine.len(), 8, "{}: {mine:?}", spec.id);
        for check in ["requirements", "parameters", "cases", "cases-pass", "deterministic", "budget"] {
            let c = mine.iter().find(|c| c.check == check).unwrap();
            assert_eq!(c.outcome, Outcome::Pass, "{}: {check}: {}", spec.id, c.detail);
        }
    }
    let check = |policy: &str, name: &str| {
        report.checks.iter().find(|c| c.policy.as_deref() == Some(policy) && c.check == name).unwrap()
    };
    assert_eq!(check("default-credentials", "plugin").outcome, Outcome::Pass);
    // A plugin's own settings schema applies when the policy declares none.
    let c = check("default-credentials", "parameters");
    assert_eq!(c.detail, "valid against the plugin's settings schema");
    assert_eq!(check("pss-privileged", "parameters").detail, "valid against schemas/parameters.json");
    // The 19 Pod Security Standards policies have two implementations (Rego and the
    // pod-security plugin) that agree on every one of their cases.
    let pss: Vec<_> = bundle.policies().iter().filter(|p| p.id.starts_with("pss-")).collect();
    assert_eq!(pss.len(), 19);
    for spec in pss {
        for name in ["implementations-agree", "plugin"] {
            let c = check(&spec.id, name);
            assert_eq!(c.outcome, Outcome::Pass, "{}: {name}: {}", spec.id, c.detail);
        }
        assert!(check(&spec.id, "implementations-agree").detail.starts_with("Rego and WebAssembly agree on all"));
    }
}

#[test]
fn the_broken_fixture_fails_with_one_line_per_problem() {
    let o = palisade(&["conformance", BROKEN]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    let fails: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("FAIL  ")).collect();
    let expected = [
        ("no-host-pid: cases:", "no failing case"),
        ("coin-flip: deterministic:", "gave a different answer on evaluation 2"),
        ("wrong-requirement: requirements:", "12.99.1 not in pci-dss-4.0.1"),
        ("slow-rule: budget:", "over its 1 ms declared budget_ms"),
        ("privileged-dual: implementations-agree:", "container setup must not run privileged"),
    ];
    assert_eq!(fails.len(), expected.len(), "{out}");
    for (prefix, detail) in expected {
        let line = fails.iter().find(|l| l.contains(prefix)).unwrap_or_else(|| panic!("no {prefix} line in\n{out}"));
        assert!(line.contains(detail), "{line}");
    }
    assert!(out.ends_with("FAILED: 5 policies, 45 checks: 28 passed, 5 failed, 12 not applicable\n"), "{out}");

    // The same problems, machine-readable.
    let o = palisade(&["conformance", BROKEN, "-o", "json", "--repeat", "2"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], false);
    let mut failed: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| format!("{}/{}", c["policy"].as_str().unwrap(), c["check"].as_str().unwrap()))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "coin-flip/deterministic",
            "no-host-pid/cases",
            "privileged-dual/implementations-agree",
            "slow-rule/budget",
            "wrong-requirement/requirements"
        ]
    );

    let o = palisade(&["conformance", BROKEN, "-o", "junit"]);
    let xml = text(&o.stdout);
    assert!(xml.contains("tests=\"45\" failures=\"5\" errors=\"0\" skipped=\"12\""), "{xml}");
    assert!(xml.contains("<testcase classname=\"broken.slow-rule\" name=\"budget\""), "{xml}");

    // `palisade test` alone sees only the disagreement and the missing case.
    let o = palisade(&["test", BROKEN]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  tests/cases.yaml privileged-dual: privileged init container"), "{out}");
    assert!(out.contains("PROBLEM policy no-host-pid has no failing case"), "{out}");
    assert!(out.contains("ok: ") || out.contains("FAILED: 9 passed, 1 failed, 0 errors, 1 problems"), "{out}");
}

#[test]
fn a_bundle_that_does_not_load_fails_conformance_on_its_manifest() {
    let o = palisade(&["conformance", "tests/fixtures/bad-bundles/unknown-key", "-v"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.contains("FAIL  ")).collect();
    assert_eq!(fails.len(), 1, "{out}");
    assert!(fails[0].contains("bundle: manifest:") && fails[0].contains("unknown field"), "{out}");

    // A manifest that loads but a policy that does not compile: one failed `compiles`.
    let o = palisade(&["conformance", "tests/fixtures/bad-bundles/rego-syntax"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    let fails: Vec<&str> = out.lines().filter(|l| l.contains("FAIL  ")).collect();
    assert_eq!(fails.len(), 1, "{out}");
    assert!(fails[0].contains("bundle: compiles:"), "{out}");
}

#[test]
fn parameters_are_checked_against_the_policy_schema() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new("tests/bundles/basic"), dir.path());
    let manifest = dir.path().join("bundle.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, toml.replace(r#"labels = ["app", "owner"]"#, r#"labels = ["app", 7]"#)).unwrap();
    let err = Bundle::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("policy `required-labels`: `parameters`: do not match schemas/labels.json: /labels/1: 7 is not of type \"string\""), "{err}");

    // Overrides are checked too, when the engine is built.
    let o = palisade(&[
        "scan",
        "-b",
        "tests/bundles/basic",
        "--set",
        "prod-registries.registries=[]",
        "../examples/compliant",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("(with overrides) do not match schemas/registries.json: /registries: [] has less than 1 item"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
