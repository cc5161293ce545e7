//! The `authorizer` variable of ValidatingAdmissionPolicies, answered offline from the
//! RBAC objects (Roles, ClusterRoles and their bindings) in the inventory, with
//! Kubernetes' RBAC rules: `authorizer.group(g).resource(r)[.subresource(s)]
//! [.namespace(n)][.name(x)].check(verb)`, `authorizer.path(p).check(verb)`,
//! `authorizer.serviceAccount(ns, name)`, `authorizer.requestResource`, and on the
//! decision `allowed()`, `reason()`, `errored()`, `error()`. Without RBAC objects in the
//! inventory the policy fails with "not available offline" instead.

use std::sync::Arc;

use cel::common::ast::Expr;
use cel::objects::Opaque;
use cel::parser::Expression;
use cel::{Context, ExecutionError, FunctionContext, Value};
use serde_json::Value as Json;

use crate::inventory::Inventory;

type Result<T> = std::result::Result<T, ExecutionError>;

/// A role's rules, and who it is bound to where.
#[derive(Debug, Default)]
pub(crate) struct Rbac {
    /// (namespace of the binding, or None for a ClusterRoleBinding; binding description;
    /// subjects; rules of the role it refers to).
    grants: Vec<Grant>,
}

#[derive(Debug)]
struct Grant {
    namespace: Option<String>,
    via: String,
    subjects: Vec<Json>,
    rules: Vec<Json>,
}

impl Rbac {
    /// The RBAC of the inventory, or None when it holds no Role, ClusterRole or binding.
    pub(crate) fn from_inventory(inventory: &Inventory) -> Option<Rbac> {
        let doc = inventory.group_json("rbac.authorization.k8s.io/v1");
        let cluster = &doc["cluster"];
        let cluster_role = |name: &str| cluster["ClusterRole"].get(name).map(rules);
        let mut rbac = Rbac::default();
        let mut any = cluster.as_object().is_some_and(|o| !o.is_empty());
        for (name, b) in cluster["ClusterRoleBinding"].as_object().into_iter().flatten() {
            let role = b["roleRef"]["name"].as_str().unwrap_or_default();
            rbac.grants.push(Grant {
                namespace: None,
                via: format!("ClusterRoleBinding {name:?} of ClusterRole {role:?}"),
                subjects: subjects(b),
                rules: cluster_role(role).unwrap_or_default(),
            });
        }
        for (ns, kinds) in doc["namespace"].as_object().into_iter().flatten() {
            any |= kinds.as_object().is_some_and(|o| !o.is_empty());
            for (name, b) in kinds["RoleBinding"].as_object().into_iter().flatten() {
                let (kind, role) = (
                    b["roleRef"]["kind"].as_str().unwrap_or_default(),
                    b["roleRef"]["name"].as_str().unwrap_or_default(),
                );
                let rules = if kind == "ClusterRole" { cluster_role(role) } else { kinds["Role"].get(role).map(rules) };
                rbac.grants.push(Grant {
                    namespace: Some(ns.clone()),
                    via: format!("RoleBinding \"{name}/{ns}\" of {kind} {role:?}"),
                    subjects: subjects(b),
                    rules: rules.unwrap_or_default(),
                });
            }
        }
        any.then_some(rbac)
    }

    /// Kubernetes RBAC: allowed when a binding that applies here grants the user a rule
    /// matching the request; the reason names it.
    fn decide(&self, user: &User, req: &Request) -> (bool, String) {
        // kube-apiserver's privileged-group authorizer runs before RBAC.
        if user.groups.iter().any(|g| g == "system:masters") {
            return (true, String::new());
        }
        for g in &self.grants {
            if g.namespace.is_some() && g.namespace != req.namespace {
                continue;
            }
            let Some(subject) = g.subjects.iter().find(|s| user.is(s, g.namespace.as_deref())) else { continue };
            if g.rules.iter().any(|r| rule_allows(r, req, g.namespace.is_none())) {
                return (true, format!("RBAC: allowed by {} to {}", g.via, describe(subject, g.namespace.as_deref())));
            }
        }
        (false, String::new())
    }
}

/// A subject as the RBAC authorizer names it in reasons.
fn describe(subject: &Json, binding_ns: Option<&str>) -> String {
    let s = |k: &str| subject[k].as_str().unwrap_or_default();
    match s("kind") {
        "ServiceAccount" => {
            let ns = subject["namespace"].as_str().or(binding_ns).unwrap_or_default();
            format!("ServiceAccount {:?}", format!("{}/{ns}", s("name")))
        }
        kind => format!("{kind} {:?}", s("name")),
    }
}

fn rules(role: &Json) -> Vec<Json> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

fn subjects(binding: &Json) -> Vec<Json> {
    binding["subjects"].as_array().cloned().unwrap_or_default()
}

fn has(list: &Json, value: &str) -> bool {
    list.as_array().is_some_and(|l| l.iter().any(|x| x == "*" || x == value))
}

fn rule_allows(rule: &Json, req: &Request, cluster_wide: bool) -> bool {
    if !has(&rule["verbs"], &req.verb) {
        return false;
    }
    if let Some(path) = &req.path {
        // Non-resource URLs are granted only through ClusterRoleBindings.
        return cluster_wide
            && rule["nonResourceURLs"].as_array().is_some_and(|urls| {
                urls.iter()
                    .filter_map(Json::as_str)
                    .any(|u| u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
            });
    }
    let combined =
        if req.subresource.is_empty() { req.resource.clone() } else { format!("{}/{}", req.resource, req.subresource) };
    let resource_ok = rule["resources"].as_array().is_some_and(|rs| {
        rs.iter().filter_map(Json::as_str).any(|r| {
            r == "*"
                || r == combined
                || (!req.subresource.is_empty() && r.strip_prefix("*/") == Some(req.subresource.as_str()))
        })
    });
    let names_ok = match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => req.name.as_ref().is_some_and(|n| names.iter().any(|x| x == n.as_str())),
        _ => true,
    };
    has(&rule["apiGroups"], &req.group) && resource_ok && names_ok
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    name: String,
    groups: Vec<String>,
}

impl User {
    fn is(&self, subject: &Json, binding_ns: Option<&str>) -> bool {
        let name = subject["name"].as_str().unwrap_or_default();
        match subject["kind"].as_str() {
            Some("User") => self.name == name,
            Some("Group") => self.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = subject["namespace"].as_str().or(binding_ns).unwrap_or_default();
                self.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Request {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    namespace: Option<String>,
    name: Option<String>,
    path: Option<String>,
}

/// Every value of the authorizer library: the authorizer, a check being built, a decision.
#[derive(Debug, Clone)]
struct Authz {
    rbac: Arc<Rbac>,
    user: User,
    request: Request,
    decision: Option<(bool, String)>,
}

impl PartialEq for Authz {
    fn eq(&self, other: &Authz) -> bool {
        Arc::ptr_eq(&self.rbac, &other.rbac)
            && self.user == other.user
            && self.request == other.request
            && self.decision == other.decision
    }
}

impl Eq for Authz {}

impl Opaque for Authz {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.authorization.Authorizer"
    }
}

/// The `authorizer` value for the request's user.
pub(crate) fn authorizer(rbac: &Arc<Rbac>, user_info: &Json, review: &Json) -> Value {
    let user = User {
        name: user_info["username"].as_str().unwrap_or_default().to_string(),
        groups: user_info["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
    };
    let s = |k: &str| review[k].as_str().unwrap_or_default().to_string();
    let request = Request {
        group: review["resource"]["group"].as_str().unwrap_or_default().to_string(),
        resource: review["resource"]["resource"].as_str().unwrap_or_default().to_string(),
        subresource: s("subResource"),
        namespace: Some(s("namespace")).filter(|n| !n.is_empty()),
        name: Some(s("name")).filter(|n| !n.is_empty()),
        ..Request::default()
    };
    wrap(Authz { rbac: rbac.clone(), user, request, decision: None })
}

fn wrap(a: Authz) -> Value {
    Value::Opaque(Arc::new(a))
}

fn this(ftx: &FunctionContext) -> Result<Authz> {
    match &ftx.this {
        Some(Value::Opaque(o)) => {
            o.downcast_ref::<Authz>().cloned().ok_or_else(|| ftx.error("not an authorizer value"))
        }
        _ => Err(ftx.error("must be called on an authorizer value")),
    }
}

fn string_arg(ftx: &FunctionContext, i: usize) -> Result<String> {
    match ftx.args.get(i).map(|a| ftx.ptx.resolve(a)).transpose()? {
        Some(Value::String(s)) => Ok(s.to_string()),
        _ => Err(ftx.error("expected a string argument")),
    }
}

/// A builder step: sets one field of the request being built.
fn step(ftx: &FunctionContext, set: fn(&mut Authz, String)) -> Result<Value> {
    let mut a = this(ftx)?;
    set(&mut a, string_arg(ftx, 0)?);
    Ok(wrap(a))
}

fn group(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, g| {
        a.request = Request { group: g, ..Request::default() };
    })
}

fn resource(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, r| a.request.resource = r)
}

fn subresource(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, s| a.request.subresource = s)
}

fn namespace(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, n| a.request.namespace = Some(n).filter(|n| !n.is_empty()))
}

fn name(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, n| a.request.name = Some(n).filter(|n| !n.is_empty()))
}

fn path(ftx: &FunctionContext) -> Result<Value> {
    step(ftx, |a, p| a.request = Request { path: Some(p), ..Request::default() })
}

fn service_account(ftx: &FunctionContext) -> Result<Value> {
    let mut a = this(ftx)?;
    let (ns, name) = (string_arg(ftx, 0)?, string_arg(ftx, 1)?);
    a.user = User {
        name: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    };
    Ok(wrap(a))
}

fn check(ftx: &FunctionContext) -> Result<Value> {
    let mut a = this(ftx)?;
    a.request.verb = string_arg(ftx, 0)?;
    a.decision = Some(a.rbac.decide(&a.user, &a.request));
    Ok(wrap(a))
}

fn decision(ftx: &FunctionContext) -> Result<(bool, String)> {
    this(ftx)?.decision.ok_or_else(|| ftx.error("only a decision (the result of check) has this"))
}

fn allowed(ftx: &FunctionContext) -> Result<Value> {
    Ok(Value::Bool(decision(ftx)?.0))
}

fn reason(ftx: &FunctionContext) -> Result<Value> {
    Ok(Value::String(Arc::new(decision(ftx)?.1)))
}

fn errored(ftx: &FunctionContext) -> Result<Value> {
    decision(ftx).map(|_| Value::Bool(false))
}

fn error(ftx: &FunctionContext) -> Result<Value> {
    decision(ftx).map(|_| Value::String(Arc::new(String::new())))
}

/// `authorizer.requestResource`: a check for the request's own resource.
pub(crate) const REQUEST_RESOURCE: &str = "__palisade_request_resource";

fn request_resource(ftx: &FunctionContext, v: Value) -> Result<Value> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<Authz>().cloned().map(wrap).ok_or_else(|| ftx.error("not an authorizer")),
        _ => Err(ftx.error("not an authorizer")),
    }
}

/// Rewrites `authorizer.requestResource` (a field of an opaque value, which the `cel`
/// crate cannot select) into a call.
pub(crate) fn rewrite(e: &mut Expression) {
    if let Expr::Select(s) = &mut e.expr
        && s.field == "requestResource"
        && !s.test
        && matches!(&s.operand.expr, Expr::Ident(n) if n == "authorizer")
    {
        let operand = std::mem::take(&mut *s.operand);
        e.expr = Expr::Call(cel::common::ast::CallExpr {
            func_name: REQUEST_RESOURCE.into(),
            target: None,
            args: vec![operand],
        });
    }
}

/// Adds the library's functions to a root context.
pub(crate) fn register(ctx: &mut Context<'_>) {
    ctx.add_function("group", group);
    ctx.add_function("resource", resource);
    ctx.add_function("subresource", subresource);
    ctx.add_function("namespace", namespace);
    ctx.add_function("name", name);
    ctx.add_function("path", path);
    ctx.add_function("serviceAccount", service_account);
    ctx.add_function("check", check);
    ctx.add_function("allowed", allowed);
    ctx.add_function("reason", reason);
    ctx.add_function("errored", errored);
    ctx.add_function("error", error);
    ctx.add_function(REQUEST_RESOURCE, request_resource);
}
