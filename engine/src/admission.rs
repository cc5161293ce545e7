//! AdmissionReview `admission.k8s.io/v1` in and out, with the types from
//! `kube::core::admission`: parse a review (or a bare AdmissionRequest) into an
//! [`Input`], and turn a [`Decision`] into the AdmissionReview response.

use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::Value;

use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::input::Input;

/// The only AdmissionReview version accepted.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A parsed admission request and the evaluation input built from it.
#[derive(Debug, Clone)]
pub struct Review {
    /// The request, as kube-rs types it.
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
        let request_json = if is_review {
            let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if api_version != API_VERSION {
                return Err(Error::input(
                    "AdmissionReview.apiVersion",
                    format!("expected {API_VERSION:?}, got {api_version:?} (only admission.k8s.io/v1 is supported)"),
                ));
            }
            match value.get("request") {
                Some(r) if r.is_object() => r.clone(),
                _ => {
                    return Err(Error::input(
                        "AdmissionReview.request",
                        "missing: expected the AdmissionRequest object",
                    ));
                }
            }
        } else if allow_bare && value.get("uid").is_some() && value.get("operation").is_some() {
            value
        } else {
            return Err(Error::input(
                "input",
                "expected an AdmissionReview (apiVersion admission.k8s.io/v1, kind AdmissionReview) or an AdmissionRequest",
            ));
        };
        let mut request: AdmissionRequest<DynamicObject> = serde_json::from_value(request_json.clone())
            .map_err(|e| Error::input("AdmissionReview.request", format!("not a valid AdmissionRequest: {e}")))?;
        request.types.api_version = API_VERSION.into();
        request.types.kind = "AdmissionReview".into();
        let mut review = request_json;
        // Keep the request exactly as sent, minus nothing; normalise absent optional fields.
        if let Value::Object(m) = &mut review {
            m.entry("oldObject").or_insert(Value::Null);
            m.entry("dryRun").or_insert(Value::Bool(false));
        }
        let input = Input::from_admission_request(review)?;
        Ok(Review { request, input })
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
            .collect();
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        let annotations = &mut response.audit_annotations;
        annotations.insert("decision".into(), if decision.allowed { "allowed" } else { "denied" }.into());
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

/// An AdmissionReview that answers `uid` with a denial (or an allow, for failure mode
/// `ignore`) because the request could not be evaluated.
pub fn failure_review(uid: &str, message: &str, allowed: bool) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::invalid(message);
    response.uid = uid.to_string();
    response.allowed = allowed;
    if allowed {
        response.warnings = Some(vec![format!("palisade: {message}")]);
    }
    response.into_review()
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
        let out = serde_json::to_value(r.respond(&Decision { allowed: true, ..Default::default() })).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn rejects_other_versions_and_shapes() {
        let mut v = review_json();
        v["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let e = Review::from_value(v, false).unwrap_err().to_string();
        assert!(e.contains("expected \"admission.k8s.io/v1\", got \"admission.k8s.io/v1beta1\""), "{e}");
        let e = Review::parse(b"{not json", false).unwrap_err().to_string();
        assert!(e.starts_with("AdmissionReview: invalid JSON at line 1"), "{e}");
        let bare = review_json()["request"].clone();
        assert!(Review::from_value(bare.clone(), false).is_err());
        assert!(Review::from_value(bare, true).is_ok());
    }
}
