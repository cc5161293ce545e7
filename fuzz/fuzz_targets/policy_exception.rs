//! PolicyException documents: loaded with every check (fields, ids, scope, expiry
//! against a fixed clock), then applied to a decision with findings, so the scope
//! matching (namespaces, kinds, name globs, label selectors) sees what loaded.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use palisade::documents::{Documents, Format};
use palisade::exception::{Exceptions, FixedClock, LoadOptions};
use palisade::{Decision, Mode};
use serde_json::{Value, json};

/// A Deployment that the `basic` bundle denies, and its decision.
fn judged() -> &'static (Value, Decision) {
    static JUDGED: OnceLock<(Value, Decision)> = OnceLock::new();
    JUDGED.get_or_init(|| {
        let object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "legacy-batch", "namespace": "batch", "labels": {"app": "legacy"}},
            "spec": {"template": {"metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "a", "image": "nginx:latest"}]}}}
        });
        let input = palisade::Input::from_object(object.clone()).expect("a valid object");
        let decision = palisade_fuzz::engine(Mode::Scan).evaluate(&input);
        (object, decision)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut docs = Documents::default();
    docs.parse_text("fuzz.yaml", &text, Format::Detect);
    let clock = Arc::new(FixedClock("2026-12-06T12:00:00Z".parse().expect("a timestamp")));
    let known = |id: &str| palisade_fuzz::engine(Mode::Scan).names_policy(id);
    let (set, _errors) = Exceptions::empty(LoadOptions::default(), clock).extended(docs.documents, &known);
    let (object, decision) = judged();
    let mut decision = decision.clone();
    set.apply(&mut decision, object);
    let _ = set.expiring();
});
