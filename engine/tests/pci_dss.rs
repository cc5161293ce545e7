//! The pci-dss bundle as CI must see it: every case passes (with VM policies
//! checked against the interpreter), every policy has passing and failing cases,
//! the compliant example scans clean and the non-compliant one hits every
//! requirement group that has platform rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::root;
use palisade::documents::Documents;
use palisade::scan::{ScanOptions, scan};
use palisade::tester::{TestOptions, run_bundle};
use palisade::{Bundle, Engine};

fn bundle() -> Bundle {
    Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap()
}

#[test]
fn every_case_passes_and_every_policy_is_covered() {
    let report = run_bundle(&bundle(), &TestOptions::default()).unwrap();
    // Failures, and disagreements between the Rego and the pci-workloads plugin (pss-* and
    // the other policies that have both).
    let failures: Vec<_> = report.cases.iter().filter(|c| c.reasons().next().is_some()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.cases.len() > 200);
}

fn scan_dir(dir: &str) -> palisade::scan::ScanReport {
    let engine = Engine::builder().bundle(bundle()).build().unwrap();
    let mut docs = Documents::default();
    docs.read_path(root().join(dir).to_str().unwrap());
    assert!(docs.errors.is_empty(), "{:?}", docs.errors);
    scan(&engine, docs.documents, &ScanOptions::default(), None).unwrap()
}

#[test]
fn compliant_example_scans_clean() {
    let report = scan_dir("examples/compliant");
    let findings: Vec<_> = report
        .results
        .iter()
        .flat_map(|r| r.decision.violations.iter().chain(&r.decision.warnings))
        .map(|v| format!("{} {}: {}", v.object, v.policy, v.message))
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(report.results.iter().all(|r| r.decision.errors.is_empty()));
    assert!(report.results.len() > 30);
}

#[test]
fn non_compliant_example_hits_every_requirement_group_with_platform_rules() {
    let report = scan_dir("examples/non-compliant");
    assert!(report.denied());
    let groups: BTreeSet<String> = report
        .results
        .iter()
        .flat_map(|r| r.decision.violations.iter().chain(&r.decision.warnings))
        .flat_map(|v| v.requirements.iter().map(|r| r.split('.').next().unwrap_or("").to_string()))
        .collect();
    for g in ["1", "2", "3", "4", "5", "6", "7", "8", "10", "11"] {
        assert!(groups.contains(g), "no finding for requirement {g}: {groups:?}");
    }
    // default-credentials (the WebAssembly policy) is among them.
    assert!(report.results.iter().any(|r| r.decision.violations.iter().any(|v| v.policy == "default-credentials")));
}

#[test]
fn requirement_ids_exist_in_pci_dss_4_0_1() {
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("engine/data/pci-dss-4.0.1.json")).unwrap()).unwrap();
    let ids: BTreeSet<&str> =
        data["requirements"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    for p in bundle().policies() {
        assert!(!p.requirements.is_empty(), "{} maps to no requirement", p.id);
        for r in &p.requirements {
            assert!(ids.contains(r.as_str()), "{}: {r} is not a PCI DSS v4.0.1 requirement", p.id);
        }
    }
}

#[test]
fn readme_rule_table_matches_bundle_toml() {
    let readme = std::fs::read_to_string(root().join("policy-bundles/pci-dss/README.md")).unwrap();
    let current = palisade::bundle::doc::current_section(&readme).expect("README has the generated section");
    assert_eq!(
        current,
        palisade::bundle::doc::rule_table(&bundle()),
        "the README's rule table drifted: run `palisade bundle doc policy-bundles/pci-dss --update policy-bundles/pci-dss/README.md`"
    );
}
