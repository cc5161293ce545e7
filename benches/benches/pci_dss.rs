//! The full pci-dss bundle on a typical Deployment (through workload expansion), its
//! Pod, a CronJob with the same template and a 40-container Pod: as the bundle sets it
//! (Rego on regorus's VM, 25 policies on the pci-workloads plugin), with those on their Rego
//! instead, and all Rego forced onto the interpreter; loading and compiling the bundle,
//! cold (plugins compiled by Cranelift) and warm (precompiled plugins from the cache);
//! then the cost of each policy's Rego alone on the Pod with either executor.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::bundle::BackendKind;
use palisade::wasm::WasmOptions;
use palisade::{Bundle, Engine, Input, RegoExecution};
use palisade_benches::{cronjob_of, fixture, pod_of, root, subset, wide_pod};

fn pci_dss(c: &mut Criterion) {
    let bundle = Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::builder().bundle(bundle.clone()).build().unwrap_or_else(|e| panic!("{e}"));
    let deployment = fixture("deployment.yaml");
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": "cde", "pci-dss.palisade.dev/security-level": "high"}}});
    let deploy = Input::from_object(deployment.clone())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_namespace_object(namespace.clone());
    let pod = Input::from_object(pod_of(&deployment))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_namespace_object(namespace.clone());
    let d = engine.evaluate(&deploy);
    eprintln!(
        "deployment: {} policies evaluated, allowed {}, {:?}",
        d.evaluated.len(),
        d.allowed,
        d.violations.iter().map(|v| &v.policy).collect::<Vec<_>>()
    );
    c.bench_function("pci_dss/full_bundle_deployment", |b| b.iter(|| engine.evaluate(black_box(&deploy))));
    c.bench_function("pci_dss/full_bundle_pod", |b| b.iter(|| engine.evaluate(black_box(&pod))));
    let ns = namespace;
    let cronjob =
        Input::from_object(cronjob_of(&deployment)).unwrap_or_else(|e| panic!("{e}")).with_namespace_object(ns.clone());
    assert!(!engine.evaluate(&cronjob).evaluated.is_empty());
    c.bench_function("pci_dss/full_bundle_cronjob", |b| b.iter(|| engine.evaluate(black_box(&cronjob))));
    let wide = Input::from_object(wide_pod(&pod_of(&deployment), 40))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_namespace_object(ns);
    c.bench_function("pci_dss/full_bundle_pod_40_containers", |b| b.iter(|| engine.evaluate(black_box(&wide))));
    opa_peer_set(c, &bundle, &pod);
    start(c, &bundle, &pod);
    // The same with the 19 pss-* policies on their Rego implementation (VM).
    let rego_pss =
        Engine::builder().bundle(bundle.clone()).backend(BackendKind::Rego).build().unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("pci_dss/full_bundle_deployment_rego_pss", |b| b.iter(|| rego_pss.evaluate(black_box(&deploy))));
    c.bench_function("pci_dss/full_bundle_pod_rego_pss", |b| b.iter(|| rego_pss.evaluate(black_box(&pod))));
    let interpreter = Engine::builder()
        .bundle(bundle.clone())
        .backend(BackendKind::Rego)
        .rego_execution(RegoExecution::Interpreter)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("pci_dss/full_bundle_deployment_interpreter", |b| {
        b.iter(|| interpreter.evaluate(black_box(&deploy)))
    });

    for (label, execution) in [("vm", RegoExecution::Vm), ("interpreter", RegoExecution::Interpreter)] {
        let mut group = c.benchmark_group(format!("pci_dss/policy_on_pod_{label}"));
        group.sample_size(20);
        for spec in bundle.policies() {
            let Ok(single) = Engine::builder()
                .bundle(subset(&bundle, |id| id == spec.id))
                .backend(BackendKind::Rego)
                .rego_execution(execution)
                .build()
            else {
                continue;
            };
            if single.evaluate(&pod).evaluated.is_empty() {
                continue;
            }
            group.bench_function(spec.id.as_str(), |b| b.iter(|| single.evaluate(black_box(&pod))));
        }
        group.finish();
    }
}

/// What `benches/compare.sh` gives OPA: every Rego policy that matches a Pod and needs
/// no inventory, all on Rego (VM), on the Pod.
fn opa_peer_set(c: &mut Criterion, bundle: &Bundle, pod: &Input) {
    let rego =
        Engine::builder().bundle(bundle.clone()).backend(BackendKind::Rego).build().unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = rego
        .policies()
        .iter()
        .filter(|p| !p.is_referential() && p.spec().rego.is_some() && p.spec().match_spec.matches_pods())
        .map(|p| p.spec().id.clone())
        .collect();
    let peer = Engine::builder()
        .bundle(subset(bundle, |id| ids.iter().any(|i| i == id)))
        .backend(BackendKind::Rego)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let d = peer.evaluate(pod);
    eprintln!("opa peer set: {} policies evaluated, {} violations", d.evaluated.len(), d.violations.len());
    c.bench_function("pci_dss/opa_peer_set_pod", |b| b.iter(|| peer.evaluate(black_box(pod))));
}

/// Loading the bundle from disk and compiling it into an engine, then the first
/// evaluation: cold (every plugin compiled by Cranelift) and warm (the compile cache).
fn start(c: &mut Criterion, bundle: &Bundle, pod: &Input) {
    let dir = root().join("policy-bundles/pci-dss");
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let warm = WasmOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() };
    let start = |options: WasmOptions| {
        let bundle = Bundle::from_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::builder().bundle(bundle).wasm_options(options).build().unwrap_or_else(|e| panic!("{e}"));
        engine.evaluate(pod)
    };
    start(warm.clone()); // fill the cache
    let mut group = c.benchmark_group("pci_dss/start_to_first_evaluation");
    group.sample_size(10);
    group.bench_function("warm_cache", |b| b.iter(|| start(warm.clone())));
    group.bench_function("cold", |b| b.iter(|| start(WasmOptions::default())));
    group.finish();
    let mut group = c.benchmark_group("pci_dss/compile");
    group.sample_size(10);
    group.bench_function("load_bundle", |b| b.iter(|| Bundle::from_dir(black_box(&dir))));
    group.bench_function("build_engine_warm_cache", |b| {
        b.iter(|| Engine::builder().bundle(bundle.clone()).wasm_options(warm.clone()).build())
    });
    group.finish();
}

criterion_group!(benches, pci_dss);
criterion_main!(benches);
