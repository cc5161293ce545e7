//! AdmissionReview bodies (admission.k8s.io/v1 and v1beta1, and bare requests as
//! `eval` takes them) through the webhook's path: parse, evaluate with the `basic`
//! bundle in admission mode, build the response in the request's version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::Mode;
use palisade::admission::Review;

fuzz_target!(|data: &[u8]| {
    let Ok(review) = Review::parse(data, data.first().is_some_and(|b| b % 2 == 1)) else { return };
    let decision = palisade_fuzz::engine(Mode::Admission).evaluate(&review.input);
    let response = review.respond(&decision);
    let _ = serde_json::to_vec(&response);
    let _ = serde_json::to_vec(&review.failure("fuzz", false));
});
