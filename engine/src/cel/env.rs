//! The CEL environment palisade evaluates expressions in: the `cel` crate's standard
//! library, the Kubernetes library from `kube-cel`, and the parts of Kubernetes' CEL
//! that neither has ([`super::ext`]). Owns parsing ([`compile`]), the check that every
//! function an expression calls exists (so a missing function is a load error, never
//! a silent pass), JSON → CEL conversion, and error texts in the API server's words.

use std::collections::BTreeSet;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map};
use cel::parser::{Expression, Parser};
use cel::{Context, ExecutionError, Value as CelValue};
use kube_cel::KubeCelExt;
use serde_json::Value;

/// A parsed expression and its source text.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub source: String,
    pub expr: Expression,
}

thread_local! {
    /// The root context: every function, no variables. Built once per thread (the
    /// `cel` context is not `Sync`); evaluations run in child scopes of it.
    static BASE: Context<'static> = {
        let mut ctx = Context::default().with_all();
        super::ext::register(&mut ctx);
        super::authz::register(&mut ctx);
        ctx
    };
}

/// Runs `f` with a fresh child scope of this thread's root context.
pub(crate) fn with_scope<R>(f: impl FnOnce(Context<'_>) -> R) -> R {
    BASE.with(|base| f(base.new_inner_scope()))
}

/// Parses `source` (optional syntax `?.`/`[?]` on) and checks that every function it
/// calls exists. The error says which function is missing, or where parsing failed.
pub(crate) fn compile(source: &str) -> Result<Compiled, String> {
    let mut expr = Parser::new()
        .enable_optional_syntax(true)
        .parse(source)
        .map_err(|e| format!("does not compile: {}", e.to_string().trim()))?;
    super::ext::optional_select(&mut expr);
    let mut calls = BTreeSet::new();
    collect_calls(&expr, &mut calls);
    if calls.iter().any(|(name, _)| name == STRUCT) {
        return Err("uses a message (struct) literal, which palisade's CEL evaluator does not implement".into());
    }
    if let Some(missing) = calls.iter().find(|(name, target)| name != STRUCT && !is_known(name, target.as_deref())) {
        let name = match &missing.1 {
            Some(t) if !t.is_empty() => format!("{t}.{}", missing.0),
            _ => missing.0.clone(),
        };
        return Err(format!(
            "uses the function or macro `{name}`, which palisade's CEL evaluator does not implement (with its arguments as written)"
        ));
    }
    if let Some(name) = super::names::undeclared(&expr) {
        return Err(format!(
            "uses the undeclared identifier `{name}` (the variables are object, oldObject, request, params, namespaceObject, variables and authorizer)"
        ));
    }
    Ok(Compiled { source: source.to_string(), expr })
}

/// Every call in `expr`: (function name, the identifier it is called on, if any).
fn collect_calls(e: &Expression, out: &mut BTreeSet<(String, Option<String>)>) {
    match &e.expr {
        Expr::Call(call) if !is_operator(&call.func_name) => {
            let target = call.target.as_deref().map(|t| match &t.expr {
                Expr::Ident(name) => name.clone(),
                _ => String::new(),
            });
            out.insert((call.func_name.clone(), target));
        }
        Expr::Struct(_) => {
            out.insert((STRUCT.to_string(), None));
        }
        _ => {}
    }
    children(e).into_iter().for_each(|c| collect_calls(c, out));
}

/// The direct subexpressions of `e` (a call's target first, then its arguments; a
/// map's keys and values; a comprehension's parts), for the walks over parsed expressions.
pub(crate) fn children(e: &Expression) -> Vec<&Expression> {
    match &e.expr {
        Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(|x| entry(&x.expr)).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(|x| entry(&x.expr)).collect(),
        Expr::Select(s) => vec![&s.operand],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
    }
}

fn entry(e: &EntryExpr) -> Vec<&Expression> {
    match e {
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

/// Operators (`_+_`, `@in`, `!_`, …) are built into the interpreter.
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name.ends_with('_')
}

const PROBE: &str = "palisade__probe__";
/// Marks a struct literal among the calls of an expression.
const STRUCT: &str = "{struct}";

/// Whether the interpreter would find `name`: a call of it whose argument is an
/// undeclared identifier fails on that identifier when the function exists, and on
/// the function's own name when it does not. Nothing is computed.
pub(crate) fn is_known(name: &str, target: Option<&str>) -> bool {
    let source = match target {
        Some(t) if !t.is_empty() => format!("{t}.{name}({PROBE})"),
        Some(_) => format!("{PROBE}.{name}({PROBE})"),
        None => format!("{name}({PROBE})"),
    };
    let Ok(expr) = Parser::new().parse(&source) else { return false };
    with_scope(|ctx| match ctx.resolve(&expr) {
        Err(ExecutionError::UndeclaredReference(r)) => r.as_str() != name,
        _ => true,
    })
}

/// A JSON value as CEL sees it: integers are `int` (as in Kubernetes, where JSON
/// numbers without a fraction are int64), other numbers `double`.
pub(crate) fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => CelValue::Map(Map {
            map: Arc::new(o.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect()),
        }),
    }
}

/// A CEL value as JSON (for tests); opaque values as text.
#[cfg(test)]
pub(crate) fn to_json(v: &CelValue) -> Value {
    match v {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        CelValue::String(s) => Value::String(s.to_string()),
        CelValue::List(l) => Value::Array(l.iter().map(to_json).collect()),
        CelValue::Map(m) => Value::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

/// An evaluation error in the words of the API server's CEL (cel-go), so that
/// messages agree with kube-apiserver's where the cause is the same.
pub(crate) fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload => "no such overload".into(),
        ExecutionError::UndeclaredReference(r) => format!("undeclared reference to '{r}'"),
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or(text)
        }
    }
}
