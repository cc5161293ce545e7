//! The pci-dss bundle's 19 Pod Security Standards policies on one Pod, run by each of
//! their two implementations: the Rego (on regorus's VM, the bundle's setting, and on
//! the interpreter) and the bundle's WebAssembly component, `pci-workloads` (its
//! pod-security checks: one fresh instance per evaluation for the 19). Two Pods: the typical compliant one from the Deployment
//! fixture and the same Pod made to fail most checks.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::bundle::BackendKind;
use palisade::{Bundle, Engine, Input, RegoExecution};
use palisade_benches::{fixture, pod_of, root, subset};
use serde_json::json;

fn pss(c: &mut Criterion) {
    let full = Bundle::from_dir(root().join("policy-bundles/pci-dss")).unwrap_or_else(|e| panic!("{e}"));
    let bundle = subset(&full, |id| id.starts_with("pss-"));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"pci-dss.palisade.dev/scope": "cde"}}});
    let compliant = pod_of(&fixture("deployment.yaml"));
    let mut violating = compliant.clone();
    violating["spec"]["hostPID"] = json!(true);
    violating["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    if let Some(containers) = violating["spec"]["containers"].as_array_mut() {
        for container in containers {
            container["securityContext"] = json!({"privileged": true, "runAsUser": 0,
                "capabilities": {"add": ["SYS_ADMIN"]}, "seccompProfile": {"type": "Unconfined"}});
            container["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
        }
    }
    let engines = [
        ("rego_vm", Engine::builder().bundle(bundle.clone()).backend(BackendKind::Rego)),
        (
            "rego_interpreter",
            Engine::builder()
                .bundle(bundle.clone())
                .backend(BackendKind::Rego)
                .rego_execution(RegoExecution::Interpreter),
        ),
        ("wasm", Engine::builder().bundle(bundle.clone()).backend(BackendKind::Wasm)),
    ]
    .map(|(label, builder)| (label, builder.build().unwrap_or_else(|e| panic!("{label}: {e}"))));
    for (pod_label, pod) in [("compliant_pod", &compliant), ("violating_pod", &violating)] {
        let input =
            Input::from_object(pod.clone()).unwrap_or_else(|e| panic!("{e}")).with_namespace_object(namespace.clone());
        let mut group = c.benchmark_group(format!("pss/{pod_label}"));
        let mut seen = None;
        for (label, engine) in &engines {
            let d = engine.evaluate(&input);
            let mut found: Vec<String> = d.violations.iter().map(|v| format!("{}: {}", v.policy, v.message)).collect();
            found.sort();
            eprintln!(
                "{pod_label} {label}: {} policies evaluated, {} violations, {} errors",
                d.evaluated.len(),
                found.len(),
                d.errors.len()
            );
            // The benchmark compares equal work: both implementations find the same.
            match &seen {
                None => seen = Some(found),
                Some(first) => assert_eq!(first, &found, "{pod_label}: {label} disagrees"),
            }
            group.bench_function(*label, |b| b.iter(|| engine.evaluate(black_box(&input))));
        }
        group.finish();
    }
}

criterion_group!(benches, pss);
criterion_main!(benches);
