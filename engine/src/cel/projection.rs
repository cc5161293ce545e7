//! Which parts of the object an engine's CEL expressions can read, found once at load,
//! so that each evaluation converts only those parts of the JSON to CEL values (a
//! single-validation policy on a 5 KB Deployment reads one field of it).
//!
//! A field is left out only when no expression names it and none uses its parent as a
//! whole value (iterates it, passes it to a function, compares it, takes its size):
//! such a parent, or any path used as a value, is converted whole. What an expression
//! can observe is therefore the same as with the whole object.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::Value as CelValue;
use cel::common::ast::{Expr, LiteralValue, operators};
use cel::objects::{Key, Map};
use cel::parser::Expression;
use serde_json::Value;

use super::env::{children, to_cel};
use super::ext::{OPTIONAL_SELECT, SELECT};

/// The variables bound from the request; the others (`params`, `variables`) are
/// converted whole or computed.
pub(crate) const ROOTS: [&str; 4] = ["object", "oldObject", "request", "namespaceObject"];

/// The fields read under one value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Paths {
    whole: bool,
    fields: BTreeMap<String, Paths>,
}

impl Paths {
    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.fields.entry(first.clone()).or_default().insert(rest),
        }
    }

    fn merge(&mut self, other: &Paths) {
        self.whole |= other.whole;
        for (k, v) in &other.fields {
            self.fields.entry(k.clone()).or_default().merge(v);
        }
    }

    /// `v` with only the read parts, as a CEL value.
    pub(crate) fn project(&self, v: &Value) -> CelValue {
        match v {
            Value::Object(o) if !self.whole => CelValue::Map(Map {
                map: Arc::new(
                    self.fields
                        .iter()
                        .filter_map(|(k, p)| o.get(k).map(|v| (Key::String(Arc::new(k.clone())), p.project(v))))
                        .collect(),
                ),
            }),
            _ => to_cel(v),
        }
    }
}

/// What the expressions read, by root variable; an absent root is never read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reads(BTreeMap<String, Paths>);

impl Reads {
    /// Adds what `e` reads.
    pub(crate) fn add(&mut self, e: &Expression) {
        if let Some((root, path)) = path_of(e) {
            if ROOTS.contains(&root.as_str()) {
                self.0.entry(root).or_default().insert(&path);
            }
            return;
        }
        // A comprehension variable that shadows a root makes this analysis moot for it.
        if let Expr::Comprehension(c) = &e.expr {
            for var in [Some(&c.iter_var), c.iter_var2.as_ref(), Some(&c.accu_var)].into_iter().flatten() {
                if ROOTS.contains(&var.as_str()) {
                    self.0.entry(var.clone()).or_default().whole = true;
                }
            }
        }
        children(e).into_iter().for_each(|c| self.add(c));
    }

    /// Adds everything `other` reads.
    pub(crate) fn merge(&mut self, other: &Reads) {
        for (root, paths) in &other.0 {
            self.0.entry(root.clone()).or_default().merge(paths);
        }
    }

    /// What is read under `root`, if anything.
    pub(crate) fn root(&self, root: &str) -> Option<&Paths> {
        self.0.get(root)
    }
}

/// `root.a.b` (also `root.?a`, `root['a']`) as (root, [a, b]).
fn path_of(e: &Expression) -> Option<(String, Vec<String>)> {
    match &e.expr {
        Expr::Ident(name) => Some((name.clone(), Vec::new())),
        Expr::Select(s) => path_of(&s.operand).map(|(r, mut p)| {
            p.push(s.field.clone());
            (r, p)
        }),
        Expr::Call(call)
            if call.target.is_none()
                && call.args.len() == 2
                && (call.func_name == OPTIONAL_SELECT
                    || call.func_name == SELECT
                    || call.func_name == operators::INDEX
                    || call.func_name == operators::OPT_INDEX) =>
        {
            let Expr::Literal(LiteralValue::String(field)) = &call.args[1].expr else { return None };
            path_of(&call.args[0]).map(|(r, mut p)| {
                p.push(field.inner().to_string());
                (r, p)
            })
        }
        _ => None,
    }
}
