//! `palisade conformance`: the deliberately broken fixture fails with exactly one
//! line per problem, a bundle that does not load fails on its manifest, and
//! parameter overrides are checked against the policy's schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{palisade, text};

const BROKEN: &str = "../conformance/fixtures/broken";

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
        ("slow-rule: budget:", "over 2x its 1 ms declared budget_ms"),
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
fn parameter_overrides_are_checked_against_the_policy_schema() {
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
