//! The ValidatingAdmissionPolicy conformance cases (`conformance/vap/`) through
//! palisade: every request gets the answer the case records, which is what
//! kube-apiserver answers (checked against the real one in `cluster_vap.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::vap::{self, case_files};

#[test]
fn every_vap_case_gets_the_api_servers_answer_from_palisade() {
    let files = case_files();
    let total: usize = files.iter().map(|f| f.requests.len()).sum();
    assert!(total >= 40, "the suite has {total} cases, at least 40 are required");
    let mut failures = Vec::new();
    for file in &files {
        let engine = vap::engine(file);
        for request in &file.requests {
            let got = vap::palisade_outcome(&engine, file, request);
            if got != request.expect {
                failures.push(format!(
                    "{} / {}:\n  expected {:?}\n  palisade {:?}",
                    vap::display(&file.path),
                    request.name,
                    request.expect,
                    got
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}
