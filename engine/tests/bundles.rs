//! Versioned bundles: dependency resolution from a bundle path, side-by-side
//! versions, reproducible packing, signatures, and every way a packed bundle can be
//! tampered with, each refused with its own error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{rewrite_archive as rewrite, write_bundle};
use palisade::bundle::LoadOptions;
use palisade::bundle::pack::{self, Limits};
use palisade::bundle::resolve::{BundleSource, Root};
use palisade::bundle::sign::{self, SecretKey, TrustedKey};
use palisade::{Bundle, Engine, Input};
use semver::VersionReq;

fn k8s_lib(version: &str) -> String {
    format!(
        "package lib.k8s_lib\n\nlib_version := \"{version}\"\n\nimages(pod) := [c.image | some c in pod.spec.containers]\n"
    )
}

const APP_POLICY: &str = "package app\n\nimport data.lib.k8s_lib\n\ndeny contains sprintf(\"%s (k8s-lib %s)\", [img, k8s_lib.lib_version]) if {\n\tsome img in k8s_lib.images(input.review.object)\n\tendswith(img, \":latest\")\n}\n";

fn pod() -> Input {
    Input::from_object(
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}),
    )
    .unwrap()
}

fn resolve(path: &Path, roots: Vec<Root>) -> palisade::Result<Vec<Bundle>> {
    BundleSource::scan(&[path.to_path_buf()], LoadOptions::default())?.resolve(roots)
}

#[test]
fn resolution_picks_the_newest_satisfying_version_and_shares_libraries() {
    let dir = tempfile::tempdir().unwrap();
    for v in ["1.4.0", "2.0.0", "2.1.0", "3.0.0"] {
        write_bundle(dir.path(), "k8s-lib", v, &[], Some(&k8s_lib(v)), None);
    }
    write_bundle(dir.path(), "app", "1.0.0", &[("k8s-lib", "^2")], None, Some(APP_POLICY));
    let bundles = resolve(dir.path(), vec![Root::Named("app".into(), VersionReq::STAR)]).unwrap();
    let names: Vec<String> = bundles.iter().map(|b| format!("{} {}", b.name(), b.version())).collect();
    assert_eq!(names, ["k8s-lib 2.1.0", "app 1.0.0"]);
    let mut builder = Engine::builder();
    for b in bundles {
        builder = builder.bundle(b);
    }
    let d = builder.build().unwrap().evaluate(&pod());
    assert_eq!(d.violations[0].message, "nginx:latest (k8s-lib 2.1.0)");
}

#[test]
fn a_dependency_library_outside_its_package_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), "k8s-lib", "2.0.0", &[], Some("package lib.helpers\n\nx := 1\n"), None);
    write_bundle(dir.path(), "app", "1.0.0", &[("k8s-lib", "^2")], None, Some(APP_POLICY));
    let err = resolve(dir.path(), vec![Root::Named("app".into(), VersionReq::STAR)]).unwrap_err().to_string();
    assert!(
        err.contains("library module lib/lib.rego declares package \"lib.helpers\": a bundle used as a dependency keeps its library modules in package lib.k8s_lib"),
        "{err}"
    );
}

#[test]
fn conflicts_missing_dependencies_and_cycles_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    for v in ["1.4.0", "2.1.0"] {
        write_bundle(dir.path(), "k8s-lib", v, &[], Some(&k8s_lib(v)), None);
    }
    write_bundle(dir.path(), "pci-dss", "1.0.0", &[("k8s-lib", "^2")], None, None);
    write_bundle(dir.path(), "acme", "0.3.1", &[("k8s-lib", "^1")], None, None);
    let e = resolve(
        dir.path(),
        vec![Root::Named("pci-dss".into(), VersionReq::STAR), Root::Named("acme".into(), VersionReq::STAR)],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "no version of k8s-lib satisfies every requirement: acme 0.3.1 needs k8s-lib ^1; pci-dss 1.0.0 needs k8s-lib ^2; available: 1.4.0, 2.1.0"
    );

    let e = resolve(dir.path(), vec![Root::Named("nothing".into(), VersionReq::parse("^1").unwrap())])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "the command line needs nothing ^1; no bundle nothing on the bundle path");

    let cyc = tempfile::tempdir().unwrap();
    write_bundle(cyc.path(), "a", "1.0.0", &[("b", "^2")], None, None);
    write_bundle(cyc.path(), "b", "2.0.0", &[("a", "^1")], None, None);
    let e = resolve(cyc.path(), vec![Root::Named("a".into(), VersionReq::STAR)]).unwrap_err().to_string();
    assert!(
        e == "dependency cycle: a 1.0.0 -> b 2.0.0 -> a 1.0.0"
            || e == "dependency cycle: b 2.0.0 -> a 1.0.0 -> b 2.0.0",
        "{e}"
    );
}

fn packed(dir: &Path) -> (PathBuf, Bundle) {
    let src = write_bundle(dir, "app", "1.0.0", &[], None, Some("package app\n\ndeny contains \"no\" if false\n"));
    let b = Bundle::from_dir(&src).unwrap();
    let path = dir.join(pack::file_name(&b));
    std::fs::write(&path, pack::pack(&b).unwrap()).unwrap();
    (path, b)
}

#[test]
fn packing_is_reproducible_and_keeps_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (path, b) = packed(dir.path());
    assert_eq!(std::fs::read(&path).unwrap(), pack::pack(&b).unwrap());
    let loaded = Bundle::from_archive(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.digest(), b.digest());
    assert!(loaded.is_packed());
}

/// Rewrites an archive: every entry passes through `edit` (path, bytes) -> entries.
fn load_err(path: &Path, options: &LoadOptions) -> String {
    Bundle::from_archive(path, options).unwrap_err().to_string()
}

#[test]
fn tampering_is_refused_with_the_specific_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = packed(dir.path());
    let opts = LoadOptions::default();
    let t = dir.path().join("t.tar.gz");

    rewrite(&path, &t, |p, d| {
        vec![(p.into(), if p == "p.rego" { b"package app\ndeny contains \"x\" if true\n".to_vec() } else { d })]
    });
    assert!(load_err(&t, &opts).ends_with("file p.rego was altered (its sha256 differs from the manifest)"));

    rewrite(&path, &t, |p, d| if p == "p.rego" { vec![] } else { vec![(p.into(), d)] });
    assert!(load_err(&t, &opts).ends_with("file p.rego listed in the manifest was removed"));

    rewrite(&path, &t, |p, d| {
        let mut v = vec![(p.to_string(), d)];
        if p == "p.rego" {
            v.push(("extra.rego".into(), b"package extra\n".to_vec()));
        }
        v
    });
    assert!(load_err(&t, &opts).ends_with("file extra.rego was added (it is not in the manifest)"));

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_err(&t, &opts).contains("truncated or corrupt archive"), "{}", load_err(&t, &opts));
}

fn raw_entry(
    builder: &mut tar::Builder<impl Write>,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    link: Option<&str>,
) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    builder.append(&h, data).unwrap();
}

fn archive_with(f: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best()));
    f(&mut b);
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn traversal_links_devices_and_bombs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("evil.tar.gz");
    let opts = LoadOptions::default();
    std::fs::write(&t, archive_with(|b| raw_entry(b, b"../../etc/cron.d/x", tar::EntryType::Regular, b"x", None)))
        .unwrap();
    assert!(
        load_err(&t, &opts).ends_with("refusing entry ../../etc/cron.d/x: absolute paths and `..` are not allowed")
    );
    std::fs::write(&t, archive_with(|b| raw_entry(b, b"/etc/passwd", tar::EntryType::Regular, b"x", None))).unwrap();
    assert!(load_err(&t, &opts).contains("refusing entry /etc/passwd"));
    std::fs::write(
        &t,
        archive_with(|b| raw_entry(b, b"bundle.toml", tar::EntryType::Symlink, b"", Some("/etc/passwd"))),
    )
    .unwrap();
    assert!(load_err(&t, &opts).ends_with("refusing link entry bundle.toml: bundles hold regular files only"));
    std::fs::write(&t, archive_with(|b| raw_entry(b, b"dev", tar::EntryType::Char, b"", None))).unwrap();
    assert!(load_err(&t, &opts).contains("refusing special entry dev"));

    // 8 MiB of zeros compress to a few KiB; the loader stops at the limit.
    let zeros = vec![0u8; 8 * 1024 * 1024];
    std::fs::write(&t, archive_with(|b| raw_entry(b, b"bomb.bin", tar::EntryType::Regular, &zeros, None))).unwrap();
    assert!(std::fs::metadata(&t).unwrap().len() < 64 * 1024);
    let small = LoadOptions {
        limits: Limits { max_total_bytes: 4 * 1024 * 1024, ..Limits::default() },
        ..LoadOptions::default()
    };
    assert!(
        load_err(&t, &small).ends_with("more than 4194304 bytes uncompressed (a decompression bomb?)"),
        "{}",
        load_err(&t, &small)
    );
    let per_file =
        LoadOptions { limits: Limits { max_file_bytes: 1024 * 1024, ..Limits::default() }, ..LoadOptions::default() };
    assert!(load_err(&t, &per_file).contains("bomb.bin is 8388608 bytes, over the 1048576 byte limit per file"));
}

#[test]
fn signatures_unsigned_wrong_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = packed(dir.path());
    let mut keys = Vec::new();
    for name in ["old", "new", "stranger"] {
        let (private, public, _) = sign::keygen().unwrap();
        std::fs::write(dir.path().join(format!("{name}.key")), private).unwrap();
        std::fs::write(dir.path().join(format!("{name}.pub")), public).unwrap();
        keys.push((
            SecretKey::from_pem_file(&dir.path().join(format!("{name}.key"))).unwrap(),
            TrustedKey::from_pem_file(&dir.path().join(format!("{name}.pub"))).unwrap(),
        ));
    }
    let trust_new = LoadOptions { trusted_keys: vec![keys[1].1.clone()], ..LoadOptions::default() };
    assert!(load_err(&path, &trust_new).contains("unsigned: no signature file"));

    let bytes = std::fs::read(&path).unwrap();
    let manifest = pack::unpack(&path, &bytes, Limits::default()).unwrap().manifest_bytes;
    sign::sign_archive(&path, &manifest, &keys[2].0).unwrap();
    assert!(load_err(&path, &trust_new).contains(&format!("signed only by unknown key(s) {}", keys[2].0.id)));

    // Key rotation: old and new both sign; trusting either one is enough.
    sign::sign_archive(&path, &manifest, &keys[0].0).unwrap();
    sign::sign_archive(&path, &manifest, &keys[1].0).unwrap();
    assert_eq!(Bundle::from_archive(&path, &trust_new).unwrap().signer(), Some(keys[1].1.id.as_str()));
    let trust_old = LoadOptions { trusted_keys: vec![keys[0].1.clone()], ..LoadOptions::default() };
    assert_eq!(Bundle::from_archive(&path, &trust_old).unwrap().signer(), Some(keys[0].1.id.as_str()));

    // A signature over a different manifest does not verify.
    let other = dir.path().join("sig-of-other.json");
    let mut file = sign::read_signatures(&sign::sig_path(&path)).unwrap().unwrap();
    let forged = keys[1].0.sign(b"another manifest");
    file.signatures = vec![forged];
    std::fs::write(&other, serde_json::to_string(&file).unwrap()).unwrap();
    std::fs::copy(&other, sign::sig_path(&path)).unwrap();
    assert!(load_err(&path, &trust_new).contains("does not verify: the bundle was altered after it was signed"));

    // Directories cannot be verified.
    let e = Bundle::load(dir.path().join("app-1.0.0"), &trust_new).unwrap_err().to_string();
    assert!(e.contains("a bundle directory carries no signature"), "{e}");
}

#[test]
fn a_policy_with_enabled_by_runs_only_once_its_parameter_is_set() {
    let manifest = "[bundle]\nname = \"b\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n\n[[policy]]\nid = \"latest\"\n\
        title = \"T\"\nrego = \"p.rego\"\nenabled_by = \"images\"\nmatch = { kinds = [\"Pod\"] }\nparameters = { images = [] }\n";
    let rego = "package p\n\ndeny contains c.image if {\n\tsome c in input.review.object.spec.containers\n\
        \tsome pattern in input.parameters.images\n\tglob.match(pattern, [], c.image)\n}\n";
    let files = |m: &str| [("bundle.toml", m), ("p.rego", rego)].map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()));
    let bundle = Bundle::from_files("b", files(manifest).into()).unwrap();
    let off = Engine::builder().bundle(bundle.clone()).build().unwrap();
    let d = off.evaluate(&pod());
    assert!(d.allowed && d.evaluated.is_empty(), "{d:?}");
    let mut images = serde_json::Map::new();
    images.insert("images".into(), serde_json::json!(["nginx:*"]));
    let on = Engine::builder().bundle(bundle).parameters("latest", images).build().unwrap();
    let d = on.evaluate(&pod());
    assert_eq!(d.violations.len(), 1, "{d:?}");
    assert_eq!(d.violations[0].message, "nginx:latest");
    // It must name one of the policy's parameters.
    let e =
        Bundle::from_files("b", files(&manifest.replace("enabled_by = \"images\"", "enabled_by = \"image\"")).into())
            .unwrap_err();
    assert!(
        e.to_string().ends_with("`enabled_by`: names \"image\", which is not one of the policy's parameters"),
        "{e}"
    );
}
