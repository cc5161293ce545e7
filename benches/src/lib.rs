//! Shared fixtures for the criterion benchmarks in `benches/benches/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use palisade::Bundle;
use serde_json::Value;

/// The allocator the `palisade` binary uses (cli/src/main.rs), so that the benches
/// measure the library as the command runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture object from `benches/fixtures/` (YAML).
pub fn fixture(name: &str) -> Value {
    let path = root().join("benches/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Pod a Deployment fixture's template creates (the typical ~5 KB Pod).
pub fn pod_of(deployment: &Value) -> Value {
    let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod"});
    let template = &deployment["spec"]["template"];
    pod["metadata"] = template["metadata"].clone();
    pod["metadata"]["name"] = deployment["metadata"]["name"].clone();
    pod["metadata"]["namespace"] = deployment["metadata"]["namespace"].clone();
    pod["spec"] = template["spec"].clone();
    pod
}

/// A CronJob whose job template is the Deployment fixture's Pod template.
pub fn cronjob_of(deployment: &Value) -> Value {
    let mut cj = serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": deployment["spec"]["template"].clone()}}}});
    cj["metadata"] = deployment["metadata"].clone();
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure".into();
    cj
}

/// The Pod with its containers repeated to `n` (names made unique).
pub fn wide_pod(pod: &Value, n: usize) -> Value {
    let mut pod = pod.clone();
    let base: Vec<Value> = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let containers: Vec<Value> = (0..n)
        .filter_map(|i| {
            let mut c = base.get(i % base.len().max(1))?.clone();
            c["name"] = format!("c{i}").into();
            Some(c)
        })
        .collect();
    pod["spec"]["containers"] = containers.into();
    pod
}

/// A bundle of `n` Pod policies, cycling through the engine fixture bundle's three
/// pod rules (each copy is a separate policy with its own compiled module).
pub fn synthetic_bundle(n: usize) -> Bundle {
    synthetic_bundle_with(n, "interpreter")
}

/// Like [`synthetic_bundle`], with `rego_execution` set to `execution`.
pub fn synthetic_bundle_with(n: usize, execution: &str) -> Bundle {
    let basic = root().join("engine/tests/bundles/basic");
    let read = |p: &str| std::fs::read(basic.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let rules = [
        ("no_latest_tag", "basic.no_latest_tag"),
        ("resource_limits", "basic.resource_limits"),
        ("prod_registries", "basic.prod_registries"),
    ];
    let mut files = BTreeMap::new();
    files.insert("lib/k8s.rego".to_string(), read("lib/k8s.rego"));
    let mut manifest = format!(
        "[bundle]\nname = \"synthetic\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\nlibs = [\"lib\"]\nrego_execution = \"{execution}\"\n"
    );
    for i in 0..n {
        let (file, package) = rules[i % rules.len()];
        let src = String::from_utf8(read(&format!("rules/{file}.rego"))).unwrap_or_default();
        let src = src.replace(&format!("package {package}"), &format!("package synthetic.p{i}"));
        files.insert(format!("rules/p{i}.rego"), src.into_bytes());
        manifest.push_str(&format!(
            "[[policy]]\nid = \"p{i}\"\ntitle = \"policy {i}\"\nrego = \"rules/p{i}.rego\"\nmatch = {{ kinds = [\"Pod\"] }}\nparameters = {{ registries = [\"registry.example.com/\"] }}\n"
        ));
    }
    files.insert("bundle.toml".to_string(), manifest.into_bytes());
    Bundle::from_files("synthetic", files).unwrap_or_else(|e| panic!("{e}"))
}

/// A plugin component checked in by `scripts/build-plugins.sh` (`plugins/dist/`).
pub fn plugin(name: &str) -> Vec<u8> {
    let path = root().join("plugins/dist").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A one-policy bundle around a plugin, in memory.
pub fn plugin_bundle(file: &str, policy: &str) -> Bundle {
    use sha2::Digest;
    let bytes = plugin(file);
    let manifest = format!(
        "[bundle]\nname = \"bench\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n[[policy]]\nid = \"{policy}\"\ntitle = \"{policy}\"\nwasm = \"plugins/{file}\"\nsha256 = \"{}\"\nmatch = {{ kinds = [\"Pod\"] }}\n",
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    let mut files = BTreeMap::new();
    files.insert("bundle.toml".to_string(), manifest.into_bytes());
    files.insert(format!("plugins/{file}"), bytes);
    Bundle::from_files("bench", files).unwrap_or_else(|e| panic!("{e}"))
}

/// `bundle` reduced to the policies whose id `keep` accepts.
pub fn subset(bundle: &Bundle, keep: impl Fn(&str) -> bool) -> Bundle {
    let mut files = BTreeMap::new();
    for p in bundle.paths() {
        files.insert(p.to_string(), bundle.file(p).unwrap_or_default().to_vec());
    }
    let mut manifest: toml::Table = toml::from_str(bundle.text("bundle.toml").unwrap_or_default()).unwrap_or_default();
    if let Some(toml::Value::Array(policies)) = manifest.get_mut("policy") {
        policies.retain(|p| p.get("id").and_then(|v| v.as_str()).is_some_and(&keep));
    }
    files.insert("bundle.toml".into(), toml::to_string(&manifest).unwrap_or_default().into_bytes());
    Bundle::from_files(bundle.name(), files).unwrap_or_else(|e| panic!("{e}"))
}
