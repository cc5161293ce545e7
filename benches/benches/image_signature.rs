//! The pci-dss `image-signature` policy against a real registry on loopback (Debian's
//! docker-registry, as the tests start it: `cli/tests/common/registry.rs`): what the
//! policy adds to a Pod's admission when the registry's answer is cached (the same Pod
//! with the policy off and on), and what a first lookup costs (tag resolution, the
//! signature manifest, the payload, the ECDSA check; `verify_image` has no cache).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::oci::RegistryOptions;
use palisade::oci::signature::{CosignKey, verify_image};
use palisade::{Bundle, Engine, Input};
use palisade_benches::{fixture, pod_of};
use serde_json::{Value, json};

#[allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
#[path = "../../cli/tests/common/registry.rs"]
mod registry;

/// The repository root (what the registry helper calls `super::root`).
fn root() -> PathBuf {
    palisade_benches::root()
}

fn parameters(engine: palisade::EngineBuilder, policy: &str, params: Value) -> palisade::EngineBuilder {
    let Value::Object(map) = params else { panic!("parameters must be an object") };
    engine.parameters(policy, map)
}

fn image_signature(c: &mut Criterion) {
    let registry = registry::Registry::start(None);
    let addr = registry.addr.clone();
    let (signer, public) = registry::cosign_key(7);
    let digest = registry::push_image(&addr, "payments/api", "1.0", b"api");
    registry::cosign_sign(&addr, "payments/api", &digest, &digest, &signer);

    let mut pod = pod_of(&fixture("deployment.yaml"));
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            c["image"] = format!("{addr}/payments/api@{digest}").into();
        }
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": "cde", "pci-dss.palisade.dev/security-level": "high"}}});
    let input = Input::from_object(pod).unwrap_or_else(|e| panic!("{e}")).with_namespace_object(namespace);
    let bundle = Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap_or_else(|e| panic!("{e}"));
    let base = || {
        parameters(
            Engine::builder().bundle(bundle.clone()),
            "trusted-registries",
            json!({"allowed_registries": [format!("{addr}/")]}),
        )
    };
    let off = base().build().unwrap_or_else(|e| panic!("{e}"));
    let on = parameters(
        base(),
        "image-signature",
        json!({"images": [format!("{addr}/*")], "keys": [public.clone()], "plain_http": true}),
    )
    .build()
    .unwrap_or_else(|e| panic!("{e}"));
    let d = on.evaluate(&input);
    assert!(d.evaluated.iter().any(|e| e.policy == "image-signature"), "the policy did not run");
    assert!(d.errors.is_empty() && !d.violations.iter().any(|v| v.policy == "image-signature"), "{d:?}");

    c.bench_function("image_signature/pod_policy_off", |b| b.iter(|| off.evaluate(black_box(&input))));
    let unmatched = parameters(
        base(),
        "image-signature",
        json!({"images": ["nothing/*"], "keys": [public.clone()], "plain_http": true}),
    )
    .build()
    .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("image_signature/pod_policy_on_unmatched", |b| b.iter(|| unmatched.evaluate(black_box(&input))));
    c.bench_function("image_signature/pod_policy_on_cached", |b| b.iter(|| on.evaluate(black_box(&input))));
    let keys = [CosignKey::from_pem(&public, "cosign.pub").unwrap_or_else(|e| panic!("{e}"))];
    let options = RegistryOptions::new(true, None);
    let image = format!("{addr}/payments/api:1.0");
    let mut group = c.benchmark_group("image_signature");
    group.sample_size(20);
    group.bench_function("first_lookup", |b| {
        b.iter(|| verify_image(black_box(&image), &keys, &options).unwrap_or_else(|e| panic!("{e}")))
    });
    group.finish();
    drop(registry);
}

criterion_group!(benches, image_signature);
criterion_main!(benches);
