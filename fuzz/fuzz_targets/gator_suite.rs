//! gator Suite files (test.gatekeeper.sh/v1alpha1), run the way `palisade test
//! --gator` runs them: the input is written as `suites/fuzz.yaml` next to copies of
//! the repository's Gatekeeper templates, constraints and objects, so the paths the
//! seed suites name resolve.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn suite_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = palisade_fuzz::scratch().join("gatekeeper");
        let from = palisade_fuzz::repo().join("engine/tests/gatekeeper");
        for dir in ["templates", "constraints", "objects", "suites"] {
            copy_dir(&from.join(dir), &root.join(dir));
        }
        root.join("suites/fuzz.yaml")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("scratch directory");
    for entry in std::fs::read_dir(from).expect("fixture directory").flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("fixture copy");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let path = suite_path();
    if std::fs::write(path, data).is_ok() {
        let _ = palisade::gatekeeper::suite::run_suite(path);
    }
});
