//! The full pci-dss bundle on a typical Deployment (through workload expansion) and
//! on its Pod, on regorus's VM (the bundle's setting) and forced onto the
//! interpreter, and the cost of each policy alone on the Pod with either executor.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::{Bundle, Engine, Input, RegoExecution};
use palisade_benches::{fixture, pod_of, root};

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
    let interpreter = Engine::builder()
        .bundle(bundle.clone())
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
            let Ok(single) = Engine::builder().bundle(only(&bundle, &spec.id)).rego_execution(execution).build() else {
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

/// The bundle reduced to one policy.
fn only(bundle: &Bundle, id: &str) -> Bundle {
    let mut files = std::collections::BTreeMap::new();
    for p in bundle.paths() {
        files.insert(p.to_string(), bundle.file(p).unwrap_or_default().to_vec());
    }
    let mut manifest: toml::Table = toml::from_str(bundle.text("bundle.toml").unwrap_or_default()).unwrap_or_default();
    if let Some(toml::Value::Array(policies)) = manifest.get_mut("policy") {
        policies.retain(|p| p.get("id").and_then(|v| v.as_str()) == Some(id));
    }
    files.insert("bundle.toml".into(), toml::to_string(&manifest).unwrap_or_default().into_bytes());
    Bundle::from_files("single", files).unwrap_or_else(|e| panic!("{e}"))
}

criterion_group!(benches, pci_dss);
criterion_main!(benches);
