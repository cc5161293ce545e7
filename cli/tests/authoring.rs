//! The authoring loop of someone writing policies: `palisade new policy` (Rego and
//! WebAssembly), `palisade test --coverage`, `palisade test --watch`, `palisade bundle pin`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{copy_dir, engine_dir, palisade, text};

/// A copy of the basic fixture bundle inside the build's target directory, where
/// the repository's toolchain file applies to nested cargo builds.
fn basic_copy(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&engine_dir().join("tests/bundles/basic"), &dir);
    dir
}

#[test]
fn new_rego_policy_is_green_immediately_and_conforms() {
    let dir = basic_copy("new-rego");
    let d = dir.to_str().unwrap();
    let o = palisade(&["new", "policy", "require-owner", "--bundle", d]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("tests of require-owner: 2 passed, 0 failed, 0 errors"), "{out}");
    for f in ["rules/require_owner.rego", "schemas/require_owner.json", "tests/require_owner.yaml"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let o = palisade(&["test", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let o = palisade(&["conformance", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));

    // The failing case really fails when the rule stops finding anything.
    let module = dir.join("rules/require_owner.rego");
    let rego = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, rego.replace("not input.review.object.metadata.labels[label]", "false")).unwrap();
    let o = palisade(&["test", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("require-owner: a pod without the label is denied"), "{}", text(&o.stdout));

    // Refusals: an existing id, an invalid id; nothing is overwritten.
    let o = palisade(&["new", "policy", "require-owner", "--bundle", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("already has a policy with this id"), "{}", text(&o.stderr));
    let o = palisade(&["new", "policy", "Bad Name", "--bundle", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("`id`: expected lowercase letters"), "{}", text(&o.stderr));
}

#[test]
fn new_wasm_policy_builds_pins_and_passes() {
    let dir = basic_copy("new-wasm");
    let d = dir.to_str().unwrap();
    let o = palisade(&["new", "policy", "owner-label", "--bundle", d, "--wasm"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("tests of owner-label: 2 passed, 0 failed, 0 errors"), "{out}");
    let wasm = dir.join("plugins/owner-label.wasm");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&wasm).unwrap()));
    let manifest = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    assert!(manifest.contains(&format!("sha256 = \"{digest}\"")), "{manifest}");
    let o = palisade(&["conformance", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));

    // A rebuilt plugin is refused until it is re-pinned.
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0, 3, 1, b'x', 0]); // a custom section: still a valid component
    std::fs::write(&wasm, &bytes).unwrap();
    let o = palisade(&["test", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("sha256"), "{}", text(&o.stderr));
    let o = palisade(&["bundle", "pin", d]);
    assert!(text(&o.stdout).contains(&format!("owner-label: sha256 {}", &digest[..12])), "{}", text(&o.stdout));
    let o = palisade(&["test", d]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = palisade(&["bundle", "pin", d]);
    assert!(text(&o.stdout).contains("every plugin pin is up to date"), "{}", text(&o.stdout));
}

#[test]
fn a_plugin_that_does_not_build_leaves_the_bundle_as_it_was() {
    let dir = basic_copy("new-wasm-broken");
    let d = dir.to_str().unwrap();
    let before = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    let sdk = dir.join("no-sdk-here");
    let o = palisade(&["new", "policy", "owner-label", "--bundle", d, "--wasm", "--sdk", sdk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("cargo build failed"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("bundle.toml")).unwrap(), before);
    for left in ["plugin-src/owner-label", "plugins/owner-label.wasm", "tests/owner_label.yaml"] {
        assert!(!dir.join(left).exists(), "{left} was left behind");
    }
}

#[test]
fn coverage_lists_uncovered_lines_and_enforces_the_threshold() {
    let dir = basic_copy("coverage");
    let d = dir.to_str().unwrap();
    let o = palisade(&["test", d, "--coverage", "--threshold", "100"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("100.0%  total (42/42 lines)"), "{out}");

    // A rule body no case reaches.
    let module = dir.join("rules/resource_limits.rego");
    let mut rego = std::fs::read_to_string(&module).unwrap();
    rego.push_str("\nwarn contains \"never\" if {\n\tinput.review.object.kind == \"NoSuchKind\"\n\tsome x in [1, 2]\n\tx > 1\n}\n");
    std::fs::write(&module, rego).unwrap();
    let o = palisade(&["test", d, "--coverage", "--threshold", "95"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let line = out.lines().find(|l| l.contains("rules/resource_limits.rego")).unwrap();
    assert!(line.contains("62.5%") && line.ends_with("(5/8 lines)  uncovered: 12, 14-15"), "{line}");
    assert!(text(&o.stderr).contains("coverage 93.5% is below the threshold of 95%"), "{}", text(&o.stderr));
    let o = palisade(&["test", d, "--coverage", "--threshold", "90"]);
    assert_eq!(o.status.code(), Some(0));

    // Machine-readable results keep stdout clean; the table goes to stderr.
    let o = palisade(&["test", d, "--coverage", "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    assert!(text(&o.stderr).contains("rules/resource_limits.rego"));
}

#[test]
fn watch_reruns_the_tests_of_the_bundle_that_changed() {
    let dir = basic_copy("watch");
    let mut child = common::command()
        .args(["test", "--watch", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("passed,") && tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(60)).expect("a test run");
    let first = next();
    assert!(first.contains("ok: 21 passed"), "{first}");

    // Break a case: the run after the save fails it.
    let cases = dir.join("tests/owner_annotation.yaml");
    let yaml = std::fs::read_to_string(&cases).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&cases, yaml.replacen("allowed: true", "allowed: false", 1)).unwrap();
    let second = next();
    // Fix it again: green.
    std::fs::write(&cases, &yaml).unwrap();
    let mut third = next();
    while !third.contains("ok:") {
        third = next();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(second.contains("FAILED: 20 passed, 1 failed"), "{second}");
    assert!(third.contains("ok: 21 passed"), "{third}");
}
