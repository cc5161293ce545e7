//! Bundles in a real OCI registry (Debian's docker-registry on loopback): push, pull,
//! `-b oci://`, signatures, the digest-checked cache, TLS with a private CA, and the
//! loopback-only rule for plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "../../engine/tests/common/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{root, text};

/// `palisade ARGS` in `dir`, with its own cache.
fn run(dir: &Path, args: &[&str]) -> Output {
    common::command().current_dir(dir).env("XDG_CACHE_HOME", dir.join("cache")).args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// Packs and signs the pci-dss bundle in `dir`: pci-dss-1.1.0.tar.gz(.sig), platform.pub.
fn signed_archive(dir: &Path) {
    let bundle = root().join("policy-bundles/pci-dss");
    ok(&run(dir, &["bundle", "pack", bundle.to_str().unwrap()]));
    ok(&run(dir, &["bundle", "keygen", "-o", "platform"]));
    ok(&run(dir, &["bundle", "sign", "pci-dss-1.1.0.tar.gz", "--key", "platform.key"]));
}

/// The user `palisade` with the password "s3cret-pass" (bcrypt, as `htpasswd -B` writes it).
const HTPASSWD: &str = "palisade:$2a$05$abcdefghijklmnopqrstuuV7fpPozvyqJfnY19y0802WTlXUm6Rjy\n";

/// A docker config file's text giving `user:pass` for `addr`.
fn docker_config(addr: &str, user_pass: &str) -> String {
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, user_pass);
    format!("{{\"auths\": {{\"{addr}\": {{\"auth\": \"{auth}\"}}}}}}")
}

/// A Namespace in the cardholder-data environment and one Pod per (name, image).
fn pods_in_cde(pods: &[(&str, String)]) -> String {
    let namespace =
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n  labels: {pci-dss.palisade.dev/scope: cde}\n";
    let pods: String = pods
        .iter()
        .map(|(name, image)| {
            format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: payments}}\nspec:\n  containers:\n  - {{name: c, image: \"{image}\"}}\n")
        })
        .collect();
    format!("{namespace}{pods}")
}

/// The image-signature findings of a `scan -o json`, by object name.
fn signature_findings(scan: &Output) -> std::collections::BTreeMap<String, String> {
    let report: serde_json::Value = serde_json::from_str(&text(&scan.stdout)).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for r in report["results"].as_array().unwrap() {
        let d = &r["decision"];
        for f in d["violations"].as_array().unwrap().iter().chain(d["errors"].as_array().unwrap()) {
            if f["policy"] == "image-signature" {
                found.insert(r["object"]["name"].as_str().unwrap().to_string(), f["message"].as_str().unwrap().into());
            }
        }
    }
    found
}

fn digest_of(out: &str) -> String {
    let start = out.find("sha256:").expect("a digest");
    out[start..start + 71].to_string()
}

#[test]
fn a_signed_bundle_goes_through_the_registry_and_scans_as_the_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    signed_archive(d);
    let mut registry = Registry::start(None);
    let reference = format!("{}/policies/pci-dss:1.1.0", registry.addr);
    let out = ok(&run(d, &["bundle", "push", "pci-dss-1.1.0.tar.gz", &reference, "--plain-http"]));
    assert!(out.contains("with its signature"), "{out}");
    let digest = digest_of(&out);

    // Scanning from the registry gives what scanning the local archive gives.
    let examples = root().join("examples");
    let e = examples.to_str().unwrap();
    let oci = format!("oci://{reference}");
    let local = run(d, &["scan", "-b", "pci-dss-1.1.0.tar.gz", "--trusted-key", "platform.pub", "-o", "json", e]);
    let remote = run(d, &["scan", "-b", &oci, "--plain-http", "--trusted-key", "platform.pub", "-o", "json", e]);
    assert_eq!(remote.status.code(), Some(1), "{}", text(&remote.stderr));
    let (local, remote): (serde_json::Value, serde_json::Value) =
        (serde_json::from_slice(&local.stdout).unwrap(), serde_json::from_slice(&remote.stdout).unwrap());
    assert_eq!(remote["summary"], local["summary"]);
    assert_eq!(remote["bundles"][0]["digest"], local["bundles"][0]["digest"]);
    assert_eq!(remote["bundles"][0]["origin"], format!("{oci}@{digest}"), "reports name the registry and digest");

    // `bundle pull -o` copies the archive and its signature; the signer is named.
    let out =
        ok(&run(d, &["bundle", "pull", &reference, "--plain-http", "-o", "pulled", "--trusted-key", "platform.pub"]));
    assert!(out.contains(&digest) && out.contains("signed by"), "{out}");
    for file in ["pci-dss-1.1.0.tar.gz", "pci-dss-1.1.0.tar.gz.sig"] {
        let (pushed, pulled) =
            (std::fs::read(d.join(file)).unwrap(), std::fs::read(d.join("pulled").join(file)).unwrap());
        assert!(pushed == pulled, "{file}: pulled bytes differ from the pushed ones");
    }

    // `palisade test` runs the pulled bundle's own cases, signature checked first.
    ok(&run(d, &["bundle", "keygen", "-o", "other"]));
    let o = run(d, &["test", &oci, "--plain-http", "--trusted-key", "platform.pub", "--filter", "no-latest-tag/"]);
    let out = ok(&o);
    assert!(out.contains("pci-dss") && !out.contains(" 0 passed"), "{out}");
    let o = run(d, &["test", &oci, "--plain-http", "--trusted-key", "other.pub", "--filter", "no-latest-tag/"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));

    // Another key is refused before anything compiles.
    let o = run(d, &["scan", "-b", &oci, "--plain-http", "--trusted-key", "other.pub", e]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("signed only by unknown key"), "{}", text(&o.stderr));

    // By digest, the cache answers when the registry is gone; an altered cache entry is not used.
    registry.stop();
    let by_digest = format!("oci://{}/policies/pci-dss@{digest}", registry.addr);
    let o = run(d, &["scan", "-b", &by_digest, "--plain-http", "--trusted-key", "platform.pub", e]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let cached = d.join("cache/palisade/oci").join(digest.replace(':', "/")).join("pci-dss-1.1.0.tar.gz");
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes.push(0);
    std::fs::write(&cached, bytes).unwrap();
    let o = run(d, &["scan", "-b", &by_digest, "--plain-http", "--trusted-key", "platform.pub", e]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("registry {}: pull", &by_digest[6..])), "not used, pulled again: {err}");
}

#[test]
fn an_unsigned_directory_push_is_refused_with_trusted_keys_and_plain_http_is_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = Registry::start(None);
    let reference = format!("{}/policies/basic:1", registry.addr);
    let basic = common::engine_dir().join("tests/bundles/basic");
    let out = ok(&run(d, &["bundle", "push", basic.to_str().unwrap(), &reference, "--plain-http"]));
    assert!(out.contains("unsigned"), "{out}");
    let out = ok(&run(d, &["bundle", "pull", &reference, "--plain-http"]));
    assert!(out.starts_with("basic "), "{out}");
    ok(&run(d, &["bundle", "keygen", "-o", "k"]));
    let o = run(d, &["bundle", "pull", &reference, "--plain-http", "--trusted-key", "k.pub"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unsigned"), "{}", text(&o.stderr));

    // Not a bundle: a manifest without palisade's layer is named as such.
    let o = run(d, &["bundle", "pull", &format!("{}/policies/none:1", registry.addr), "--plain-http"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(&format!("registry {}/policies/none:1: pull", registry.addr)),
        "{}",
        text(&o.stderr)
    );

    let o = run(d, &["bundle", "push", basic.to_str().unwrap(), "registry.example.com/p/basic:1", "--plain-http"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("only for loopback registries"), "{}", text(&o.stderr));
}

#[test]
fn tls_registries_need_their_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = tls::Ca::new();
    ca.issue(&d.join("tls.crt"), &d.join("tls.key"), "registry");
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    let registry = Registry::start(Some((&d.join("tls.crt"), &d.join("tls.key"))));
    let reference = format!("{}/policies/basic:1", registry.addr);
    let basic = common::engine_dir().join("tests/bundles/basic");
    let b = basic.to_str().unwrap();
    let o = run(d, &["bundle", "push", b, &reference]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains(&format!("registry {reference}: push")), "{}", text(&o.stderr));
    ok(&run(d, &["bundle", "push", b, &reference, "--registry-ca", "ca.pem"]));
    let compliant = root().join("examples/compliant");
    let o =
        run(d, &["scan", "-b", &format!("oci://{reference}"), "--registry-ca", "ca.pem", compliant.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

/// A registry as production runs one, TLS with a private CA and htpasswd auth at once:
/// bundles go through it, and image signatures are checked through it by `image
/// verify` and by the pci-dss policy, which trusts the same `--registry-ca`.
#[test]
fn a_tls_registry_with_credentials_serves_bundles_and_signatures() {
    use common::registry::{Access, cosign_key, cosign_sign_with, push_image_with};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = tls::Ca::new();
    ca.issue(&d.join("tls.crt"), &d.join("tls.key"), "registry");
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("htpasswd"), HTPASSWD).unwrap();
    let registry = Registry::start_with(Some((&d.join("tls.crt"), &d.join("tls.key"))), Some(&d.join("htpasswd")));
    let addr = registry.addr.clone();
    std::fs::write(d.join("auth.json"), docker_config(&addr, "palisade:s3cret-pass")).unwrap();
    let palisade = |args: &[&str]| {
        let mut c = common::command();
        c.current_dir(d).env("XDG_CACHE_HOME", d.join("cache")).env("REGISTRY_AUTH_FILE", d.join("auth.json"));
        c.args(args).output().unwrap()
    };
    let reference = format!("{addr}/policies/basic:1");
    let basic = common::engine_dir().join("tests/bundles/basic");
    ok(&palisade(&["bundle", "push", basic.to_str().unwrap(), &reference, "--registry-ca", "ca.pem"]));
    let compliant = root().join("examples/compliant");
    let oci = format!("oci://{reference}");
    let o = palisade(&["scan", "-b", &oci, "--registry-ca", "ca.pem", compliant.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("with basic 1.2.0 ({oci}@sha256:")), "{}", text(&o.stdout));

    let access = Access { ca: Some(ca.pem().into_bytes()), basic: Some(("palisade".into(), "s3cret-pass".into())) };
    let (signer, public) = cosign_key(7);
    std::fs::write(d.join("cosign.pub"), &public).unwrap();
    let signed = push_image_with(&access, &addr, "apps/api", "1.0", b"api");
    cosign_sign_with(&access, &addr, "apps/api", &signed, &signed, &signer);
    let unsigned = push_image_with(&access, &addr, "apps/api", "unsigned", b"api-unsigned");
    let image = format!("{addr}/apps/api:1.0");
    let out = ok(&palisade(&["image", "verify", &image, "--key", "cosign.pub", "--registry-ca", "ca.pem"]));
    assert!(out.starts_with(&format!("signed: {image} ({signed})")), "{out}");

    let keys = serde_json::to_string(&[&public]).unwrap();
    let parameters = format!("image-signature:\n  images: [\"{addr}/apps/*\"]\n  keys: {keys}\n");
    std::fs::write(d.join("parameters.yaml"), parameters).unwrap();
    let pods = pods_in_cde(&[("signed", image.clone()), ("unsigned", format!("{addr}/apps/api:unsigned"))]);
    std::fs::write(d.join("pods.yaml"), pods).unwrap();
    let scan = |ca: &[&str]| {
        let o = palisade(&[&["scan", "-o", "json", "--parameters", "parameters.yaml"], ca, &["pods.yaml"]].concat());
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        signature_findings(&o)
    };
    let found = scan(&["--registry-ca", "ca.pem"]);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["unsigned"], "{found:#?}");
    assert!(found["unsigned"].ends_with(&format!("no cosign signature for {unsigned}")), "{found:#?}");
    // Without the CA the registry cannot be trusted: both are denied, naming it.
    let found = scan(&[]);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["signed", "unsigned"], "{found:#?}");
    assert!(found["signed"].contains(&format!("registry {image}")), "{found:#?}");
}

/// A bundle whose layer was altered in the registry's storage is refused on pull with
/// an error naming the reference; nothing is cached or loaded.
#[test]
fn a_bundle_altered_in_the_registry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    signed_archive(d);
    let registry = Registry::start(None);
    let reference = format!("{}/policies/pci-dss:1.1.0", registry.addr);
    ok(&run(d, &["bundle", "push", "pci-dss-1.1.0.tar.gz", &reference, "--plain-http"]));
    // The bundle layer is the largest blob in the registry's storage.
    let mut blobs = Vec::new();
    let mut stack = vec![registry.dir.path().join("data/docker/registry/v2/blobs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                blobs.push((e.metadata().unwrap().len(), e.path()));
            }
        }
    }
    let (_, layer) = blobs.into_iter().max().unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let o = run(d, &["bundle", "pull", &reference, "--plain-http", "-o", "pulled"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("registry {reference}: pull")) && err.contains("digest"), "{err}");
    assert!(!d.join("pulled/pci-dss-1.1.0.tar.gz").exists());
    let examples = root().join("examples");
    let o = run(d, &["scan", "-b", &format!("oci://{reference}"), "--plain-http", examples.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(&format!("registry {reference}: pull")), "{}", text(&o.stderr));
}

/// A registry that accepts connections and never answers: the image-signature policy
/// gives up after its registry_timeout_ms and denies, naming the registry; the scan
/// does not hang.
#[test]
fn a_registry_that_never_answers_is_a_denial_not_a_hang() {
    use common::registry::cosign_key;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Never accepted: the kernel completes the handshakes into the backlog, then silence.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let keys = serde_json::to_string(&[cosign_key(7).1]).unwrap();
    let parameters = format!("image-signature:\n  images: [\"{addr}/apps/*\"]\n  plain_http: true\n  keys: {keys}\n");
    std::fs::write(d.join("parameters.yaml"), parameters).unwrap();
    let image = format!("{addr}/apps/api:1.0");
    std::fs::write(d.join("pods.yaml"), pods_in_cde(&[("silent", image.clone())])).unwrap();
    let o = run(d, &["scan", "-o", "json", "--parameters", "parameters.yaml", "pods.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let found = signature_findings(&o);
    assert!(found["silent"].contains(&format!("registry {image}")), "{found:#?}");
    drop(silent);
}

#[test]
fn serve_follows_a_tag_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = Registry::start(None);
    let reference = format!("{}/policies/basic:live", registry.addr);
    let bundle = d.join("basic");
    common::copy_dir(&common::engine_dir().join("tests/bundles/basic"), &bundle);
    let b = bundle.to_str().unwrap();
    ok(&run(d, &["bundle", "push", b, &reference, "--plain-http"]));

    let ca = tls::Ca::new();
    let oci = format!("oci://{reference}");
    let cache = d.join("cache");
    let log = d.join("decisions.jsonl");
    let args = ["-b", &oci, "--plain-http", "--bundle-poll", "1s", "--decision-log", log.to_str().unwrap()];
    let serve = e2e::Serve::start_with_env(&ca, d, &args, &[("XDG_CACHE_HOME", &cache)]);
    let addr = serve.addr();
    let client = ca.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let metrics =
        || rt.block_on(async { tls::connect(&client, addr).await.unwrap().request("GET", "/metrics", vec![]).await.1 });
    let wait_for = |what: &str| {
        let start = Instant::now();
        loop {
            let m = metrics();
            if m.contains(what) {
                return m;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{what} never showed in\n{m}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("version=\"1.2.0\"");

    // A new version under the same tag is served without a restart.
    let manifest = bundle.join("bundle.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, toml.replace("version = \"1.2.0\"", "version = \"1.2.1\"")).unwrap();
    ok(&run(d, &["bundle", "push", b, &reference, "--plain-http"]));
    wait_for("version=\"1.2.1\"");
    // Decisions name the bundle's registry reference and the digest it resolved to.
    let review = tls::review("oci-1", "nginx:1.27");
    rt.block_on(async { tls::connect(&client, addr).await.unwrap().review(&review).await });
    // The log's writer thread works behind the answers: wait for the entry.
    let start = Instant::now();
    let entry: serde_json::Value = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"uid\":\"oci-1\"")) {
            break serde_json::from_str(line).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "oci-1 never reached the decision log");
        std::thread::sleep(Duration::from_millis(50));
    };
    let named = entry["bundles"][0].as_str().unwrap();
    assert!(named.starts_with("basic@1.2.1 (sha256:") && named.contains(&format!(" from {oci}@sha256:")), "{named}");

    // One that does not compile is refused; 1.2.1 keeps serving.
    std::fs::write(&manifest, toml.replace("version = \"1.2.0\"", "version = \"1.2.2\"")).unwrap();
    std::fs::write(bundle.join("rules/no_latest_tag.rego"), "package broken\nviolation contains x if {\n").unwrap();
    ok(&run(d, &["bundle", "push", b, &reference, "--plain-http"]));
    let m = wait_for("result=\"failure\"");
    drop(serve);
    assert!(m.contains("version=\"1.2.1\"") && !m.contains("version=\"1.2.2\""), "{m}");
}

#[test]
fn image_signatures_are_checked_against_cosign_keys_and_the_current_digest() {
    use common::registry::{cosign_key, cosign_sign, push_image};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut registry = Registry::start(None);
    let addr = registry.addr.clone();
    let (signer, public) = cosign_key(7);
    let (other, other_public) = cosign_key(9);
    std::fs::write(d.join("cosign.pub"), public).unwrap();
    std::fs::write(d.join("other.pub"), other_public).unwrap();
    let verify = |image: &str, key: &str| run(d, &["image", "verify", image, "--key", key, "--plain-http"]);

    let signed = push_image(&addr, "apps/payments", "1.0", b"v1");
    cosign_sign(&addr, "apps/payments", &signed, &signed, &signer);
    let image = format!("{addr}/apps/payments:1.0");
    let out = ok(&verify(&image, "cosign.pub"));
    assert!(out.starts_with(&format!("signed: {image} ({signed}) by cosign.pub")), "{out}");
    let by_digest = format!("{addr}/apps/payments@{signed}");
    ok(&verify(&by_digest, "cosign.pub"));

    let o = verify(&image, "other.pub");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("no trusted key verifies"), "{}", text(&o.stdout));

    let unsigned = push_image(&addr, "apps/payments", "unsigned", b"v2");
    let o = verify(&format!("{addr}/apps/payments:unsigned"), "cosign.pub");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).starts_with(&format!("unsigned: {addr}/apps/payments:unsigned ({unsigned})")));

    // The tag moves to an unsigned image after signing: no longer signed.
    push_image(&addr, "apps/payments", "1.0", b"v3");
    let o = verify(&image, "cosign.pub");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).starts_with("unsigned:"), "{}", text(&o.stdout));

    // A signature made for another digest, placed under this one, is refused.
    let moved = push_image(&addr, "apps/other", "1", b"v4");
    cosign_sign(&addr, "apps/other", &moved, &signed, &other);
    cosign_sign(&addr, "apps/other", &moved, &signed, &signer);
    let o = verify(&format!("{addr}/apps/other:1"), "cosign.pub");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains(&format!("for {signed}, not this digest")), "{}", text(&o.stdout));

    // A registry that cannot be reached is an error naming it, not a verdict.
    registry.stop();
    let o = verify(&image, "cosign.pub");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains(&format!("registry {image}: resolve the tag")), "{}", text(&o.stderr));
}

#[test]
fn a_rego_policy_asks_the_registry_through_the_builtin() {
    use common::registry::{cosign_key, cosign_sign, push_image};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut registry = Registry::start(None);
    let addr = registry.addr.clone();
    let (signer, public) = cosign_key(7);
    let signed = push_image(&addr, "apps/api", "1.0", b"v1");
    cosign_sign(&addr, "apps/api", &signed, &signed, &signer);
    push_image(&addr, "apps/api", "unsigned", b"v2");

    let bundle = d.join("signed-images");
    std::fs::create_dir_all(bundle.join("rules")).unwrap();
    let keys = serde_json::to_string(&[public]).unwrap();
    std::fs::write(
        bundle.join("bundle.toml"),
        format!(
            "[bundle]\nname = \"signed-images\"\nversion = \"0.1.0\"\nengine = \"^0.1\"\n\n[[policy]]\nid = \"image-signature\"\n\
             title = \"Images are signed\"\nrequirements = [\"6.3.2\"]\nrego = \"rules/signed.rego\"\n\
             match = {{ kinds = [\"Pod\"] }}\nparameters = {{ keys = {keys} }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        bundle.join("rules/signed.rego"),
        "package signed\n\ndeny contains msg if {\n\tsome c in input.review.object.spec.containers\n\
         \tr := palisade.image_signature(c.image, input.parameters.keys, {\"plain_http\": true})\n\tnot r.signed\n\
         \tmsg := sprintf(\"image %s is not signed: %s\", [c.image, r.reason])\n}\n",
    )
    .unwrap();
    let pod = |image: &str| {
        let path = d.join("pod.yaml");
        std::fs::write(&path, format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: n}}\nspec:\n  containers:\n  - name: c\n    image: {image}\n")).unwrap();
        run(d, &["scan", "-b", bundle.to_str().unwrap(), path.to_str().unwrap()])
    };
    let o = pod(&format!("{addr}/apps/api:1.0"));
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    // In one process an answer is reused: the engine keeps admitting the signed image
    // while the registry is away (within the builtin's TTL).
    let engine = palisade::Engine::builder().bundle(palisade::Bundle::from_dir(&bundle).unwrap()).build().unwrap();
    let object = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c", "image": format!("{addr}/apps/api:1.0")}]}});
    let input = palisade::Input::from_object(object).unwrap();
    assert!(engine.evaluate(&input).allowed);
    registry.stop();
    let again = engine.evaluate(&input);
    assert!(again.allowed && again.errors.is_empty(), "{again:?}");
    registry.restart();
    let o = pod(&format!("{addr}/apps/api:unsigned"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("is not signed: no cosign signature"), "{}", text(&o.stdout));
    // A registry that does not answer is a policy error, which fails closed.
    registry.stop();
    let o = pod(&format!("{addr}/apps/api:1.0"));
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("registry {addr}/apps/api:1.0")), "{}", text(&o.stdout));
}

#[test]
fn registry_credentials_come_from_the_docker_config_and_a_refusal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let htpasswd = d.join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let registry = Registry::start_with(None, Some(&htpasswd));
    let reference = format!("{}/policies/basic:1", registry.addr);
    let basic = common::engine_dir().join("tests/bundles/basic");
    let b = basic.to_str().unwrap();
    let push = |auth_file: &str| {
        common::command()
            .current_dir(d)
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("REGISTRY_AUTH_FILE", d.join(auth_file))
            .args(["bundle", "push", b, &reference, "--plain-http"])
            .output()
            .unwrap()
    };
    let config = |user_pass: &str| docker_config(&registry.addr, user_pass);
    std::fs::write(d.join("wrong.json"), config("palisade:wrong")).unwrap();
    std::fs::write(d.join("right.json"), config("palisade:s3cret-pass")).unwrap();
    for file in ["none.json", "wrong.json"] {
        let o = push(file);
        assert_eq!(o.status.code(), Some(2), "{file}");
        let err = text(&o.stderr);
        assert!(err.contains(&format!("registry {reference}: push")) && err.contains("credentials"), "{file}: {err}");
    }
    let o = push("right.json");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

/// The pci-dss bundle's `image-signature` policy, through `scan`: signed images pass;
/// unsigned ones, ones signed only by another key and ones whose tag moved since
/// signing are denied; images no glob names are not looked up; a registry that is
/// down denies (failure mode fail), naming the registry.
#[test]
fn the_pci_dss_image_signature_policy_denies_unsigned_untrusted_and_moved_images() {
    use common::registry::{cosign_key, cosign_sign, push_image};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut registry = Registry::start(None);
    let addr = registry.addr.clone();
    let (signer, public) = cosign_key(7);
    let (other, _) = cosign_key(9);
    let signed = push_image(&addr, "apps/api", "1.0", b"api");
    cosign_sign(&addr, "apps/api", &signed, &signed, &signer);
    let unsigned = push_image(&addr, "apps/api", "unsigned", b"api-unsigned");
    let foreign = push_image(&addr, "apps/batch", "1.0", b"batch");
    cosign_sign(&addr, "apps/batch", &foreign, &foreign, &other);
    let web = push_image(&addr, "apps/web", "1.0", b"web");
    cosign_sign(&addr, "apps/web", &web, &web, &signer);
    let moved = push_image(&addr, "apps/web", "1.0", b"web-rebuilt");

    let parameters = d.join("parameters.yaml");
    let keys = serde_json::to_string(&[&public]).unwrap();
    std::fs::write(
        &parameters,
        format!("image-signature:\n  images: [\"{addr}/apps/*\"]\n  plain_http: true\n  keys: {keys}\n"),
    )
    .unwrap();
    let pods = pods_in_cde(&[
        ("signed", format!("{addr}/apps/api:1.0")),
        ("by-digest", format!("{addr}/apps/api@{signed}")),
        ("unsigned", format!("{addr}/apps/api:unsigned")),
        ("other-key", format!("{addr}/apps/batch:1.0")),
        ("moved", format!("{addr}/apps/web:1.0")),
        ("not-named", "busybox:1.36".to_string()),
    ]);
    std::fs::write(d.join("pods.yaml"), pods).unwrap();
    let scan = || {
        let o = run(d, &["scan", "-o", "json", "--parameters", "parameters.yaml", "pods.yaml"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        signature_findings(&o)
    };
    let found = scan();
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(names, ["moved", "other-key", "unsigned"], "{found:#?}");
    assert!(found["unsigned"].ends_with(&format!("not signed by a trusted key: no cosign signature for {unsigned}")));
    assert!(found["other-key"].contains("a signature that no trusted key verifies"), "{}", found["other-key"]);
    assert!(found["moved"].ends_with(&format!("no cosign signature for {moved}")), "{}", found["moved"]);

    // The registry is down: every image it must answer for is denied, naming it.
    registry.stop();
    let found = scan();
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(names, ["by-digest", "moved", "other-key", "signed", "unsigned"], "{found:#?}");
    assert!(found["signed"].contains(&format!("registry {addr}/apps/api:1.0: resolve the tag")), "{}", found["signed"]);
    assert!(found["by-digest"].contains(&format!("registry {addr}/apps/api@{signed}")), "{}", found["by-digest"]);
}

/// A WebAssembly plugin asks the same check through `host.image-signature`
/// (plugins/signed-images): only when its policy is granted `registry`.
#[test]
fn a_plugin_granted_registry_asks_the_host_for_image_signatures() {
    use common::registry::{cosign_key, cosign_sign, push_image};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = Registry::start(None);
    let addr = registry.addr.clone();
    let (signer, public) = cosign_key(7);
    let signed = push_image(&addr, "apps/api", "1.0", b"plugin-signed");
    cosign_sign(&addr, "apps/api", &signed, &signed, &signer);
    let unsigned = push_image(&addr, "apps/api", "unsigned", b"plugin-unsigned");

    let bundle = d.join("signed-plugin");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(root().join("plugins/dist/signed_images.wasm"), bundle.join("signed_images.wasm")).unwrap();
    // JSON arrays of strings are TOML arrays too.
    let keys = serde_json::to_string(&[&public]).unwrap();
    let settings = format!("{{ prefixes = [\"{addr}/\"], keys = {keys}, plain_http = true }}");
    let manifest = |grants: &str| {
        format!(
            "[bundle]\nname = \"signed-plugin\"\nversion = \"0.1.0\"\nengine = \"^0.1\"\n\n[[policy]]\nid = \"signed-images\"\n\
             title = \"Images are signed\"\nrequirements = [\"6.3.2\"]\nwasm = \"signed_images.wasm\"\n\
             sha256 = \"{}\"\ntimeout_ms = 3000\ngrants = [{grants}]\nmatch = {{ kinds = [\"Pod\"] }}\nparameters = {settings}\n",
            "0".repeat(64)
        )
    };
    let pods = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: signed, namespace: n}}\nspec: {{containers: [{{name: c, image: \"{addr}/apps/api:1.0\"}}]}}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: unsigned, namespace: n}}\nspec: {{containers: [{{name: c, image: \"{addr}/apps/api:unsigned\"}}]}}\n"
    );
    std::fs::write(d.join("pods.yaml"), pods).unwrap();
    let scan = |grants: &str| {
        std::fs::write(bundle.join("bundle.toml"), manifest(grants)).unwrap();
        ok(&run(d, &["bundle", "pin", bundle.to_str().unwrap()]));
        let o = run(d, &["scan", "-o", "json", "-b", bundle.to_str().unwrap(), "pods.yaml"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        let report: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
        let by_name = |name: &str| {
            let r = report["results"].as_array().unwrap().iter().find(|r| r["object"]["name"] == name).unwrap();
            let d = &r["decision"];
            let all = d["violations"].as_array().unwrap().iter().chain(d["errors"].as_array().unwrap());
            all.map(|f| f["message"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        (by_name("signed"), by_name("unsigned"))
    };
    let (signed_found, unsigned_found) = scan("\"registry\"");
    assert!(signed_found.is_empty(), "{signed_found:?}");
    assert_eq!(unsigned_found.len(), 1, "{unsigned_found:?}");
    assert!(unsigned_found[0].ends_with(&format!("not signed by a trusted key: no cosign signature for {unsigned}")));
    // Without the grant the host refuses, and the policy fails closed for every Pod.
    let (signed_found, unsigned_found) = scan("");
    for found in [signed_found, unsigned_found] {
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("needs the policy to be granted `registry`"), "{found:?}");
    }
}

/// Real cosign (sigstore's signer, built from the Go module proxy): what `cosign sign
/// --key` writes verifies in palisade (`image verify` and the pci-dss policy), and what
/// the tests' own signer writes (`common::registry::cosign_sign`) verifies in cosign.
#[test]
fn signatures_agree_with_real_cosign_both_ways() {
    use common::registry::{cosign, cosign_key, cosign_sign, push_image};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = Registry::start(None);
    let addr = registry.addr.clone();
    let o = cosign().current_dir(d).args(["generate-key-pair"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let by_cosign = push_image(&addr, "apps/real", "1.0", b"signed by cosign");
    let signed = format!("{addr}/apps/real@{by_cosign}");
    let sign =
        ["sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry"];
    let o = cosign().current_dir(d).args(sign).arg(&signed).output().unwrap();
    assert!(o.status.success(), "cosign sign: {}", text(&o.stderr));
    let out =
        ok(&run(d, &["image", "verify", &format!("{addr}/apps/real:1.0"), "--key", "cosign.pub", "--plain-http"]));
    assert!(out.starts_with(&format!("signed: {addr}/apps/real:1.0 ({by_cosign}) by cosign.pub")), "{out}");
    let (_, other) = cosign_key(9);
    std::fs::write(d.join("other.pub"), other).unwrap();
    let o = run(d, &["image", "verify", &signed, "--key", "other.pub", "--plain-http"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));

    // The other way: the tests' signer writes what cosign verifies.
    let (signer, public) = cosign_key(7);
    std::fs::write(d.join("test.pub"), public).unwrap();
    let by_test = push_image(&addr, "apps/real", "2.0", b"signed by the test");
    cosign_sign(&addr, "apps/real", &by_test, &by_test, &signer);
    let verify =
        ["verify", "--key", "test.pub", "--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry"];
    let o = cosign().current_dir(d).args(verify).arg(format!("{addr}/apps/real@{by_test}")).output().unwrap();
    assert!(o.status.success(), "cosign verify: {}{}", text(&o.stdout), text(&o.stderr));
    let o = cosign().current_dir(d).args(verify).arg(format!("{addr}/apps/real@{by_cosign}")).output().unwrap();
    assert!(!o.status.success(), "cosign accepted a signature by another key");
}
