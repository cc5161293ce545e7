//! CEL: a typical single-validation ValidatingAdmissionPolicy (the documentation's
//! replica limit) on the ~5 KB Deployment fixture, through `Engine::evaluate` (match,
//! conversion of the object to CEL, evaluation, decision); and pss-host-namespaces,
//! which has three implementations, by each of them on the fixture's Pod.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::bundle::BackendKind;
use palisade::{Bundle, Engine, Input};
use palisade_benches::{fixture, pod_of, root, subset};
use serde_json::json;

fn vap(c: &mut Criterion) {
    let bundle = palisade::cel::source::load(&root().join("benches/fixtures/vap-replicas.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::builder().bundle(bundle).build().unwrap_or_else(|e| panic!("{e}"));
    let mut deployment = fixture("deployment.yaml");
    let allowed = Input::from_object(deployment.clone()).unwrap_or_else(|e| panic!("{e}"));
    deployment["spec"]["replicas"] = json!(9);
    let denied = Input::from_object(deployment).unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.evaluate(&allowed).allowed && !engine.evaluate(&denied).allowed);
    let mut group = c.benchmark_group("cel");
    group.bench_function("vap_single_validation_deployment_allowed", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&allowed))))
    });
    group.bench_function("vap_single_validation_deployment_denied", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&denied))))
    });
    group.finish();
}

fn twins(c: &mut Criterion) {
    let full = Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap_or_else(|e| panic!("{e}"));
    let bundle = subset(&full, |id| id == "pss-host-namespaces");
    let mut pod = pod_of(&fixture("deployment.yaml"));
    pod["spec"]["hostNetwork"] = json!(true);
    let input = Input::from_object(pod).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("cel/pss_host_namespaces");
    let mut seen = None;
    for (label, kind) in [("rego_vm", BackendKind::Rego), ("wasm", BackendKind::Wasm), ("cel", BackendKind::Cel)] {
        let engine = Engine::builder().bundle(bundle.clone()).backend(kind).build().unwrap_or_else(|e| panic!("{e}"));
        let found: Vec<String> = engine.evaluate(&input).violations.iter().map(|v| v.message.clone()).collect();
        assert_eq!(seen.get_or_insert_with(|| found.clone()), &found, "{label} disagrees");
        group.bench_function(label, |b| b.iter(|| black_box(engine.evaluate(black_box(&input)))));
    }
    group.finish();
}

criterion_group!(benches, vap, twins);
criterion_main!(benches);
