//! The full pci-dss bundle on a typical Deployment (through workload expansion) and
//! on its Pod: as the bundle sets it (Rego on regorus's VM, pss-* on the pod-security
//! plugin), with pss-* on their Rego instead, and all Rego forced onto the
//! interpreter; then the cost of each policy's Rego alone on the Pod with either executor.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::bundle::BackendKind;
use palisade::{Bundle, Engine, Input, RegoExecution};
use palisade_benches::{fixture, pod_of, root, subset};

fn pci_dss(c: &mut Criterion) {
    let bundle = Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::builder().bundle(bundle.clone()).build().unwrap_or_else(|e| panic!("{e}"));
    let deployment = fixture("deployment.yaml");
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": "cde", "pci-dss.palisade.dev/security-level": "high"}}});
    let deploy = Input::from_object(deployment.clone())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_namespace_object(namespace.clone());
    let pod =
        Input::from_object(pod_of(&deployment)).unwrap_or_else(|e| panic!("{e}")).with_namespace_object(namespace);
    let d = engine.evaluate(&deploy);
    eprintln!(
        "deployment: {} policies evaluated, allowed {}, {:?}",
        d.evaluated.len(),
        d.allowed,
        d.violations.iter().map(|v| &v.policy).collect::<Vec<_>>()
    );
    c.bench_function("pci_dss/full_bundle_deployment", |b| b.iter(|| engine.evaluate(black_box(&deploy))));
    c.bench_function("pci_dss/full_bundle_pod", |b| b.iter(|| engine.evaluate(black_box(&pod))));
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

criterion_group!(benches, pci_dss);
criterion_main!(benches);
