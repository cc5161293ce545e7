//! The one evaluation input every backend sees, built once per object:
//!
//! ```json
//! { "review": { AdmissionRequest fields ..., "namespaceObject": {...} }, "parameters": {...} }
//! ```
//!
//! In scan mode (objects read from files) the review is built the way Gatekeeper's
//! audit and `gator` build it: the object, its kind and resource, name, namespace, an
//! empty operation and empty user info. At admission it is the AdmissionRequest itself.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::matching::{MatchTarget, Operation};
use crate::object::{self, Gvk, ObjectRef, SourceLocation};

/// A prepared evaluation input for one object.
#[derive(Debug, Clone)]
pub struct Input {
    review: Value,
    gvk: Gvk,
    namespace: Option<String>,
    name: String,
    operation: Option<Operation>,
    object_ref: ObjectRef,
    /// For a Pod synthesised from a workload: the template's path inside the workload.
    template_path: Option<String>,
}

impl Input {
    /// Scan-mode input for a plain object (no admission request).
    ///
    /// Fails when the value is not an object with string `apiVersion` and `kind`.
    pub fn from_object(object: Value) -> Result<Input> {
        Input::from_object_at(object, None)
    }

    /// Scan-mode input for an object read from `source` (file and document index),
    /// so that findings and errors name the place.
    pub fn from_object_at(object: Value, source: Option<SourceLocation>) -> Result<Input> {
        let context = || match &source {
            Some(s) => format!("{}: document {}", s.file, s.document),
            None => "object".to_string(),
        };
        let gvk = Gvk::of(&object).ok_or_else(|| {
            Error::input(context(), "expected a Kubernetes object with string fields `apiVersion` and `kind`")
        })?;
        let name = object::name(&object).unwrap_or_default().to_string();
        let namespace = if gvk.group.is_empty() && gvk.kind == "Namespace" {
            Some(name.clone())
        } else if gvk.is_namespaced() {
            object::namespace(&object).map(str::to_string)
        } else {
            None
        };
        let object_ref = ObjectRef::of(&object, source);
        let mut review = json!({
            "uid": "",
            "kind": gvk.to_json(),
            "resource": gvk.resource_json(),
            "name": name,
            "namespace": object::namespace(&object).unwrap_or_default(),
            "operation": "",
            "userInfo": {"username": "", "groups": []},
            "oldObject": Value::Null,
            "dryRun": false,
            "options": Value::Null,
        });
        // Moved in: inside `json!` the object would be copied through a serializer.
        review["object"] = object;
        Ok(Input { review, gvk, namespace, name, operation: None, object_ref, template_path: None })
    }

    /// Admission-mode input from an `admission.k8s.io/v1` AdmissionRequest (the
    /// `request` field of an AdmissionReview), as JSON.
    pub fn from_admission_request(request: Value) -> Result<Input> {
        let Value::Object(req) = request else {
            return Err(Error::input("request", "expected the AdmissionRequest to be a JSON object"));
        };
        let field = |k: &str| req.get(k).and_then(Value::as_str);
        let kind = req.get("kind").ok_or_else(|| Error::input("request.kind", "missing"))?;
        let gvk = Gvk {
            group: kind.get("group").and_then(Value::as_str).unwrap_or_default().to_string(),
            version: kind.get("version").and_then(Value::as_str).unwrap_or_default().to_string(),
            kind: kind
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::input("request.kind.kind", "expected a string"))?
                .to_string(),
        };
        let op_name = field("operation").ok_or_else(|| Error::input("request.operation", "expected a string"))?;
        let operation = Operation::parse(op_name).ok_or_else(|| {
            Error::input("request.operation", format!("expected CREATE, UPDATE, DELETE or CONNECT, got {op_name:?}"))
        })?;
        let live = match req.get("object") {
            Some(o) if !o.is_null() => o,
            _ => req.get("oldObject").unwrap_or(&Value::Null),
        };
        let name =
            field("name").map(str::to_string).or_else(|| object::name(live).map(str::to_string)).unwrap_or_default();
        let namespace = if gvk.group.is_empty() && gvk.kind == "Namespace" {
            Some(name.clone())
        } else {
            field("namespace").filter(|s| !s.is_empty()).map(str::to_string)
        };
        let object_ref = ObjectRef {
            api_version: gvk.api_version(),
            kind: gvk.kind.clone(),
            namespace: field("namespace").filter(|s| !s.is_empty()).map(str::to_string),
            name: name.clone(),
            source: None,
        };
        Ok(Input {
            review: Value::Object(req),
            gvk,
            namespace,
            name,
            operation: Some(operation),
            object_ref,
            template_path: None,
        })
    }

    /// Attaches the object's Namespace (as `review.namespaceObject`), used by namespace
    /// selectors and by rules that look at namespace labels.
    pub fn with_namespace_object(mut self, namespace: Value) -> Input {
        if let Value::Object(r) = &mut self.review {
            r.insert("namespaceObject".into(), namespace);
        }
        self
    }

    /// The `review` document.
    pub fn review(&self) -> &Value {
        &self.review
    }

    /// The object under review (`oldObject` for DELETE).
    pub fn object(&self) -> &Value {
        match self.review.get("object") {
            Some(o) if !o.is_null() => o,
            _ => self.review.get("oldObject").unwrap_or(&Value::Null),
        }
    }

    /// The object's kind.
    pub fn gvk(&self) -> &Gvk {
        &self.gvk
    }

    /// The object's namespace (for a Namespace: its own name).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Admission operation; `None` in scan mode.
    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    /// Reference to the object findings are reported against.
    pub fn object_ref(&self) -> &ObjectRef {
        &self.object_ref
    }

    /// The Namespace object attached with [`Input::with_namespace_object`].
    pub fn namespace_object(&self) -> Option<&Value> {
        self.review.get("namespaceObject").filter(|v| v.is_object())
    }

    /// For a Pod synthesised from a workload, the template's path in the workload.
    pub fn template_path(&self) -> Option<&str> {
        self.template_path.as_deref()
    }

    /// The full input document for a policy: `{"review": ..., "parameters": ...}`.
    pub fn document(&self, parameters: &Value) -> Value {
        json!({"review": self.review, "parameters": parameters})
    }

    pub(crate) fn match_target(&self) -> MatchTarget<'_> {
        MatchTarget {
            gvk: &self.gvk,
            namespace: self.namespace.as_deref(),
            name: &self.name,
            object: self.object(),
            old_object: self.review.get("oldObject").filter(|o| !o.is_null()),
            metadata_namespace: self
                .review
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .or_else(|| object::namespace(self.object())),
            namespace_object: self.namespace_object(),
            operation: self.operation,
        }
    }

    /// The input for the Pod a workload's template would create, with `oldObject`
    /// converted the same way; findings stay attached to the workload.
    pub fn pod_from_workload(&self) -> Option<Input> {
        let (pod, path) = object::synthesize_pod(self.object(), &self.gvk)?;
        let pod_gvk = Gvk { group: String::new(), version: "v1".into(), kind: "Pod".into() };
        // The objects are converted, not cloned first; every other field is copied.
        let from = if self.review.get("object").is_some_and(|o| !o.is_null()) { "object" } else { "oldObject" };
        let mut pod = Some(pod);
        let mut review: Map<String, Value> = Map::new();
        for (key, value) in self.review.as_object()? {
            let value = match key.as_str() {
                "kind" | "resource" => continue,
                k if k == from => pod.take().unwrap_or(Value::Null),
                "object" | "oldObject" => {
                    object::synthesize_pod(value, &self.gvk).map(|(p, _)| p).unwrap_or(Value::Null)
                }
                _ => value.clone(),
            };
            review.insert(key.clone(), value);
        }
        for key in ["object", "oldObject"] {
            review.entry(key).or_insert(Value::Null);
        }
        review.insert("kind".into(), pod_gvk.to_json());
        review.insert("resource".into(), pod_gvk.resource_json());
        Some(Input {
            review: Value::Object(review),
            gvk: pod_gvk,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            operation: self.operation,
            object_ref: self.object_ref.clone(),
            template_path: Some(path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_mode_review() {
        let i = Input::from_object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "pay"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}}))
        .unwrap();
        assert_eq!(i.review()["kind"], json!({"group": "apps", "version": "v1", "kind": "Deployment"}));
        assert_eq!(i.review()["resource"]["resource"], "deployments");
        assert_eq!(i.review()["operation"], "");
        assert_eq!(i.namespace(), Some("pay"));
        let pod = i.pod_from_workload().unwrap();
        assert_eq!(pod.review()["object"]["kind"], "Pod");
        assert_eq!(pod.review()["kind"]["kind"], "Pod");
        assert_eq!(pod.object_ref().kind, "Deployment");
        assert_eq!(pod.template_path(), Some("spec.template"));
        let doc = pod.document(&json!({"x": 1}));
        assert_eq!(doc["parameters"]["x"], 1);
    }

    #[test]
    fn rejects_non_objects() {
        let e = Input::from_object_at(
            json!({"kind": 3}),
            Some(SourceLocation { file: "a.yaml".into(), document: 2, line: 5 }),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("a.yaml: document 2: expected a Kubernetes object"), "{e}");
    }

    #[test]
    fn admission_request_delete_uses_old_object() {
        let i = Input::from_admission_request(json!({
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "DELETE", "namespace": "n", "name": "p",
            "oldObject": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}}
        }))
        .unwrap();
        assert_eq!(i.operation(), Some(Operation::Delete));
        assert_eq!(i.object()["metadata"]["labels"]["a"], "b");
        let e = Input::from_admission_request(json!({"kind": {"kind": "Pod"}, "operation": "PATCH"})).unwrap_err();
        assert!(e.to_string().contains("expected CREATE"), "{e}");
    }
}
