//! Reports a violation whose message differs on each evaluation of the same input
//! (seeded from WASI randomness through `RandomState`), except for Pods named
//! `steady-*`, which it always allows. So cases expecting "denied" or "allowed"
//! pass, and only evaluating twice gives it away. Test-only: conformance must flag it.

use std::hash::BuildHasher;

use palisade_sdk::{Metadata, Policy, Request, Violation};

struct Nondeterministic;

impl Policy for Nondeterministic {
    fn metadata() -> Metadata {
        Metadata::new("nondeterministic", "0.1.0", "answers differently every time").kinds(["Pod"])
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        if request.name().starts_with("steady-") {
            return Ok(Vec::new());
        }
        let n = std::collections::hash_map::RandomState::new().hash_one(request.name());
        Ok(vec![Violation::new(format!("coin says {n}"))])
    }
}

palisade_sdk::export_policy!(Nondeterministic);
