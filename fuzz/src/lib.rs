//! What the fuzz targets share: the repository's fixtures, an engine built once per
//! process from the `basic` test bundle (Rego only: every reporting style, parameters,
//! inventory, namespace selectors, workload expansion), and a scratch directory for
//! the inputs that palisade only reads from files.
//!
//! A failure here is a broken fixture, not a finding: it panics at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use palisade::{Bundle, Engine, Mode};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("fuzz/ has a parent").to_path_buf()
}

/// The `basic` test bundle's directory.
pub fn basic_dir() -> PathBuf {
    repo().join("engine/tests/bundles/basic")
}

/// The `basic` bundle's files, by bundle path (`bundle.toml`, `rules/x.rego`, ...).
pub fn basic_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    read_tree(&basic_dir(), &basic_dir(), &mut files);
    files
}

fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("fixture directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_tree(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
            files.insert(rel, std::fs::read(&path).expect("fixture file"));
        }
    }
}

/// The `basic` bundle's engine in `mode`, built once per process.
pub fn engine(mode: Mode) -> &'static Engine {
    static SCAN: OnceLock<Engine> = OnceLock::new();
    static ADMISSION: OnceLock<Engine> = OnceLock::new();
    let cell = if matches!(mode, Mode::Scan) { &SCAN } else { &ADMISSION };
    cell.get_or_init(|| {
        let bundle = Bundle::from_dir(basic_dir()).expect("the basic bundle loads");
        Engine::builder().bundle(bundle).mode(mode).build().expect("the basic bundle compiles")
    })
}

/// A directory that lives as long as the process.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory")).path()
}

/// Splits fuzz input at 0xFF bytes (never part of UTF-8 text): one input, several files.
pub fn parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    data.splitn(max, |b| *b == 0xFF).collect()
}
