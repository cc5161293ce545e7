//! `bundle.toml` and a parameter schema: the input is `bundle.toml`, then (after a
//! 0xFF byte) `schemas/labels.json`, in the otherwise unchanged `basic` bundle. What
//! loads is compiled into an engine (parameters are checked against schemas there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::{Bundle, Engine};

fuzz_target!(|data: &[u8]| {
    let parts = palisade_fuzz::parts(data, 2);
    let mut files = palisade_fuzz::basic_files();
    files.insert("bundle.toml".into(), parts[0].to_vec());
    if let Some(schema) = parts.get(1) {
        files.insert("schemas/labels.json".into(), schema.to_vec());
    }
    if let Ok(bundle) = Bundle::from_files("fuzz", files) {
        let _ = Engine::builder().bundle(bundle).build();
    }
});
