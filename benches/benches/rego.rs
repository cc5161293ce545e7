//! Rego evaluation cost: one policy on one Pod, a 30-policy bundle on one Deployment
//! (through workload expansion), and the per-object input conversion.

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::{Engine, Input};
use palisade_benches::{fixture, pod_of, synthetic_bundle, synthetic_bundle_with};
use std::hint::black_box;

fn rego(c: &mut Criterion) {
    let deployment = fixture("deployment.yaml");
    let pod = pod_of(&deployment);

    let one = Engine::builder().bundle(synthetic_bundle(1)).build().unwrap_or_else(|e| panic!("{e}"));
    let pod_input = Input::from_object(pod.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert!(one.evaluate(&pod_input).allowed);
    c.bench_function("rego/one_policy_one_pod", |b| b.iter(|| one.evaluate(black_box(&pod_input))));

    let thirty = Engine::builder().bundle(synthetic_bundle(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let deploy_input = Input::from_object(deployment.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(thirty.evaluate(&deploy_input).evaluated.len(), 30);
    c.bench_function("rego/30_policies_one_deployment", |b| b.iter(|| thirty.evaluate(black_box(&deploy_input))));

    let one_vm = Engine::builder().bundle(synthetic_bundle_with(1, "vm")).build().unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("rego/one_policy_one_pod_vm", |b| b.iter(|| one_vm.evaluate(black_box(&pod_input))));
    let thirty_vm = Engine::builder().bundle(synthetic_bundle_with(30, "vm")).build().unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("rego/30_policies_one_deployment_vm", |b| b.iter(|| thirty_vm.evaluate(black_box(&deploy_input))));

    c.bench_function("input/from_object_pod", |b| b.iter(|| Input::from_object(black_box(pod.clone()))));
}

criterion_group!(benches, rego);
criterion_main!(benches);
