//! WebAssembly plugin cost: `pod-privileged` on a typical 5 KB Pod with a fresh
//! store and instance per evaluation (the policy-server path), the same through the
//! engine (which also serialises the review), and start-to-first-evaluation with
//! and without the precompiled cache.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade::conformance::plugin::{Plugin, fixture_input};
use palisade::wasm::WasmOptions;
use palisade::{Engine, Input};
use palisade_benches::{fixture, plugin, plugin_bundle, pod_of};

fn wasm(c: &mut Criterion) {
    let pod = pod_of(&fixture("deployment.yaml"));
    let bytes = plugin("pod_privileged.wasm");
    let settings = serde_json::json!({});

    let direct = Plugin::load("pod_privileged.wasm", &bytes, &settings, WasmOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let input = fixture_input(&pod, "CREATE", &settings);
    assert_eq!(direct.call(&input).0.violations, Some(vec![]));
    c.bench_function("wasm/pod_privileged_fresh_instance", |b| b.iter(|| direct.call(black_box(&input))));
    let tiny = r#"{"review":{"kind":{"group":"","version":"v1","kind":"Pod"},"object":{"spec":{}}},"parameters":{}}"#;
    c.bench_function("wasm/pod_privileged_tiny_input", |b| b.iter(|| direct.call(black_box(tiny))));
    let not_pod = r#"{"review":{"kind":{"group":"","version":"v1","kind":"Service"}},"parameters":{}}"#;
    let mut svc = pod.clone();
    svc["kind"] = "Service".into();
    let big_not_pod = fixture_input(&svc, "CREATE", &settings);
    c.bench_function("wasm/pod_privileged_scan_only_5kb", |b| b.iter(|| direct.call(black_box(&big_not_pod))));
    c.bench_function("wasm/pod_privileged_no_parse", |b| b.iter(|| direct.call(black_box(not_pod))));

    let engine = Engine::builder()
        .bundle(plugin_bundle("pod_privileged.wasm", "pod-privileged"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let pod_input = Input::from_object(pod.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.evaluate(&pod_input).allowed);
    c.bench_function("wasm/pod_privileged_engine_evaluate", |b| b.iter(|| engine.evaluate(black_box(&pod_input))));

    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = WasmOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() };
    let bundle = plugin_bundle("pod_privileged.wasm", "pod-privileged");
    let start = |options: WasmOptions| {
        let engine =
            Engine::builder().bundle(bundle.clone()).wasm_options(options).build().unwrap_or_else(|e| panic!("{e}"));
        engine.evaluate(&pod_input)
    };
    start(options.clone()); // fill the cache
    let mut group = c.benchmark_group("wasm/start_to_first_evaluation");
    group.sample_size(10);
    group.bench_function("cached", |b| b.iter(|| start(options.clone())));
    group.bench_function("compiled", |b| b.iter(|| start(WasmOptions::default())));
    group.finish();
}

criterion_group!(benches, wasm);
criterion_main!(benches);
