//! Parts of Kubernetes' CEL environment that neither the `cel` crate nor `kube-cel`
//! has, written against the `cel` crate's public function API so they could move
//! upstream: `cel.bind`, `sortBy`, and the two-variable comprehensions of cel-go's
//! `ext.TwoVarComprehensions` (`all`, `exists`, `existsOne` with two variables,
//! `transformList`, `transformMap`). They receive their arguments unevaluated, like
//! macros, and evaluate them in child scopes.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, operators};
use cel::objects::{Key, Map, OptionalValue};
use cel::parser::Expression;
use cel::{Context, ExecutionError, FunctionContext, Value};

type Result<T> = std::result::Result<T, ExecutionError>;

/// Adds the functions of this module to a root context.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("cel.bind", bind);
    ctx.add_function("sortBy", sort_by);
    ctx.add_function("all", all);
    ctx.add_function("exists", exists);
    ctx.add_function("existsOne", exists_one);
    ctx.add_function("exists_one", exists_one);
    ctx.add_function("transformList", transform_list);
    ctx.add_function("transformMap", transform_map);
    ctx.add_function(OPTIONAL_SELECT, optional_select_fn);
    ctx.add_function(SELECT, select_fn);
}

/// `x.?field` as the CEL spec says: `optional.none()` when the field is absent or `x`
/// is none, `optional.of(x.field)` otherwise. (The `cel` crate's interpreter fails with
/// "no such key" on a plain map and nests optionals when `x` is one.) Every `x.?field`
/// of a parsed expression is rewritten to call this.
pub(crate) const OPTIONAL_SELECT: &str = "__palisade_optional_select";

fn optional_select_fn(ftx: &FunctionContext, operand: Value, field: Arc<String>) -> Result<Value> {
    if ftx.this.is_some() {
        return Err(ftx.error("unsupported function"));
    }
    let none = || Value::Opaque(Arc::new(OptionalValue::none()));
    let inner = match <&OptionalValue>::try_from(&operand) {
        Ok(o) => match o.value() {
            Some(v) => v.clone(),
            None => return Ok(none()),
        },
        Err(_) => operand,
    };
    match inner {
        Value::Map(m) => Ok(m
            .map
            .get(&Key::String(field))
            .map_or_else(none, |v| Value::Opaque(Arc::new(OptionalValue::of(v.clone()))))),
        _ => Err(ExecutionError::NoSuchOverload),
    }
}

/// `x.field` as in cel-go: a field of a map, else "no such key" (the `cel` crate's
/// interpreter gives `false` when `x` is not a map, e.g. `oldObject.data` on CREATE).
/// `has(x.field)` is left alone: it is false there in both. Only selections on the
/// variables that are null in ordinary requests ([`NULLABLE`]) go through this call: a
/// function call makes the `cel` crate copy its map argument, which on every selection
/// doubled the cost of a policy; a null deeper inside an object still selects as `false`.
pub(crate) const SELECT: &str = "__palisade_select";

/// The variables that are null for some requests: `oldObject` on CREATE,
/// `namespaceObject` for cluster-scoped objects, `params` without parameters.
const NULLABLE: &[&str] = &["oldObject", "namespaceObject", "params"];

fn select_fn(ftx: &FunctionContext, operand: Value, field: Arc<String>) -> Result<Value> {
    if ftx.this.is_some() {
        return Err(ftx.error("unsupported function"));
    }
    match operand {
        Value::Map(m) => m.map.get(&Key::String(field.clone())).cloned().ok_or(ExecutionError::NoSuchKey(field)),
        _ => Err(ExecutionError::NoSuchKey(field)),
    }
}

/// Rewrites every `x.field` (see [`SELECT`]) and `x.?field` (see [`OPTIONAL_SELECT`])
/// of a parsed expression, and `authorizer.requestResource` (see [`super::authz::rewrite`]).
pub(crate) fn optional_select(e: &mut Expression) {
    super::authz::rewrite(e);
    if let Expr::Select(s) = &mut e.expr
        && !s.test
        && matches!(&s.operand.expr, Expr::Ident(n) if NULLABLE.contains(&n.as_str()))
    {
        let operand = std::mem::take(&mut *s.operand);
        let field = Expression { id: e.id, expr: Expr::Literal(LiteralValue::String(s.field.as_str().into())) };
        e.expr = Expr::Call(CallExpr { func_name: SELECT.into(), target: None, args: vec![operand, field] });
    }
    match &mut e.expr {
        Expr::Call(call) => {
            if call.func_name == operators::OPT_SELECT {
                call.func_name = OPTIONAL_SELECT.into();
            }
            call.target.iter_mut().for_each(|t| optional_select(t));
            call.args.iter_mut().for_each(optional_select);
        }
        Expr::Comprehension(c) => {
            for part in [&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result] {
                optional_select(part);
            }
        }
        Expr::List(l) => l.elements.iter_mut().for_each(optional_select),
        Expr::Map(m) => m.entries.iter_mut().for_each(|x| optional_entry(&mut x.expr)),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|x| optional_entry(&mut x.expr)),
        Expr::Select(s) => optional_select(&mut s.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn optional_entry(e: &mut EntryExpr) {
    match e {
        EntryExpr::MapEntry(m) => {
            optional_select(&mut m.key);
            optional_select(&mut m.value);
        }
        EntryExpr::StructField(f) => optional_select(&mut f.value),
    }
}

fn ident<'a>(ftx: &FunctionContext, e: &'a Expression) -> Result<&'a str> {
    match &e.expr {
        Expr::Ident(name) => Ok(name),
        _ => Err(ftx.error("expected a variable name")),
    }
}

/// `cel.bind(name, init, expression)`.
fn bind(ftx: &FunctionContext) -> Result<Value> {
    let [var, init, body] = ftx.args else {
        return Err(ftx.error("expected cel.bind(name, init, expression)"));
    };
    let name = ident(ftx, var)?;
    let value = ftx.ptx.resolve(init)?;
    let mut scope = ftx.ptx.new_inner_scope();
    scope.add_variable_from_value(name, value);
    scope.resolve(body)
}

fn this<'a>(ftx: &'a FunctionContext) -> Result<&'a Value> {
    ftx.this.as_ref().ok_or_else(|| ftx.error("must be called on a list or map"))
}

/// `list.sortBy(e, key)`: the list sorted by `key` (stable).
fn sort_by(ftx: &FunctionContext) -> Result<Value> {
    let [var, key] = ftx.args else {
        return Err(ftx.error("expected list.sortBy(name, key)"));
    };
    let Value::List(list) = this(ftx)? else {
        return Err(ftx.error("must be called on a list"));
    };
    let name = ident(ftx, var)?;
    let mut keyed = Vec::with_capacity(list.len());
    for item in list.iter() {
        let mut scope = ftx.ptx.new_inner_scope();
        scope.add_variable_from_value(name, item.clone());
        keyed.push((scope.resolve(key)?, item.clone()));
    }
    let mut failed = false;
    keyed.sort_by(|a, b| {
        a.0.partial_cmp(&b.0).unwrap_or_else(|| {
            failed = true;
            Ordering::Equal
        })
    });
    if failed {
        return Err(ExecutionError::NoSuchOverload);
    }
    Ok(Value::List(Arc::new(keyed.into_iter().map(|(_, v)| v).collect())))
}

fn key_value(k: &Key) -> Value {
    match k {
        Key::Int(i) => Value::Int(*i),
        Key::Uint(u) => Value::UInt(*u),
        Key::Bool(b) => Value::Bool(*b),
        Key::String(s) => Value::String(s.clone()),
    }
}

/// (index, element) of a list or (key, value) of a map.
fn entries(ftx: &FunctionContext) -> Result<Vec<(Value, Value)>> {
    match this(ftx)? {
        Value::List(l) => Ok(l.iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v.clone())).collect()),
        Value::Map(m) => Ok(m.map.iter().map(|(k, v)| (key_value(k), v.clone())).collect()),
        _ => Err(ftx.error("must be called on a list or map")),
    }
}

/// Evaluates `body` with the two variables bound, for each entry.
fn each(ftx: &FunctionContext, names: &[Expression], body: &[&Expression]) -> Result<Vec<Vec<Result<Value>>>> {
    let [a, b] = names else {
        return Err(ftx.error("expected two variable names"));
    };
    let (a, b) = (ident(ftx, a)?, ident(ftx, b)?);
    let mut out = Vec::new();
    for (k, v) in entries(ftx)? {
        let mut scope = ftx.ptx.new_inner_scope();
        scope.add_variable_from_value(a, k);
        scope.add_variable_from_value(b, v);
        out.push(body.iter().map(|e| scope.resolve(e)).collect());
    }
    Ok(out)
}

fn three_args<'a>(ftx: &'a FunctionContext) -> Result<(&'a [Expression], &'a Expression)> {
    match ftx.args {
        [_, _, body] => Ok((&ftx.args[..2], body)),
        _ => Err(ftx.error("expected (name, name, predicate)")),
    }
}

/// Logical AND over the results; an error counts only when nothing is false.
fn all(ftx: &FunctionContext) -> Result<Value> {
    quantifier(ftx, false)
}

/// Logical OR over the results; an error counts only when nothing is true.
fn exists(ftx: &FunctionContext) -> Result<Value> {
    quantifier(ftx, true)
}

/// `decisive` as soon as a result is it, else an error seen, else `!decisive`.
fn quantifier(ftx: &FunctionContext, decisive: bool) -> Result<Value> {
    let (names, pred) = three_args(ftx)?;
    let mut error = None;
    for mut r in each(ftx, names, &[pred])? {
        match r.remove(0) {
            Ok(Value::Bool(b)) if b == decisive => return Ok(Value::Bool(decisive)),
            Ok(Value::Bool(_)) => {}
            Ok(_) => error = Some(ExecutionError::NoSuchOverload),
            Err(e) => error = Some(e),
        }
    }
    error.map_or(Ok(Value::Bool(!decisive)), Err)
}

fn exists_one(ftx: &FunctionContext) -> Result<Value> {
    let (names, pred) = three_args(ftx)?;
    let mut count = 0;
    for mut r in each(ftx, names, &[pred])? {
        match r.remove(0)? {
            Value::Bool(true) => count += 1,
            Value::Bool(false) => {}
            _ => return Err(ExecutionError::NoSuchOverload),
        }
    }
    Ok(Value::Bool(count == 1))
}

/// The (filter, transform) arguments of `transformList`/`transformMap`.
fn transform_args<'a>(ftx: &'a FunctionContext) -> Result<(&'a [Expression], Vec<&'a Expression>)> {
    match ftx.args {
        [_, _, t] => Ok((&ftx.args[..2], vec![t])),
        [_, _, f, t] => Ok((&ftx.args[..2], vec![f, t])),
        _ => Err(ftx.error("expected (name, name, [filter,] expression)")),
    }
}

/// Applies the optional filter; `Some(value)` for entries that pass.
fn filtered(mut r: Vec<Result<Value>>) -> Result<Option<Value>> {
    let value = r.pop().unwrap_or(Ok(Value::Null));
    match r.pop() {
        None => value.map(Some),
        Some(filter) => match filter? {
            Value::Bool(true) => value.map(Some),
            Value::Bool(false) => Ok(None),
            _ => Err(ExecutionError::NoSuchOverload),
        },
    }
}

fn transform_list(ftx: &FunctionContext) -> Result<Value> {
    let (names, body) = transform_args(ftx)?;
    let mut out = Vec::new();
    for r in each(ftx, names, &body)? {
        out.extend(filtered(r)?);
    }
    Ok(Value::List(Arc::new(out)))
}

fn transform_map(ftx: &FunctionContext) -> Result<Value> {
    let (names, body) = transform_args(ftx)?;
    let keys: Vec<Value> = entries(ftx)?.into_iter().map(|(k, _)| k).collect();
    let mut out = HashMap::new();
    for (k, r) in keys.into_iter().zip(each(ftx, names, &body)?) {
        if let Some(v) = filtered(r)? {
            let key: Key = k.try_into().map_err(ExecutionError::UnsupportedKeyType)?;
            out.insert(key, v);
        }
    }
    Ok(Value::Map(Map { map: Arc::new(out) }))
}
