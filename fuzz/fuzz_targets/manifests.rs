//! Manifest documents (multi-document YAML, JSON, `kind: List`) as `scan` reads them,
//! then scanned with the `basic` bundle: object references, workload expansion,
//! matching and Rego evaluation see whatever parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::Mode;
use palisade::documents::{Documents, Format};
use palisade::scan::{self, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut docs = Documents::default();
    docs.parse_text("fuzz.yaml", &text, Format::Detect);
    let options = ScanOptions { threads: Some(1), ..Default::default() };
    let _ = scan::scan(palisade_fuzz::engine(Mode::Scan), docs.documents, &options, None);
});
