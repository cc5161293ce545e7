//! The evaluation input, parsed lazily: the review's scalar fields are read, the
//! objects stay raw JSON until a policy asks for them in the type it wants.

use std::rc::Rc;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::pod::Pod;

/// The admission operation, or `Scan` for objects read from files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// An object scanned from a file (no admission request).
    Scan,
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

/// Group, version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// Who made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The evaluation document, split into its two parts (each still raw JSON).
#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    review: &'a RawValue,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

/// The review of a [`crate::Policy::PARSE_PODS`] policy, read in one pass: a Pod
/// under review (core `Pod`, its kind read before it, as the host writes reviews)
/// becomes a [`Pod`] as it is read; an object of any other kind stays raw JSON.
#[derive(Default)]
struct PodReview<'a> {
    kind: GroupVersionKind,
    name: String,
    namespace: String,
    operation: String,
    user_info: UserInfo,
    object: Option<Object<'a>>,
    old_object: Option<Object<'a>>,
    namespace_object: Option<&'a RawValue>,
}

/// An object of a [`PodReview`].
enum Object<'a> {
    Pod(Rc<Pod<'a>>),
    Raw(&'a RawValue),
}

/// The review fields [`PodReview`] reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    Kind,
    Name,
    Namespace,
    Operation,
    UserInfo,
    Object,
    OldObject,
    NamespaceObject,
    #[serde(other)]
    Other,
}

fn is_pod(kind: &GroupVersionKind) -> bool {
    kind.kind == "Pod" && kind.group.is_empty()
}

impl<'de: 'a, 'a> Deserialize<'de> for PodReview<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PodReviewVisitor(std::marker::PhantomData))
    }
}

struct PodReviewVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PodReviewVisitor<'a> {
    type Value = PodReview<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an admission request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PodReview<'a>, A::Error> {
        let mut r = PodReview::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Kind => r.kind = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Name => r.name = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Namespace => r.namespace = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Operation => r.operation = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::UserInfo => r.user_info = map.next_value::<Option<_>>()?.unwrap_or_default(),
                Field::Object => r.object = next_object(&mut map, &r.kind)?,
                Field::OldObject => r.old_object = next_object(&mut map, &r.kind)?,
                Field::NamespaceObject => r.namespace_object = map.next_value()?,
                Field::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(r)
    }
}

/// An object: a Pod when the review's kind, read before it, says so; raw otherwise.
fn next_object<'de: 'a, 'a, A: MapAccess<'de>>(
    map: &mut A,
    kind: &GroupVersionKind,
) -> Result<Option<Object<'a>>, A::Error> {
    if is_pod(kind) {
        Ok(map.next_value::<Option<Pod<'a>>>()?.map(|p| Object::Pod(Rc::new(p))))
    } else {
        Ok(map.next_value::<Option<&'a RawValue>>()?.map(Object::Raw))
    }
}

/// A Pod under review that was read raw (its kind came after it) is parsed now.
fn into_pod<'a>(object: Option<Object<'a>>, what: &str) -> Result<Option<Rc<Pod<'a>>>, String> {
    match object {
        None => Ok(None),
        Some(Object::Pod(pod)) => Ok(Some(pod)),
        Some(Object::Raw(raw)) => {
            parse_at(raw.get(), what).map(|p| Some(Rc::new(p))).map_err(|e| format!("malformed review: {e}"))
        }
    }
}

fn into_raw(object: Option<Object<'_>>) -> Option<&RawValue> {
    match object {
        Some(Object::Raw(raw)) => Some(raw),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    #[serde(default, deserialize_with = "nullable")]
    kind: GroupVersionKind,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    operation: String,
    #[serde(default, deserialize_with = "nullable")]
    user_info: UserInfo,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    namespace_object: Option<&'a RawValue>,
}

/// `null` reads as the default value.
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One evaluation's input: `{"review": ..., "parameters": ...}`. The review is
/// parsed once; with [`Request::with_settings`] the same parse serves every policy
/// of a batch.
#[derive(Clone)]
pub struct Request<'a> {
    review_json: &'a str,
    /// Shared by the copies [`Request::with_settings`] makes.
    review: Rc<Review<'a>>,
    parameters: Option<&'a str>,
    /// Set when a Pod's review was parsed with [`Request::parse_pod`]; shared by the
    /// copies [`Request::with_settings`] makes (one per policy of a batch).
    pod: Option<Rc<Pod<'a>>>,
    old_pod: Option<Rc<Pod<'a>>>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.review.kind)
            .field("name", &self.review.name)
            .field("namespace", &self.review.namespace)
            .field("operation", &self.review.operation)
            .finish_non_exhaustive()
    }
}

fn is_null(raw: &Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

impl<'a> Request<'a> {
    /// Parses the input document; objects are kept as raw JSON slices of `input`.
    pub fn parse(input: &'a str) -> Result<Request<'a>, String> {
        let (review, parameters) = split(input)?;
        Ok(Request::parse_review(review)?.with_settings_raw(parameters))
    }

    /// Parses the input of a [`crate::Policy::PARSE_PODS`] policy: a Pod under review
    /// (object and old object) becomes a [`Pod`] in the same pass. [`Request::pod`] and
    /// [`Request::old_pod`] then return it and the raw-object accessors
    /// ([`Request::object`], [`Request::old_object`], [`Request::object_json`]) see
    /// no object; objects of other kinds stay raw, as with [`Request::parse`].
    pub fn parse_pod(input: &'a str) -> Result<Request<'a>, String> {
        let (review, parameters) = split(input)?;
        Ok(Request::parse_pod_review(review)?.with_settings_raw(parameters))
    }

    /// Parses the `review` part alone (what `evaluate-batch` receives); settings come
    /// with [`Request::with_settings`].
    pub fn parse_review(review: &'a str) -> Result<Request<'a>, String> {
        let parsed: Review<'a> = parse_at(review, "review").map_err(|e| format!("malformed review: {e}"))?;
        Ok(Request { review_json: review, review: Rc::new(parsed), parameters: None, pod: None, old_pod: None })
    }

    /// [`Request::parse_review`] for a [`crate::Policy::PARSE_PODS`] policy (see
    /// [`Request::parse_pod`]).
    pub fn parse_pod_review(review: &'a str) -> Result<Request<'a>, String> {
        let r: PodReview<'a> = parse_at(review, "review").map_err(|e| format!("malformed review: {e}"))?;
        let (pod, old_pod, object, old_object) = if is_pod(&r.kind) {
            (into_pod(r.object, "review.object")?, into_pod(r.old_object, "review.oldObject")?, None, None)
        } else {
            (None, None, into_raw(r.object), into_raw(r.old_object))
        };
        Ok(Request {
            review_json: review,
            review: Rc::new(Review {
                kind: r.kind,
                name: r.name,
                namespace: r.namespace,
                operation: r.operation,
                user_info: r.user_info,
                object,
                old_object,
                namespace_object: r.namespace_object,
            }),
            parameters: None,
            pod,
            old_pod,
        })
    }

    /// The same review with another policy's settings (JSON text).
    pub fn with_settings(&self, settings: &'a str) -> Request<'a> {
        self.clone().with_settings_raw(Some(settings))
    }

    fn with_settings_raw(mut self, settings: Option<&'a str>) -> Request<'a> {
        self.parameters = settings;
        self
    }

    /// The `review` part of the input as the host sent it, for a policy that needs
    /// fields the parsed accessors leave out.
    pub fn review_json(&self) -> &'a str {
        self.review_json
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        match self.review.operation.as_str() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => Operation::Scan,
        }
    }

    /// Kind of the object under review.
    pub fn kind(&self) -> &GroupVersionKind {
        &self.review.kind
    }

    /// Name of the object.
    pub fn name(&self) -> &str {
        &self.review.name
    }

    /// Namespace of the object (empty for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        &self.review.namespace
    }

    /// The requesting user (empty in scan mode).
    pub fn user_info(&self) -> &UserInfo {
        &self.review.user_info
    }

    /// The object (`None` for DELETE), deserialised as `T`: a lean struct of the fields
    /// the policy reads, or a full `k8s-openapi` type.
    pub fn object<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        raw_as(&self.review.object, "review.object")
    }

    /// The previous object (UPDATE, DELETE).
    pub fn old_object<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        raw_as(&self.review.old_object, "review.oldObject")
    }

    /// The object's Namespace, when the host knows it.
    pub fn namespace_object<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        raw_as(&self.review.namespace_object, "review.namespaceObject")
    }

    /// The raw JSON of the object, for policies that scan it themselves.
    pub fn object_json(&self) -> Option<&'a str> {
        self.review.object.filter(|r| r.get() != "null").map(RawValue::get)
    }

    /// The previous object as a Pod (UPDATE, DELETE), when it is one.
    pub fn old_pod(&self) -> Result<Option<Pod<'a>>, String> {
        if !is_pod(&self.review.kind) {
            return Ok(None);
        }
        if self.pod.is_some() || self.old_pod.is_some() {
            return Ok(self.old_pod.as_deref().cloned());
        }
        match self.review.old_object.filter(|r| r.get() != "null") {
            None => Ok(None),
            Some(raw) => {
                parse_at(raw.get(), "review.oldObject").map(Some).map_err(|e| format!("malformed review: {e}"))
            }
        }
    }

    /// The object as a Pod (security-relevant fields, the rest parsed on demand),
    /// when it is one. The Pod borrows from the input.
    pub fn pod(&self) -> Result<Option<Pod<'a>>, String> {
        Ok(self.shared_pod()?.map(Rc::unwrap_or_clone))
    }

    /// [`Request::pod`] without a copy: after [`Request::parse_pod`] every policy of a
    /// batch reads the same parsed Pod.
    pub fn shared_pod(&self) -> Result<Option<Rc<Pod<'a>>>, String> {
        if !is_pod(&self.review.kind) {
            return Ok(None);
        }
        if let Some(pod) = &self.pod {
            return Ok(Some(pod.clone()));
        }
        match self.object_json() {
            None => Ok(None),
            Some(text) => {
                parse_at(text, "review.object").map(|p| Some(Rc::new(p))).map_err(|e| format!("malformed review: {e}"))
            }
        }
    }

    /// The policy's settings (`parameters`) as `T`; `{}` when none were given.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, String> {
        let raw = self.parameters.unwrap_or("{}");
        serde_json::from_str(raw).map_err(|e| format!("invalid settings: {e}"))
    }
}

/// Parses `text` (found at `at` in the input) as `T`. The fast path does not track
/// where it is; on failure the text is parsed again with the path tracked, so the
/// error names the field that broke (`review.object.spec.containers[0].image: invalid
/// type: integer `5`, expected a string`), not a column of the host's serialisation.
fn parse_at<'a, T: Deserialize<'a>>(text: &'a str, at: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|first| {
        let de = &mut serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { at.to_string() } else { format!("{at}.{path}") };
                format!("{field}: {}", without_position(e.inner()))
            }
            Ok(_) => format!("{at}: {}", without_position(&first)),
        }
    })
}

/// serde_json's message without its " at line L column C" (a position in the host's
/// serialisation, which the user never sees).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => text[..i].to_string(),
        _ => text,
    }
}

/// Splits an input document into its raw `review` and `parameters`.
fn split(input: &str) -> Result<(&str, Option<&str>), String> {
    let parts: Input<'_> =
        serde_json::from_str(input).map_err(|e| format!("input is not a Palisade evaluation document: {e}"))?;
    Ok((parts.review.get(), parts.parameters.map(RawValue::get)))
}

fn raw_as<T: DeserializeOwned>(raw: &Option<&RawValue>, what: &str) -> Result<Option<T>, String> {
    if is_null(raw) {
        return Ok(None);
    }
    let text = raw.map(RawValue::get).unwrap_or("null");
    serde_json::from_str(text).map(Some).map_err(|e| format!("{what} is not of the expected shape: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lazily() {
        let input = r#"{"review": {"kind": {"group": "", "version": "v1", "kind": "Pod"}, "name": "p", "namespace": "n",
            "operation": "UPDATE", "userInfo": {"username": "alice"}, "object": {"metadata": {"name": "p"}, "spec": {"hostPID": true, "containers": []}},
            "oldObject": null}, "parameters": {"limit": 3}}"#;
        let r = Request::parse(input).unwrap();
        assert_eq!(r.operation(), Operation::Update);
        assert_eq!(r.user_info().username, "alice");
        assert_eq!(r.pod().unwrap().unwrap().spec.host_pid, Some(true));
        assert!(r.old_object::<serde_json::Value>().unwrap().is_none());
        #[derive(Deserialize)]
        struct S {
            limit: u32,
        }
        assert_eq!(r.settings::<S>().unwrap().limit, 3);
        assert!(Request::parse("{}").is_err());
    }

    #[test]
    fn parse_pods_reads_pods_in_one_pass_and_other_kinds_raw() {
        let pod = r#"{"kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "n", "operation": "CREATE",
            "object": {"metadata": {"name": "p"}, "spec": {"hostPID": true, "containers": []}}, "oldObject": null}"#;
        let r = Request::parse_pod_review(pod).unwrap();
        assert_eq!(r.shared_pod().unwrap().unwrap().spec.host_pid, Some(true));
        assert_eq!(r.object_json(), None);
        assert!(r.old_pod().unwrap().is_none());

        let cm = r#"{"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "name": "c", "extra": [1, {"a": null}],
            "object": {"metadata": {"name": "c"}, "data": {"k": "v"}}}"#;
        let r = Request::parse_pod_review(cm).unwrap();
        assert!(r.pod().unwrap().is_none());
        let data: serde_json::Value = r.object().unwrap().unwrap();
        assert_eq!(data["data"]["k"], "v");
        assert_eq!(r.name(), "c");

        // A host that writes the kind after the object: the Pod is parsed afterwards.
        let late = r#"{"object": {"spec": {"hostIPC": true}}, "kind": {"kind": "Pod"}}"#;
        let r = Request::parse_pod_review(late).unwrap();
        assert_eq!(r.pod().unwrap().unwrap().spec.host_ipc, Some(true));
        let bad = r#"{"object": {"spec": 3}, "kind": {"kind": "Pod"}}"#;
        let e = Request::parse_pod_review(bad).unwrap_err();
        assert!(e.starts_with("malformed review: review.object.spec: invalid type: integer `3`"), "{e}");
        let e = Request::parse_pod_review("[1]").unwrap_err();
        assert!(e.starts_with("malformed review: review: invalid type: sequence"), "{e}");
        // A field of the wrong type is named by its path, wherever the kind is written.
        let image = r#"{"kind": {"kind": "Pod"}, "object": {"spec": {"containers": [{"name": "c", "image": 5}]}}}"#;
        let late = r#"{"object": {"spec": {"containers": [{"name": "c", "image": 5}]}}, "kind": {"kind": "Pod"}}"#;
        for review in [image, late] {
            let e = Request::parse_pod_review(review).unwrap_err();
            assert!(e.contains("review.object.spec.containers[0].image: invalid type: integer `5`, expected"), "{e}");
            assert!(!e.contains(" at line "), "{e}");
        }
    }
}
