//! Versioned bundles through the command line: picking a version from a bundle
//! path, and the pci-dss bundle packed, signed, verified and scanned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{rewrite_archive as rewrite, root, write_bundle};

#[test]
fn side_by_side_versions_are_selected_by_requirement() {
    let dir = tempfile::tempdir().unwrap();
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        write_bundle(
            dir.path(),
            "app",
            v,
            &[],
            None,
            Some(&format!("package app\n\ndeny contains \"app {v}\" if true\n")),
        );
    }
    let pod_file = dir.path().join("pod.yaml");
    std::fs::write(&pod_file, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n").unwrap();
    let o = common::command()
        .args(["scan", "-b", "app@^1", "--bundle-path"])
        .arg(dir.path())
        .arg(&pod_file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("deny  p: app 1.2.0"), "{out}");
    assert!(out.contains("1 objects scanned with app 1.2.0"), "{out}");

    // The search path from the environment, and a requirement picking the other line.
    let empty = tempfile::tempdir().unwrap();
    let o = common::command()
        .args(["scan", "-b", "app@>=2"])
        .arg(&pod_file)
        .env("PALISADE_BUNDLE_PATH", format!("{}:{}", empty.path().display(), dir.path().display()))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("deny  p: app 2.0.0"), "{out}");

    // A search path entry that does not exist is an error that names it, once.
    let o = common::command()
        .args(["scan", "-b", "app@^1", "--bundle-path", "/nonexistent/bundles"])
        .arg(&pod_file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/bundles: cannot read bundle path"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // `bundle inspect` names what a requirement would load.
    let o = common::command().args(["bundle", "inspect"]).arg(dir.path().join("app-1.2.0")).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&o.stderr));
    for expected in ["name:         app\n", "version:      1.2.0\n", "digest:       sha256:", "  p  "] {
        assert!(out.contains(expected), "{expected} missing from\n{out}");
    }
}

#[test]
fn pci_dss_packs_signs_verifies_and_scans() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| common::command().current_dir(dir.path()).args(args).output().unwrap();
    let bundle = root().join("policy-bundles/pci-dss");
    let examples = root().join("examples/compliant");
    assert!(run(&["bundle", "pack", bundle.to_str().unwrap()]).status.success());
    assert!(run(&["bundle", "keygen", "-o", "platform"]).status.success());
    assert!(run(&["bundle", "sign", "pci-dss-1.1.0.tar.gz", "--key", "platform.key"]).status.success());
    let o = run(&["bundle", "verify", "pci-dss-1.1.0.tar.gz", "--key", "platform.pub"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK: pci-dss 1.1.0 (sha256:"));
    let o = run(&["scan", "-b", "pci-dss-1.1.0.tar.gz", "--trusted-key", "platform.pub", examples.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // The same archive is refused once a file inside it changed.
    let path = dir.path().join("pci-dss-1.1.0.tar.gz");
    rewrite(&path, &path, |p, d| {
        vec![(p.into(), if p == "rules/software/no_latest_tag.rego" { b"package x\n".to_vec() } else { d })]
    });
    let o = run(&["scan", "-b", "pci-dss-1.1.0.tar.gz", "--trusted-key", "platform.pub", examples.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("file rules/software/no_latest_tag.rego was altered"));
}
