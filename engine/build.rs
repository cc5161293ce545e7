//! Build steps of the `palisade` crate (only with the `embed-default-bundle` feature,
//! which the `cli` feature turns on):
//!
//! 1. Build the repository's WebAssembly plugins from source — `plugins/` (first
//!    party) and `conformance/plugins/` (hostile test plugins) — for
//!    `wasm32-wasip2`, with paths remapped so that the bytes, and so the sha256 a
//!    bundle pins, do not depend on where the repository or the cargo home live.
//!    The built `.wasm` files land in `$OUT_DIR/plugins/` (exported to the crate's
//!    tests as `PALISADE_PLUGIN_DIR`); the plugins bundles refer to are copied
//!    next to them (`policy-bundles/pci-dss/plugins/`,
//!    `conformance/fixtures/broken/plugins/`).
//! 2. Embed `policy-bundles/pci-dss` as the default bundle.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut entries = String::new();
    if std::env::var_os("CARGO_FEATURE_EMBED_DEFAULT_BUNDLE").is_some() {
        let plugin_dir = out_dir.join("plugins");
        build_plugins(&root, &plugin_dir);
        println!("cargo:rustc-env=PALISADE_PLUGIN_DIR={}", plugin_dir.display());
        let bundle = root.join("policy-bundles/pci-dss");
        install(&plugin_dir.join("default_credentials.wasm"), &bundle.join("plugins/default-credentials.wasm"));
        // The second implementation of the bundle's pss-* policies.
        install(&plugin_dir.join("pod_security.wasm"), &bundle.join("plugins/pod-security.wasm"));
        // The conformance kit's broken fixture bundle loads two plugins.
        let broken = root.join("conformance/fixtures/broken/plugins");
        install(&plugin_dir.join("nondeterministic.wasm"), &broken.join("nondeterministic.wasm"));
        install(&plugin_dir.join("pod_privileged.wasm"), &broken.join("pod-privileged.wasm"));
        println!("cargo:rerun-if-changed={}", bundle.display());
        let mut files = Vec::new();
        collect(&bundle, &bundle, &mut files);
        files.sort();
        for (rel, abs) in files {
            entries.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string()));
        }
    }
    let code = format!(
        "/// Files of the embedded default bundle.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    if let Err(e) = std::fs::write(out_dir.join("default_bundle.rs"), code) {
        panic!("cannot write {}: {e}", out_dir.display());
    }
}

/// Builds every plugin workspace into `dest`.
fn build_plugins(root: &Path, dest: &Path) {
    let target_dir = root.join("target/wasm-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    // Remapped paths make the artifacts reproducible across checkouts and machines.
    let flags = [
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/palisade", root.display()),
    ]
    .join("\u{1f}");
    let _ = std::fs::create_dir_all(dest);
    for workspace in ["plugins", "conformance/plugins"] {
        let dir = root.join(workspace);
        watch(&dir);
        let output = Command::new(&cargo)
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", &flags)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_PRIMARY_PACKAGE")
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {workspace}: {e}"));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            for line in stderr.lines() {
                println!("cargo:warning={line}");
            }
            panic!(
                "building the WebAssembly plugins in {workspace}/ failed (see warnings above). \
                 They need the wasm32-wasip2 target: `rustup target add wasm32-wasip2` \
                 (rust-toolchain.toml asks rustup for it)."
            );
        }
    }
    let release = target_dir.join("wasm32-wasip2/release");
    for entry in std::fs::read_dir(&release).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            install(&path, &dest.join(entry.file_name()));
        }
    }
    watch(&root.join("sdk/src"));
    watch(&root.join("sdk/wit"));
    println!("cargo:rerun-if-changed={}", root.join("sdk/Cargo.toml").display());
}

/// Reruns this script when a workspace's sources or manifests change (not its target/).
fn watch(workspace: &Path) {
    for entry in std::fs::read_dir(workspace).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Copies `from` to `to` unless the bytes are already there (keeps mtimes stable).
fn install(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() == Some(&bytes[..]) {
        return;
    }
    if let Some(parent) = to.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(to, &bytes).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
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
            out.push((rel.join("/"), path.canonicalize().unwrap_or(path.clone())));
        }
    }
}
