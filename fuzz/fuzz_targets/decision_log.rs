//! The decision-log verifier (`palisade log verify`). The input is up to three files
//! (split at 0xFF bytes), verified as one chain, oldest first. When the first byte is
//! odd every line's `hash` is recomputed first, so the checks past the hash (JSON
//! shape, `prev` links, `seq` order) meet inputs a fuzzer could not otherwise reach.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// The line with its `hash` field set to the sha256 of its body, as the writer does.
fn rehash(line: &str) -> String {
    let Some(idx) = line.rfind(",\"hash\":\"") else { return line.to_string() };
    let body = format!("{}}}", &line[..idx]);
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{},\"hash\":\"{hash}\"}}", &line[..idx])
}

fuzz_target!(|data: &[u8]| {
    let rehashing = data.first().is_some_and(|b| b % 2 == 1);
    let data = data.get(1..).unwrap_or_default();
    let mut files = Vec::new();
    for (i, part) in palisade_fuzz::parts(data, 3).into_iter().enumerate() {
        let mut bytes = part.to_vec();
        if rehashing && let Ok(text) = std::str::from_utf8(part) {
            bytes = text.split('\n').map(rehash).collect::<Vec<_>>().join("\n").into_bytes();
        }
        let path = palisade_fuzz::scratch().join(format!("decisions.jsonl.{i}"));
        if std::fs::write(&path, bytes).is_err() {
            return;
        }
        files.push(path);
    }
    let _ = palisade::decision_log::verify(&files);
});
