//! What a test case evaluates: its objects (inline, or documents of a file in the
//! bundle, relative to the test file) and, for a case with an `operation`, the
//! AdmissionRequest around them.

use serde_json::{Value, json};

use crate::bundle::Bundle;
use crate::documents::{Documents, Format};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::object::Gvk;

pub(super) fn admission_input(
    ctx: &str,
    op: &str,
    object: &Value,
    old: Option<&Value>,
    user: Option<&Value>,
) -> Result<Input> {
    let operation = crate::matching::Operation::parse(op).ok_or_else(|| {
        Error::input(ctx, format!("operation: expected CREATE, UPDATE, DELETE or CONNECT, got {op:?}"))
    })?;
    let gvk = Gvk::of(object).ok_or_else(|| Error::input(ctx, "object: expected apiVersion and kind"))?;
    let delete = operation == crate::matching::Operation::Delete;
    let request = json!({
        "uid": "palisade-test",
        "kind": gvk.to_json(),
        "resource": gvk.resource_json(),
        "name": crate::object::name(object).unwrap_or_default(),
        "namespace": crate::object::namespace(object).unwrap_or_default(),
        "operation": operation.as_str(),
        "userInfo": user.cloned().unwrap_or_else(|| json!({"username": "palisade-test", "groups": ["system:authenticated"]})),
        "object": if delete { Value::Null } else { object.clone() },
        "oldObject": if delete { old.cloned().unwrap_or_else(|| object.clone()) } else { old.cloned().unwrap_or(Value::Null) },
        "dryRun": false,
        "options": Value::Null,
    });
    Input::from_admission_request(request)
}

pub(super) fn one_object(
    bundle: &Bundle,
    dir: &str,
    ctx: &str,
    key: &str,
    inline: Option<&Value>,
    file: Option<&str>,
    document: Option<usize>,
) -> Result<Option<Value>> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Error::input(ctx, format!("give either `{key}` or `{key}_file`, not both"))),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, None) => Ok(None),
        (None, Some(f)) => {
            let mut objects = objects_in(bundle, dir, ctx, f)?;
            match document {
                Some(n) if n >= 1 && n <= objects.len() => Ok(Some(objects.swap_remove(n - 1))),
                Some(n) => {
                    Err(Error::input(ctx, format!("{key}_file {f} has {} document(s), no document {n}", objects.len())))
                }
                None if objects.len() == 1 => Ok(objects.pop()),
                None => Err(Error::input(
                    ctx,
                    format!("{key}_file {f} holds {} objects: pick one with `document: N`", objects.len()),
                )),
            }
        }
    }
}

pub(super) fn objects_in(bundle: &Bundle, dir: &str, ctx: &str, file: &str) -> Result<Vec<Value>> {
    let path = if dir.is_empty() { file.to_string() } else { format!("{dir}/{file}") };
    let text = bundle.file(&path).and_then(|b| std::str::from_utf8(b).ok()).ok_or_else(|| {
        Error::input(ctx, format!("file {path} does not exist in the bundle (paths are relative to the test file)"))
    })?;
    let mut docs = Documents::default();
    docs.parse_text(&path, text, Format::Detect);
    if let Some(e) = docs.errors.into_iter().next() {
        return Err(e);
    }
    Ok(docs.documents.into_iter().map(|d| d.value).collect())
}
