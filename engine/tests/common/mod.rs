//! Helpers shared by the integration tests of the library (`engine/tests`) and of the
//! binary (`cli/tests`, which includes this file): where the repository's fixtures
//! and checked-in plugin components are, and small file utilities.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The `engine/` directory: fixture paths such as `tests/bundles/basic` are relative to it.
pub fn engine_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine")
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A WebAssembly component built from this repository's sources and checked in by
/// `scripts/build-plugins.sh`: first-party plugins in `plugins/dist/`, the hostile
/// test plugins in `conformance/plugins/dist/`.
pub fn plugin_path(file: &str) -> PathBuf {
    let root = root();
    let first_party = root.join("plugins/dist").join(file);
    if first_party.exists() { first_party } else { root.join("conformance/plugins/dist").join(file) }
}

/// The bytes of [`plugin_path`].
pub fn plugin(file: &str) -> Vec<u8> {
    let path = plugin_path(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Lossy UTF-8 of a stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Writes bundle `name-version` under `dir`: optional dependencies, a library module
/// (`lib/lib.rego`) and a policy `p` (`p.rego`, matching Pods); returns its directory.
pub fn write_bundle(
    dir: &Path,
    name: &str,
    version: &str,
    deps: &[(&str, &str)],
    lib: Option<&str>,
    policy: Option<&str>,
) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(root.join("lib")).unwrap();
    let mut manifest = format!("[bundle]\nname = \"{name}\"\nversion = \"{version}\"\nengine = \"^0.1\"\n");
    if lib.is_some() {
        manifest.push_str("libs = [\"lib\"]\n");
    }
    if !deps.is_empty() {
        manifest.push_str("\n[dependencies]\n");
        for (d, r) in deps {
            manifest.push_str(&format!("{d} = \"{r}\"\n"));
        }
    }
    if let Some(p) = policy {
        manifest
            .push_str("\n[[policy]]\nid = \"p\"\ntitle = \"p\"\nrego = \"p.rego\"\nmatch = { kinds = [\"Pod\"] }\n");
        std::fs::write(root.join("p.rego"), p).unwrap();
    }
    if let Some(l) = lib {
        std::fs::write(root.join("lib/lib.rego"), l).unwrap();
    }
    std::fs::write(root.join("bundle.toml"), manifest).unwrap();
    root
}

/// Rewrites the packed bundle `path` into `out`, passing every entry through `edit`.
pub fn rewrite_archive(path: &Path, out: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<(String, Vec<u8>)>) {
    let bytes = std::fs::read(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        for (p, d) in edit(&name, data) {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            builder.append_data(&mut h, p, &d[..]).unwrap();
        }
    }
    std::fs::write(out, builder.into_inner().unwrap().finish().unwrap()).unwrap();
}
