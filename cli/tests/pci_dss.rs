//! The pci-dss bundle through the command line: the README's main command, the
//! evidence report, and the rule table `bundle doc` prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::root;
use palisade::Bundle;

fn bundle() -> Bundle {
    Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap()
}

#[test]
fn evidence_report_in_markdown_and_self_contained_html() {
    let run = |format: &str| {
        let o = common::command()
            .current_dir(root())
            .args(["report", "-b", "policy-bundles/pci-dss", "--format", format, "examples/non-compliant"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let md = run("markdown");
    for n in 1..=12 {
        assert!(md.contains(&format!("\n## Requirement {n}: ")), "no section for requirement {n}");
    }
    assert!(
        md.contains(
            "## Requirement 9: Control who can physically reach cardholder data\n\nOutside the platform's scope."
        ),
        "{md}"
    );
    assert!(md.contains("### 2.2.2 "), "{md}");
    assert!(md.contains("| `pci-dss/default-credentials` | StatefulSet/payments/postgres"), "{md}");
    assert!(md.contains("- Objects checked by namespace scope: cde "), "{md}");
    let html = run("html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>") && !html.contains("<link") && !html.contains("<script") && !html.contains("src="));
    assert!(html.contains("id=\"req-12\""));
    assert!(html.contains("class=\"deny\">deny</td>"));
}

#[test]
fn the_readme_main_command_exits_1_on_the_examples_and_bundle_doc_prints_the_table() {
    let run = |args: &[&str]| common::command().current_dir(root()).args(args).output().unwrap();
    // examples/ holds the compliant and the non-compliant manifests: findings, exit 1.
    let o = run(&["scan", "examples/"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("deny "), "{out}");
    let o = run(&["bundle", "doc", "policy-bundles/pci-dss"]);
    assert_eq!(o.status.code(), Some(0));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains(&palisade::bundle::doc::rule_table(&bundle())), "{table}");
}
