//! Reports a different violation message on each evaluation of the same input
//! (seeded from WASI randomness through `RandomState`). Test-only: conformance must
//! flag it.

use std::hash::BuildHasher;

use palisade_sdk::{Metadata, Policy, Request, Violation};

struct Nondeterministic;

impl Policy for Nondeterministic {
    fn metadata() -> Metadata {
        Metadata::new("nondeterministic", "0.1.0", "answers differently every time").kinds(["Pod"])
    }

    fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
        let n = std::collections::hash_map::RandomState::new().hash_one(request.name());
        Ok(if n % 2 == 0 { vec![Violation::new(format!("coin says {n}"))] } else { vec![] })
    }
}

palisade_sdk::export_policy!(Nondeterministic);
