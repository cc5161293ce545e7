//! AdmissionReview `admission.k8s.io/v1` and `v1beta1` in and out, with the types
//! from `kube::core::admission`: parse a review (or a bare AdmissionRequest) into an
//! [`Input`], and turn a [`Decision`] into the AdmissionReview response, in the
//! version the review came in (kube-apiserver still sends v1beta1 to webhooks that
//! list only it in `admissionReviewVersions`; the request and response shapes are
//! the same in both).

use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::{Map, Value};

use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::input::Input;

/// The AdmissionReview version of answers to bare requests and to reviews whose
/// version is unknown.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// The AdmissionReview versions accepted; each review is answered in its own.
pub const API_VERSIONS: [&str; 2] = [API_VERSION, "admission.k8s.io/v1beta1"];

/// A parsed admission request and the evaluation input built from it.
#[derive(Debug, Clone)]
pub struct Review {
    /// The request, as kube-rs types it, without `object` and `oldObject`: those
    /// are in [`Review::input`], as sent (typing them would copy every object twice).
    pub request: AdmissionRequest<DynamicObject>,
    /// The evaluation input (`review` is the request's JSON).
    pub input: Input,
}

impl Review {
    /// Parses an AdmissionReview (`apiVersion: admission.k8s.io/v1`, `kind:
    /// AdmissionReview`, with a `request`) or, when `allow_bare` is set, a bare
    /// AdmissionRequest. Errors name the JSON path and what was expected.
    pub fn parse(body: &[u8], allow_bare: bool) -> Result<Review> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Error::input("AdmissionReview", format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()))
        })?;
        Review::from_value(value, allow_bare)
    }

    /// Like [`Review::parse`], from a JSON value.
    pub fn from_value(value: Value, allow_bare: bool) -> Result<Review> {
        let is_review = value.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
        let (api_version, request_json) = if is_review {
            let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
            if !API_VERSIONS.contains(&api_version.as_str()) {
                return Err(Error::input(
                    "AdmissionReview.apiVersion",
                    format!("expected one of {API_VERSIONS:?}, got {api_version:?}"),
                ));
            }
            match value {
                Value::Object(mut m) if m.get("request").is_some_and(Value::is_object) => {
                    (api_version, m.remove("request").unwrap_or_default())
                }
                _ => {
                    return Err(Error::input(
                        "AdmissionReview.request",
                        "missing: expected the AdmissionRequest object",
                    ));
                }
            }
        } else if allow_bare && value.get("uid").is_some() && value.get("operation").is_some() {
            (API_VERSION.to_string(), value)
        } else {
            return Err(Error::input(
                "input",
                "expected an AdmissionReview (apiVersion admission.k8s.io/v1 or v1beta1, kind AdmissionReview) or an AdmissionRequest",
            ));
        };
        check_request_shape(&request_json)?;
        let Value::Object(mut review) = request_json else {
            return Err(Error::input("AdmissionReview.request", "expected the AdmissionRequest object"));
        };
        // Typed without the objects, which stay JSON in the input.
        let fields: Map<String, Value> = review
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "object" | "oldObject"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut request: AdmissionRequest<DynamicObject> = serde_json::from_value(Value::Object(fields))
            .map_err(|e| Error::input("AdmissionReview.request", format!("not a valid AdmissionRequest: {e}")))?;
        // The response copies these: it goes back in the version the review came in.
        request.types.api_version = api_version;
        request.types.kind = "AdmissionReview".into();
        // Keep the request exactly as sent; normalise absent optional fields.
        review.entry("oldObject").or_insert(Value::Null);
        review.entry("dryRun").or_insert(Value::Bool(false));
        let review = Value::Object(review);
        let input = Input::from_admission_request(review)?;
        Ok(Review { request, input })
    }

    /// The AdmissionReview version this review came in (and is answered in).
    pub fn api_version(&self) -> &str {
        &self.request.types.api_version
    }

    /// An answer to this request that was not evaluated (bundles not loaded, deadline
    /// passed): a denial with `message`, or an allow with it as a warning.
    pub fn failure(&self, message: &str, allowed: bool) -> AdmissionReview<DynamicObject> {
        failure_review(Some(self.api_version()), &self.request.uid, message, allowed)
    }

    /// The AdmissionReview answering this request with `decision`.
    pub fn respond(&self, decision: &Decision) -> AdmissionReview<DynamicObject> {
        let mut response = AdmissionResponse::from(&self.request);
        if !decision.allowed {
            response = response.deny(format!("denied by palisade:\n{}", decision.denial_lines().join("\n")));
            response.result.code = 403;
            response.result.reason = "Forbidden".into();
        }
        let warnings: Vec<String> = decision
            .warnings
            .iter()
            .map(|w| format!("[{}] {}", w.policy, w.message).replace(['\n', '\r'], " "))
            .chain(decision.errors.iter().filter(|e| e.failure_mode == crate::FailureMode::Ignore).map(|e| {
                format!("[{}] policy failed to evaluate (ignored): {}", e.policy, e.message).replace(['\n', '\r'], " ")
            }))
            .chain(decision.waived.iter().map(|w| {
                let (v, x) = (&w.violation, &w.exception);
                format!("[{}] waived by exception {} until {}: {}", v.policy, x.name, x.expires, v.message)
                    .replace(['\n', '\r'], " ")
            }))
            .collect();
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        let annotations = &mut response.audit_annotations;
        annotations.insert("decision".into(), if decision.allowed { "allowed" } else { "denied" }.into());
        if !decision.waived.is_empty() {
            let waived: Vec<String> =
                decision.waived.iter().map(|w| format!("{} ({})", w.violation.policy, w.exception.name)).collect();
            annotations.insert("waived".into(), waived.join(", "));
        }
        if !decision.bundles.is_empty() {
            annotations.insert("bundles".into(), decision.bundles.join(", "));
        }
        let mut ids: Vec<&str> = decision.denials().map(|v| v.policy.as_str()).collect();
        ids.extend(decision.failing_errors().map(|e| e.policy.as_str()));
        ids.dedup();
        if !ids.is_empty() {
            annotations.insert("denied-by".into(), ids.join(","));
        }
        let audit: Vec<&str> = decision
            .violations
            .iter()
            .filter(|v| v.action == crate::Action::Audit)
            .map(|v| v.policy.as_str())
            .collect();
        if !audit.is_empty() {
            annotations.insert("audit-findings".into(), audit.join(","));
        }
        if !decision.skipped.is_empty() {
            let skipped: Vec<String> =
                decision.skipped.iter().map(|s| format!("{} ({})", s.policy, s.reason)).collect();
            annotations.insert("skipped".into(), skipped.join("; "));
        }
        response.into_review()
    }
}

/// The fields kube-apiserver always sends, checked with their JSON path before
/// serde's message (which names neither) would reject them.
fn check_request_shape(request: &Value) -> Result<()> {
    for field in ["uid", "operation"] {
        match request.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(Error::input(
                    format!("AdmissionReview.request.{field}"),
                    format!("expected a non-empty string, got {}", json_kind(other)),
                ));
            }
            None => return Err(Error::input(format!("AdmissionReview.request.{field}"), "missing")),
        }
    }
    match request.get("kind") {
        Some(Value::Object(k)) if k.get("kind").is_some_and(Value::is_string) => {}
        Some(_) => return Err(Error::input("AdmissionReview.request.kind", "expected {group, version, kind} strings")),
        None => return Err(Error::input("AdmissionReview.request.kind", "missing")),
    }
    // The objects are not typed (see `Review::request`); their shape is checked here.
    for field in ["object", "oldObject"] {
        match request.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                if let Some(m) = o.get("metadata").filter(|m| !m.is_object() && !m.is_null()) {
                    return Err(Error::input(
                        format!("AdmissionReview.request.{field}.metadata"),
                        format!("expected an object, got {}", json_kind(m)),
                    ));
                }
            }
            Some(other) => {
                return Err(Error::input(
                    format!("AdmissionReview.request.{field}"),
                    format!("expected an object or null, got {}", json_kind(other)),
                ));
            }
        }
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An AdmissionReview that answers `uid` with a denial (or an allow, for failure mode
/// `ignore`) because the request could not be evaluated, in `api_version` when it is
/// one of [`API_VERSIONS`] (else v1).
pub fn failure_review(
    api_version: Option<&str>,
    uid: &str,
    message: &str,
    allowed: bool,
) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::invalid(message);
    if let Some(v) = api_version.filter(|v| API_VERSIONS.contains(v)) {
        response.types.api_version = v.to_string();
    }
    response.uid = uid.to_string();
    response.allowed = allowed;
    if allowed {
        response.warnings = Some(vec![format!("palisade: {message}")]);
    }
    response.into_review()
}

/// The answer to a JSON body that is not a valid AdmissionReview, in the version it
/// names and with the `request.uid` it carries where it has them (so that the API
/// server, which checks the uid, can match it); `message` says what was wrong.
pub fn malformed_review(
    api_version: Option<&str>,
    uid: &str,
    message: &str,
    allowed: bool,
) -> AdmissionReview<DynamicObject> {
    let mut review = failure_review(api_version, uid, message, allowed);
    if let Some(r) = &mut review.response {
        r.result.code = 400;
        r.result.reason = "BadRequest".into();
    }
    review
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review_json() -> Value {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web", "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["dev"]},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }})
    }

    #[test]
    fn parses_and_answers_with_same_uid() {
        let r = Review::from_value(review_json(), false).unwrap();
        assert_eq!(r.input.review()["userInfo"]["username"], "alice");
        assert_eq!(r.input.review()["object"]["spec"]["containers"][0]["image"], "nginx");
        // The typed request leaves the objects to the input.
        assert_eq!(
            (r.request.uid.as_str(), r.request.object.is_none()),
            ("705ab4f5-6393-11e8-b7cc-42010a800002", true)
        );
        let out = serde_json::to_value(r.respond(&Decision { allowed: true, ..Default::default() })).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn v1beta1_is_answered_in_v1beta1() {
        let mut v = review_json();
        v["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let r = Review::from_value(v, false).unwrap();
        assert_eq!(r.api_version(), "admission.k8s.io/v1beta1");
        let out = serde_json::to_value(r.respond(&Decision { allowed: true, ..Default::default() })).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(out["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        let out = serde_json::to_value(r.failure("not loaded", false)).unwrap();
        assert_eq!(
            (out["apiVersion"].as_str(), out["response"]["allowed"].as_bool()),
            (Some("admission.k8s.io/v1beta1"), Some(false))
        );
    }

    #[test]
    fn wrong_shapes_name_the_path_and_are_answered_with_the_uid() {
        let mut v = review_json();
        v["request"].as_object_mut().unwrap().remove("uid");
        let e = Review::from_value(v.clone(), false).unwrap_err().to_string();
        assert_eq!(e, "AdmissionReview.request.uid: missing");
        v["request"]["uid"] = json!(7);
        let e = Review::from_value(v.clone(), false).unwrap_err().to_string();
        assert_eq!(e, "AdmissionReview.request.uid: expected a non-empty string, got a number");
        v["request"]["uid"] = json!("u-1");
        v["request"]["kind"] = json!("Pod");
        let e = Review::from_value(v.clone(), false).unwrap_err().to_string();
        assert_eq!(e, "AdmissionReview.request.kind: expected {group, version, kind} strings");
        let mut bad = review_json();
        bad["request"]["object"]["metadata"] = json!("pod");
        let e2 = Review::from_value(bad.clone(), false).unwrap_err().to_string();
        assert_eq!(e2, "AdmissionReview.request.object.metadata: expected an object, got a string");
        bad["request"]["oldObject"] = json!([]);
        bad["request"]["object"] = json!(null);
        let e2 = Review::from_value(bad, false).unwrap_err().to_string();
        assert_eq!(e2, "AdmissionReview.request.oldObject: expected an object or null, got an array");
        let out = serde_json::to_value(malformed_review(Some("admission.k8s.io/v1"), "u-1", &e, false)).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 400);
        assert_eq!(out["response"]["status"]["message"], e);
    }

    #[test]
    fn rejects_other_versions_and_shapes() {
        let mut v = review_json();
        v["apiVersion"] = json!("admission.k8s.io/v2");
        let e = Review::from_value(v, false).unwrap_err().to_string();
        assert!(e.contains("got \"admission.k8s.io/v2\""), "{e}");
        let e = Review::parse(b"{not json", false).unwrap_err().to_string();
        assert!(e.starts_with("AdmissionReview: invalid JSON at line 1"), "{e}");
        let bare = review_json()["request"].clone();
        assert!(Review::from_value(bare.clone(), false).is_err());
        assert!(Review::from_value(bare, true).is_ok());
    }
}
