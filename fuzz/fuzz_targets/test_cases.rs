//! `palisade test` case files (`tests/*.yaml` of a bundle): the input replaces the
//! `basic` bundle's case files and the bundle's tests run (objects, inventories,
//! parameters, expectations, `repeat`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::Bundle;
use palisade::tester::{self, TestOptions};

fuzz_target!(|data: &[u8]| {
    let mut files = palisade_fuzz::basic_files();
    files.retain(|path, _| path.strip_prefix("tests/").is_none_or(|rest| rest.contains('/')));
    files.insert("tests/fuzz.yaml".into(), data.to_vec());
    let Ok(bundle) = Bundle::from_files("fuzz", files) else { return };
    let _ = tester::run_bundle(&bundle, &TestOptions::default());
});
