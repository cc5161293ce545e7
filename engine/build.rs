//! Embeds `policy-bundles/pci-dss` (whatever it holds at build time) as the default
//! bundle, when the `embed-default-bundle` feature is on.

use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("default_bundle.rs");
    let mut entries = String::new();
    if std::env::var_os("CARGO_FEATURE_EMBED_DEFAULT_BUNDLE").is_some() {
        let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
        let root = manifest_dir.join("../policy-bundles/pci-dss");
        println!("cargo:rerun-if-changed={}", root.display());
        let mut files = Vec::new();
        collect(&root, &root, &mut files);
        files.sort();
        for (rel, abs) in files {
            entries.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string()));
        }
    }
    let code = format!(
        "/// Files of the embedded default bundle.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}

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
            let abs = path.canonicalize().unwrap_or(path.clone());
            out.push((rel.join("/"), abs));
        }
    }
}
