//! The conformance checks: the pci-dss bundle conforms, and parameters are
//! validated against their schemas (`cli/tests/conformance.rs` runs the command
//! on the deliberately broken fixture).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use palisade::Bundle;
use palisade::conformance::{self, Options, Outcome};

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
    // pod-security checks of pci-workloads) that agree on every one of their cases; pss-host-namespaces
    // has a third, in CEL.
    let pss: Vec<_> = bundle.policies().iter().filter(|p| p.id.starts_with("pss-")).collect();
    assert_eq!(pss.len(), 19);
    for spec in pss {
        for name in ["implementations-agree", "plugin"] {
            let c = check(&spec.id, name);
            assert_eq!(c.outcome, Outcome::Pass, "{}: {name}: {}", spec.id, c.detail);
        }
        let want = if spec.id == "pss-host-namespaces" {
            "Rego and WebAssembly and CEL agree on all"
        } else {
            "Rego and WebAssembly agree on all"
        };
        assert!(
            check(&spec.id, "implementations-agree").detail.starts_with(want),
            "{}",
            check(&spec.id, "implementations-agree").detail
        );
    }
    // The other checks of the pci-workloads component keep their Rego twins.
    for id in
        ["image-digest", "no-latest-tag", "trusted-registries", "read-only-root-filesystem", "apiserver-audit-logging"]
    {
        let c = check(id, "implementations-agree");
        assert_eq!(c.outcome, Outcome::Pass, "{id}: {}", c.detail);
        assert!(c.detail.starts_with("Rego and WebAssembly agree on all"), "{id}: {}", c.detail);
    }
}

#[test]
fn parameters_are_checked_against_the_policy_schema() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(Path::new("tests/bundles/basic"), dir.path());
    let manifest = dir.path().join("bundle.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, toml.replace(r#"labels = ["app", "owner"]"#, r#"labels = ["app", 7]"#)).unwrap();
    let err = Bundle::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("policy `required-labels`: `parameters`: do not match schemas/labels.json: /labels/1: 7 is not of type \"string\""), "{err}");
}
