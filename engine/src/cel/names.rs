//! Identifiers an expression uses that nothing declares, found at load as the API
//! server's type checker finds them: `objet.spec` is a load error, never a runtime
//! error that `failurePolicy: Ignore` would silently let pass.

use cel::common::ast::Expr;
use cel::parser::Expression;

/// The variables of the environment, and the type names CEL lets expressions name.
const DECLARED: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "variables",
    "authorizer",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// Identifiers that qualify function names (`sets.contains`, `cel.bind`, `optional.of`).
const NAMESPACES: &[&str] =
    &["cel", "math", "sets", "strings", "base64", "lists", "format", "ip", "optional", "jsonpatch"];

/// The first identifier of `e` that is neither a variable of the environment, a
/// variable a comprehension or macro binds, nor a function namespace.
pub(crate) fn undeclared(e: &Expression) -> Option<String> {
    walk(e, &mut Vec::new())
}

fn walk(e: &Expression, scope: &mut Vec<String>) -> Option<String> {
    match &e.expr {
        Expr::Ident(n) => {
            (!n.starts_with('@') && !DECLARED.contains(&n.as_str()) && !scope.contains(n)).then(|| n.clone())
        }
        Expr::Call(call) => {
            let namespace = call
                .target
                .as_deref()
                .is_some_and(|t| matches!(&t.expr, Expr::Ident(n) if NAMESPACES.contains(&n.as_str())));
            if let Some(t) = call.target.as_deref().filter(|_| !namespace)
                && let Some(found) = walk(t, scope)
            {
                return Some(found);
            }
            // The functions of `super::ext` bind their leading identifier arguments.
            let binds = match call.func_name.as_str() {
                "bind" if namespace => 1,
                "sortBy" => 1,
                "all" | "exists" | "existsOne" | "exists_one" | "transformList" | "transformMap"
                    if call.args.len() >= 3 =>
                {
                    2
                }
                _ => 0,
            };
            let depth = scope.len();
            let mut found = None;
            for (i, a) in call.args.iter().enumerate() {
                match &a.expr {
                    Expr::Ident(n) if i < binds => scope.push(n.clone()),
                    _ => found = found.or_else(|| walk(a, scope)),
                }
            }
            scope.truncate(depth);
            found
        }
        Expr::Comprehension(c) => {
            let outer = walk(&c.iter_range, scope).or_else(|| walk(&c.accu_init, scope));
            let depth = scope.len();
            scope.extend([Some(&c.iter_var), c.iter_var2.as_ref(), Some(&c.accu_var)].into_iter().flatten().cloned());
            let inner =
                outer.or_else(|| [&c.loop_cond, &c.loop_step, &c.result].into_iter().find_map(|p| walk(p, scope)));
            scope.truncate(depth);
            inner
        }
        _ => super::env::children(e).into_iter().find_map(|c| walk(c, scope)),
    }
}
