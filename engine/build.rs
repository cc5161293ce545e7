//! Build step of the `palisade` crate, only with the `embed-default-bundle` feature:
//! embeds `policy-bundles/pci-dss` (its Rego, schemas, tests and the checked-in
//! plugin components it pins) as `palisade::default_bundle()`.
//!
//! Nothing is compiled here: the bundle's WebAssembly components are built by
//! `scripts/build-plugins.sh`, checked in, and pinned by sha256 in `bundle.toml`
//! (which the loader verifies), so building the crate needs no wasm32-wasip2 target
//! and writes nothing outside `OUT_DIR`.

use std::path::{Path, PathBuf};

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut entries = String::new();
    if std::env::var_os("CARGO_FEATURE_EMBED_DEFAULT_BUNDLE").is_some() {
        let bundle = manifest_dir.join("../policy-bundles/pci-dss");
        println!("cargo:rerun-if-changed={}", bundle.display());
        let mut files = Vec::new();
        collect(&bundle, &bundle, &mut files);
        files.sort();
        for (rel, abs) in files {
            println!("cargo:rerun-if-changed={}", abs.display());
            entries.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string()));
        }
    }
    let code = format!(
        "/// Files of the embedded default bundle.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    if let Err(e) = std::fs::write(out_dir.join("default_bundle.rs"), code) {
        println!("cargo:warning=cannot write {}: {e}", out_dir.display());
        std::process::exit(1);
    }
}

/// Every file under `dir` (skipping dot files), as (path relative to `root`, absolute path).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push((rel.join("/"), path.canonicalize().unwrap_or(path.clone())));
        }
    }
}
