//! One CEL policy compiled: a ValidatingAdmissionPolicy (with its binding and
//! parameter objects when it comes from VAP manifests, or with `[policy.parameters]`
//! as `params` when it is a bundle policy), every expression parsed and checked once,
//! and its evaluation on one object with the API server's semantics and messages.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Value as CelValue};
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, ParamKind, ParamRef, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde_json::{Value, json};

use super::env::{self, Compiled};
use super::projection::Reads;
use crate::backend::{Failure, Finding, Outcome};
use crate::decision::PolicyErrorKind;
use crate::input::Input;
use crate::matching::selector_matches;

/// Where `params` comes from.
#[derive(Debug, Clone)]
enum Params {
    /// The policy has no `paramKind` (and no bundle parameters): `params` is null.
    None,
    /// A bundle policy's `[policy.parameters]`, converted once at load.
    Fixed(CelValue),
    /// A binding's `paramRef`, resolved per object among these objects.
    Ref { api_version: String, kind: String, reference: ParamRef, objects: Arc<[Value]> },
}

#[derive(Debug, Clone)]
struct Check {
    expr: Compiled,
    message: Option<String>,
    message_expr: Option<Compiled>,
    reason: Option<String>,
}

/// A compiled CEL policy.
#[derive(Debug, Clone)]
pub(crate) struct CelPolicy {
    pub name: String,
    pub binding: Option<String>,
    constraints: Option<MatchResources>,
    binding_match: Option<MatchResources>,
    /// From VAP manifests: `matchConstraints` must select the object (as in the API
    /// server). In a bundle, the policy's `match` does that and constraints are optional.
    rules_required: bool,
    fail: bool,
    params: Params,
    conditions: Vec<(String, Compiled)>,
    variables: Vec<(String, Compiled)>,
    /// Per variable: whether it uses `authorizer`, directly or through another variable.
    variable_authorizer: Vec<bool>,
    checks: Vec<Check>,
    annotations: Vec<(String, Compiled)>,
    uses_authorizer: bool,
    reads: Reads,
}

/// What a CEL policy is compiled from.
pub(crate) struct CelSource<'a> {
    pub policy: &'a ValidatingAdmissionPolicy,
    pub binding: Option<&'a ValidatingAdmissionPolicyBinding>,
    /// Candidate parameter objects (VAP manifests).
    pub param_objects: Arc<[Value]>,
    /// Bundle parameters, bound as `params` when the policy has no `paramKind`.
    pub parameters: Option<&'a Value>,
}

fn compile_at(path: String, source: &str, uses_authorizer: &mut bool) -> Result<Compiled, String> {
    let c = env::compile(source).map_err(|e| format!("{path} `{source}` {e}"))?;
    *uses_authorizer |= c.expr.references().has_variable("authorizer");
    Ok(c)
}

impl CelPolicy {
    /// Compiles every expression; the error names the field, the expression and why.
    pub(crate) fn compile(src: &CelSource<'_>) -> Result<CelPolicy, String> {
        let name = src.policy.metadata.name.clone().unwrap_or_default();
        let spec = src.policy.spec.clone().unwrap_or_default();
        let mut auth = false;
        let params = params(src, spec.param_kind.as_ref())?;
        let mut reads = Reads::default();
        let named =
            |list: Vec<(String, String)>, field: &str, auth: &mut bool| -> Result<Vec<(String, Compiled)>, String> {
                list.into_iter()
                    .enumerate()
                    .map(|(i, (n, e))| Ok((n, compile_at(format!("spec.{field}[{i}]"), &e, auth)?)))
                    .collect()
            };
        let conditions = spec.match_conditions.unwrap_or_default().into_iter().map(|c| (c.name, c.expression));
        let conditions = named(conditions.collect(), "matchConditions", &mut auth)?;
        if let Some((i, _)) =
            conditions.iter().enumerate().find(|(_, (_, c))| c.expr.references().has_variable("variables"))
        {
            return Err(format!(
                "spec.matchConditions[{i}]: match conditions cannot use `variables` (as in the API server)"
            ));
        }
        let variables = spec.variables.unwrap_or_default().into_iter().map(|v| (v.name, v.expression));
        let variables = named(variables.collect(), "variables", &mut auth)?;
        if let Some((i, (n, _))) = variables.iter().enumerate().find(|(_, (n, _))| !is_identifier(n)) {
            return Err(format!(
                "spec.variables[{i}].name: {n:?} must be a valid CEL identifier (not a reserved word)"
            ));
        }
        let annotations = spec.audit_annotations.unwrap_or_default().into_iter().map(|a| (a.key, a.value_expression));
        let annotations = named(annotations.collect(), "auditAnnotations", &mut auth)?;
        let mut checks = Vec::new();
        for (i, v) in spec.validations.unwrap_or_default().into_iter().enumerate() {
            let at = format!("spec.validations[{i}]");
            let message_expr = match &v.message_expression {
                Some(m) => Some(compile_at(format!("{at}.messageExpression"), m, &mut auth)?),
                None => None,
            };
            let expr = compile_at(format!("{at}.expression"), &v.expression, &mut auth)?;
            checks.push(Check { expr, message: v.message, message_expr, reason: v.reason });
        }
        let binding_spec = src.binding.map(|b| b.spec.clone());
        let expressions = conditions.iter().chain(&variables).chain(&annotations).map(|(_, c)| c);
        let checks_expressions = checks.iter().flat_map(|c| std::iter::once(&c.expr).chain(&c.message_expr));
        for c in expressions.chain(checks_expressions) {
            reads.add(&c.expr);
        }
        let mut tainted: Vec<&str> = Vec::new();
        let mut variable_authorizer = Vec::new();
        for (n, c) in &variables {
            let uses = c.expr.references().has_variable("authorizer")
                || tainted.iter().any(|t| c.source.contains(&format!("variables.{t}")));
            if uses {
                tainted.push(n);
            }
            variable_authorizer.push(uses);
        }
        Ok(CelPolicy {
            variable_authorizer,
            reads,
            name,
            binding: src.binding.and_then(|b| b.metadata.name.clone()),
            constraints: spec.match_constraints,
            binding_match: binding_spec.and_then(|b| b.match_resources),
            rules_required: src.binding.is_some(),
            fail: spec.failure_policy.as_deref() != Some("Ignore"),
            params,
            conditions,
            variables,
            checks,
            annotations,
            uses_authorizer: auth,
        })
    }

    /// Whether an expression uses `authorizer`.
    pub(crate) fn uses_authorizer(&self) -> bool {
        self.uses_authorizer
    }

    /// What the policy's expressions read of the request.
    pub(crate) fn reads(&self) -> &Reads {
        &self.reads
    }

    /// Whether the policy's `matchConstraints` and the binding's `matchResources` select
    /// the object (CEL `matchConditions` are decided when evaluating).
    pub(crate) fn applies(&self, input: &Input) -> bool {
        super::vap::matches(self.constraints.as_ref(), input, self.rules_required)
            && super::vap::matches(self.binding_match.as_ref(), input, false)
    }

    /// Evaluates the policy on one object (once per matching parameter object).
    pub(crate) fn evaluate(&self, input: &Input, vars: &Activation) -> Outcome {
        if self.uses_authorizer && vars.authorizer.is_none() {
            return Err(Failure::new(
                PolicyErrorKind::Unsupported,
                format!(
                    "ValidatingAdmissionPolicy '{}' uses `authorizer`, which is not available offline: give the RBAC objects (Roles, ClusterRoles, bindings) in the inventory (the scanned files, --inventory, serve --cluster)",
                    self.name
                ),
            ));
        }
        // A binding that cannot be configured for this object (its parameters missing or
        // out of scope) is the failure policy's to decide, whatever its actions say.
        let params = match self.resolve_params(input) {
            Ok(p) => p,
            Err(None) => return Ok(Vec::new()),
            Err(Some(message)) => return Err(Failure::new(PolicyErrorKind::Runtime, message)),
        };
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let mut fatal = None;
        for p in &params {
            env::with_scope(|mut ctx| {
                vars.bind(&mut ctx, p.as_ref());
                if let Err(e) = self.run(&mut ctx, &mut findings, &mut errors) {
                    fatal.get_or_insert(e);
                }
            });
        }
        if let Some(e) = fatal {
            return Err(Failure::new(PolicyErrorKind::Runtime, e));
        }
        match errors.into_iter().next() {
            Some(e) if findings.is_empty() => Err(Failure::new(PolicyErrorKind::Runtime, e)),
            _ => Ok(findings),
        }
    }

    /// Match conditions, variables, validations and annotations, in one scope. `Err`: an audit annotation failed under `failurePolicy: Fail`,
    /// which denies whatever the binding's actions say.
    fn run(&self, ctx: &mut Context<'_>, findings: &mut Vec<Finding>, errors: &mut Vec<String>) -> Result<(), String> {
        let failed = |c: &Compiled, e: &cel::ExecutionError| {
            format!("expression '{}' resulted in error: {}", c.source, env::error_text(e))
        };
        let mut condition_error = None;
        for (name, c) in &self.conditions {
            match ctx.resolve(&c.expr) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Ok(()),
                Ok(_) => condition_error = Some(format!("matchCondition '{name}' did not evaluate to a bool")),
                Err(e) => {
                    condition_error = Some(format!("failed to evaluate matchCondition '{name}': {}", failed(c, &e)))
                }
            }
        }
        if let Some(e) = condition_error {
            self.fail_with(e, findings, errors);
            return Ok(());
        }
        let (message_variables, failed_variables) = self.bind_variables(ctx);
        let annotations = self.annotations(ctx)?;
        for check in &self.checks {
            match ctx.resolve(&check.expr.expr) {
                Ok(CelValue::Bool(true)) => {}
                // Anything but true denies, as in the API server.
                Ok(_) => {
                    let mut details = json!({"expression": check.expr.source});
                    if let Some(r) = &check.reason {
                        details["reason"] = json!(r);
                    }
                    if !annotations.is_empty() {
                        details["auditAnnotations"] = Value::Object(annotations.clone());
                    }
                    findings.push(self.finding(self.message(ctx, check, &message_variables), details));
                }
                Err(e) => {
                    // The API server evaluates variables lazily: a validation that reads a
                    // failed variable fails with the variable's own error.
                    let text = cause(&failed_variables, env::error_text(&e));
                    let message = format!("expression '{}' resulted in error: {text}", check.expr.source);
                    self.fail_with(message, findings, errors)
                }
            }
        }
        Ok(())
    }

    /// Evaluates the variables in order into `variables` (one that fails is absent, and
    /// reading it fails); returns those message expressions see (the API server gives
    /// them no `authorizer`, so not the variables computed from it either) and the
    /// failed ones with their errors.
    fn bind_variables(&self, ctx: &mut Context<'_>) -> (CelValue, Vec<(String, String)>) {
        let map = |m: &HashMap<Key, CelValue>| CelValue::Map(Map { map: Arc::new(m.clone()) });
        let (mut values, mut for_messages, mut failed) = (HashMap::new(), HashMap::new(), Vec::new());
        for ((name, c), uses_authorizer) in self.variables.iter().zip(&self.variable_authorizer) {
            match ctx.resolve(&c.expr) {
                Ok(v) => {
                    let key = Key::String(Arc::new(name.clone()));
                    if !uses_authorizer {
                        for_messages.insert(key.clone(), v.clone());
                    }
                    values.insert(key, v);
                }
                Err(e) => {
                    let text = cause(&failed, env::error_text(&e));
                    failed.push((name.clone(), text));
                }
            }
            ctx.add_variable_from_value("variables", map(&values));
        }
        ctx.add_variable_from_value("variables", map(&values));
        (map(&for_messages), failed)
    }

    /// A finding; its details name the policy and binding (as the API server's messages do).
    fn finding(&self, message: String, mut details: Value) -> Finding {
        details["validatingAdmissionPolicy"] = json!(self.name);
        if let Some(b) = &self.binding {
            details["binding"] = json!(b);
        }
        Finding::new(message, Some(details))
    }

    /// An evaluation error: with `failurePolicy: Fail` it is decided like a failed
    /// validation (the binding's actions apply, as in the API server); with `Ignore`
    /// it is reported as a policy error that does not deny.
    fn fail_with(&self, message: String, findings: &mut Vec<Finding>, errors: &mut Vec<String>) {
        if self.fail {
            findings.push(self.finding(message, json!({"error": true})));
        } else {
            errors.push(message);
        }
    }

    /// The API server's message: `messageExpression` when it gives a non-empty
    /// single-line string, else `message`, else `failed expression: …`.
    fn message(&self, ctx: &Context<'_>, check: &Check, variables: &CelValue) -> String {
        let dynamic = check.message_expr.as_ref().and_then(|m| {
            let mut scope = ctx.new_inner_scope();
            scope.add_variable_from_value("variables", variables.clone());
            scope.add_variable_from_value("authorizer", CelValue::Null);
            match scope.resolve(&m.expr) {
                Ok(CelValue::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty() && !s.contains('\n')),
                _ => None,
            }
        });
        dynamic
            .or_else(|| check.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_string))
            .unwrap_or_else(|| format!("failed expression: {}", check.expr.source.trim()))
    }

    /// Audit annotations (`<policy>/<key>`): trimmed strings, null or empty left out.
    /// An expression that fails or gives something else is an error that, under
    /// `failurePolicy: Fail`, denies (`Err`); under `Ignore` it is left out.
    fn annotations(&self, ctx: &Context<'_>) -> Result<serde_json::Map<String, Value>, String> {
        let mut out = serde_json::Map::new();
        for (key, c) in &self.annotations {
            let value = match ctx.resolve(&c.expr) {
                Ok(CelValue::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
                Ok(CelValue::Null) => None,
                Ok(other) => {
                    let e = format!(
                        "valueExpression '{}' resulted in error: expected a string or null, got {other:?}",
                        c.source
                    );
                    if self.fail {
                        return Err(e);
                    }
                    None
                }
                Err(e) => {
                    let e = format!("valueExpression '{}' resulted in error: {}", c.source, env::error_text(&e));
                    if self.fail {
                        return Err(e);
                    }
                    None
                }
            };
            if let Some(v) = value {
                out.insert(format!("{}/{key}", self.name), Value::String(v));
            }
        }
        Ok(out)
    }

    /// The parameter objects for this object: `[None]` without parameters; when a
    /// `paramRef` finds none, by `parameterNotFoundAction`, a denial message or nothing.
    fn resolve_params(&self, input: &Input) -> Result<Vec<Option<CelValue>>, Option<String>> {
        let (api_version, kind, reference, objects) = match &self.params {
            Params::None => return Ok(vec![None]),
            Params::Fixed(v) => return Ok(vec![Some(v.clone())]),
            Params::Ref { api_version, kind, reference, objects } => (api_version, kind, reference, objects),
        };
        let of_kind: Vec<&Value> = objects
            .iter()
            .filter(|o| o["apiVersion"].as_str() == Some(api_version) && o["kind"].as_str() == Some(kind))
            .collect();
        // A cluster-scoped parameter kind is looked up without a namespace; the scope is
        // known for built-in kinds, else read from the parameter objects themselves.
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let cluster_scoped = crate::object::is_cluster_scoped(group, kind)
            || (!of_kind.is_empty()
                && of_kind.iter().all(|o| o["metadata"]["namespace"].as_str().is_none_or(str::is_empty)));
        let given = reference.namespace.clone().filter(|n| !n.is_empty());
        let namespace = match (given, cluster_scoped, super::vap::namespaced(input)) {
            (Some(_), true, _) => {
                return Err(Some(
                    "failed to configure binding: paramRef.namespace must not be set for a cluster-scoped paramKind"
                        .into(),
                ));
            }
            (Some(n), false, _) => Some(n),
            (None, false, true) => Some(input.namespace().unwrap_or_default().to_string()),
            // A namespaced kind has no object for a cluster-scoped request to find (as
            // kube-apiserver: parameterNotFoundAction decides).
            (None, false, false) => return not_found(reference),
            (None, true, _) => None,
        };
        let found: Vec<Option<CelValue>> = of_kind
            .into_iter()
            .filter(|o| {
                let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
                namespace.as_deref().is_none_or(|n| n == ns || ns.is_empty() && n.is_empty())
            })
            .filter(|o| match (&reference.name, &reference.selector) {
                (Some(name), _) if !name.is_empty() => o["metadata"]["name"].as_str() == Some(name),
                (_, Some(sel)) => selector_matches(sel, o),
                _ => false,
            })
            .map(|o| Some(env::to_cel(o)))
            .collect();
        if found.is_empty() { not_found(reference) } else { Ok(found) }
    }
}

/// No parameter object: `parameterNotFoundAction` Allow skips the policy, Deny is a
/// configuration error (the failure policy's to decide).
fn not_found(reference: &ParamRef) -> Result<Vec<Option<CelValue>>, Option<String>> {
    match reference.parameter_not_found_action.as_deref() {
        Some("Allow") => Err(None),
        _ => Err(Some(
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
                .to_string(),
        )),
    }
}

/// A CEL identifier that is not one of the language's reserved words.
fn is_identifier(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

/// `params` of a policy: its binding's `paramRef`, or the bundle parameters.
fn params(src: &CelSource<'_>, param_kind: Option<&ParamKind>) -> Result<Params, String> {
    let reference = src.binding.and_then(|b| b.spec.param_ref.clone());
    match (param_kind, reference) {
        (Some(kind), Some(reference)) => Ok(Params::Ref {
            api_version: kind.api_version.clone().unwrap_or_default(),
            kind: kind.kind.clone().unwrap_or_default(),
            reference,
            objects: src.param_objects.clone(),
        }),
        // From VAP manifests, without both a paramKind and a paramRef `params` is null,
        // as in the API server.
        _ if src.binding.is_some() => Ok(Params::None),
        _ => Ok(src.parameters.map_or(Params::None, |p| Params::Fixed(env::to_cel(p)))),
    }
}

/// The error to report for an expression that failed with `error`: a read of a
/// variable that failed (`no such key: NAME`, the variable being absent) reports that
/// variable's own error as kube-apiserver words it (`composited variable "NAME" fails
/// to evaluate: …`, checked in conformance/vap/16-failing-variable.yaml).
fn cause(failed: &[(String, String)], error: String) -> String {
    let read_of = |n: &String| error == format!("no such key: {n}");
    match failed.iter().find(|(n, _)| read_of(n)) {
        Some((n, why)) => format!("composited variable \"{n}\" fails to evaluate: {why}"),
        None => error,
    }
}

/// The variables every expression of one object sees, converted to CEL once per
/// object and shared by all CEL policies.
pub(crate) struct Activation {
    object: CelValue,
    old_object: CelValue,
    request: CelValue,
    namespace_object: CelValue,
    authorizer: Option<CelValue>,
}

impl Activation {
    /// Converts what `reads` names (see [`super::projection`]); unread roots are null.
    pub(crate) fn of(input: &Input, reads: &Reads, rbac: Option<&Arc<super::authz::Rbac>>) -> Activation {
        let review = input.review();
        let convert = |root: &str, v: &Value| reads.root(root).map_or(CelValue::Null, |p| p.project(v));
        let request = reads.root("request").map_or(CelValue::Null, |p| {
            // The request variable is the AdmissionRequest without the objects bound apart.
            let mut request = serde_json::Map::new();
            if let Value::Object(r) = review {
                for (k, v) in
                    r.iter().filter(|(k, _)| !matches!(k.as_str(), "object" | "oldObject" | "namespaceObject"))
                {
                    request.insert(k.clone(), v.clone());
                }
            }
            p.project(&Value::Object(request))
        });
        Activation {
            object: convert("object", &review["object"]),
            old_object: convert("oldObject", &review["oldObject"]),
            request,
            namespace_object: input.namespace_object().map_or(CelValue::Null, |ns| convert("namespaceObject", ns)),
            authorizer: rbac.map(|r| super::authz::authorizer(r, &review["userInfo"], review)),
        }
    }

    fn bind(&self, ctx: &mut Context<'_>, params: Option<&CelValue>) {
        ctx.add_variable_from_value("object", self.object.clone());
        ctx.add_variable_from_value("oldObject", self.old_object.clone());
        ctx.add_variable_from_value("request", self.request.clone());
        ctx.add_variable_from_value("namespaceObject", self.namespace_object.clone());
        ctx.add_variable_from_value("params", params.cloned().unwrap_or(CelValue::Null));
        if let Some(a) = &self.authorizer {
            ctx.add_variable_from_value("authorizer", a.clone());
        }
    }
}
