//! Policy exceptions (`palisade.dev/v1alpha1` `PolicyException`): documented, approved,
//! expiring waivers of named policies for a scoped set of objects, as PCI DSS asks for
//! a control that cannot be met yet (a reason, the risk, the compensating control,
//! who approved it, until when).
//!
//! Loading is strict: every required field, a known policy id, a non-empty scope and an
//! expiry within `max_days` of now, or a [`Error::Exception`] naming the file, the
//! document and the field. Applying happens in [`crate::Engine::evaluate`], so scan,
//! test, eval, serve and audit judge alike: a finding an active exception covers moves
//! from `violations`/`warnings` to [`Decision::waived`] with the exception's name; an
//! expired exception waives nothing and the finding says when it expired. All time
//! comes from one [`Clock`], so tests can sit on the boundary.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

pub mod sign;

use crate::decision::{Decision, ExceptionRef, Violation, Waived};
use crate::documents::Documents;
use crate::error::{Error, Result};
use crate::matching::{glob_match, selector_matches};
use crate::object::{self, SourceLocation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The API version and kind of an exception document.
pub const API_VERSION: &str = "palisade.dev/v1alpha1";
/// The kind of an exception document.
pub const KIND: &str = "PolicyException";

/// Where the time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock stopped at one instant (tests, reproducible reports).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Which objects an exception covers: every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExceptionMatch {
    /// Namespaces (exact names).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kinds (`Deployment`, or `apps/Deployment`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Object names, `*` globs allowed.
    #[serde(default)]
    pub names: Vec<String>,
    /// A label selector on the object.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

/// One exception.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PolicyException {
    /// `metadata.name`.
    pub name: String,
    /// Policy ids (`pss-run-as-non-root`, or bundle-qualified `pci-dss/pss-run-as-non-root`).
    pub policies: Vec<String>,
    /// The objects covered.
    pub scope: ExceptionMatch,
    /// Why the policy cannot be met.
    pub justification: String,
    /// The risk accepted.
    pub risk: Option<String>,
    /// What stands in for the control (PCI DSS Appendix B/C).
    pub compensating_control: String,
    /// Who approved it.
    pub approved_by: Vec<String>,
    /// Where the decision is recorded.
    pub ticket: Option<String>,
    /// When it stops waiving anything.
    pub expires: Timestamp,
    /// Where it was read.
    pub source: SourceLocation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    policies: Vec<String>,
    #[serde(rename = "match")]
    scope: ExceptionMatch,
    justification: String,
    #[serde(default)]
    risk: Option<String>,
    compensating_control: String,
    approved_by: Vec<String>,
    #[serde(default)]
    ticket: Option<String>,
    expires: String,
}

/// How strictly exceptions are loaded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Longest allowed time from now to `expires`, in days.
    pub max_days: i64,
    /// Exceptions expiring within this many days are reported by [`Exceptions::expiring`].
    pub warn_days: i64,
    /// Accept only exceptions signed by one of `trusted_keys` (see [`sign`]).
    pub require_signed: bool,
    /// The keys whose signatures count.
    pub trusted_keys: Vec<crate::bundle::sign::TrustedKey>,
}

impl LoadOptions {
    /// Options with these limits.
    pub fn new(max_days: i64, warn_days: i64) -> LoadOptions {
        LoadOptions { max_days, warn_days, require_signed: false, trusted_keys: Vec::new() }
    }
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions::new(365, 30)
    }
}

/// A loaded set of exceptions and the clock that judges their expiry.
#[derive(Debug, Clone)]
pub struct Exceptions {
    items: Vec<PolicyException>,
    clock: Arc<dyn Clock>,
    options: LoadOptions,
}

fn field_error(source: &SourceLocation, field: &str, message: impl Into<String>) -> Error {
    Error::Exception {
        file: source.file.clone(),
        document: source.document,
        field: field.to_string(),
        message: message.into(),
    }
}

impl Exceptions {
    /// Reads every PolicyException of `paths` (files or directories). `known` says
    /// whether a policy id (as written) names a loaded policy.
    pub fn load(
        paths: &[String],
        options: &LoadOptions,
        clock: Arc<dyn Clock>,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<Exceptions> {
        let mut docs = Documents::default();
        for p in paths {
            docs.read_path(p);
        }
        if let Some(e) = docs.errors.into_iter().next() {
            return Err(e);
        }
        let (set, errors) = Exceptions::empty(options.clone(), clock).extended(docs.documents, known);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(set),
        }
    }

    /// A set with no exception yet.
    pub fn empty(options: LoadOptions, clock: Arc<dyn Clock>) -> Exceptions {
        Exceptions { items: Vec::new(), clock, options }
    }

    /// This set plus the exceptions of `docs` (in-cluster PolicyException objects,
    /// say). Each document that fails the checks, or reuses a name, is left out and
    /// returned as an error: the caller decides whether that stops it.
    pub fn extended(
        &self,
        docs: Vec<crate::documents::Document>,
        known: &dyn Fn(&str) -> bool,
    ) -> (Exceptions, Vec<Error>) {
        let now = self.now();
        let mut set = self.clone();
        let mut errors = Vec::new();
        for d in docs {
            match parse(&d.value, d.source, &self.options, now, known) {
                Ok(e) => match set.items.iter().find(|x| x.name == e.name) {
                    Some(dup) => {
                        let first = format!("{} document {}", dup.source.file, dup.source.document);
                        let msg = format!("{:?} is also defined in {first}", e.name);
                        errors.push(field_error(&e.source, "metadata.name", msg));
                    }
                    None => set.items.push(e),
                },
                Err(e) => errors.push(e),
            }
        }
        (set, errors)
    }

    /// The loading options the set was made with.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// The exceptions, in load order.
    pub fn items(&self) -> &[PolicyException] {
        &self.items
    }

    /// The current time of the set's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Active exceptions that expire within the warning window, with the days left.
    pub fn expiring(&self) -> Vec<(&PolicyException, i64)> {
        let now = self.now();
        self.items
            .iter()
            .filter(|e| e.expires > now)
            .map(|e| (e, days_between(now, e.expires)))
            .filter(|(_, days)| *days <= self.options.warn_days)
            .collect()
    }

    /// [`Exceptions::expiring`] in words, one line each:
    /// `exception NAME expires in N days (TIME)`; what every command warns.
    pub fn expiry_warnings(&self) -> Vec<String> {
        self.expiring().iter().map(|(e, days)| expiry_warning(e, *days)).collect()
    }

    /// (active, expired) counts now.
    pub fn counts(&self) -> (usize, usize) {
        let now = self.now();
        let active = self.items.iter().filter(|e| e.expires > now).count();
        (active, self.items.len() - active)
    }

    /// Moves the findings of `decision` that an active exception covers into
    /// `waived`; marks those only an expired one covers; recomputes `allowed`.
    pub fn apply(&self, decision: &mut Decision, object: &Value) {
        if self.items.is_empty() {
            return;
        }
        let now = self.now();
        let mut waived = Vec::new();
        for list in [&mut decision.violations, &mut decision.warnings] {
            let mut kept = Vec::with_capacity(list.len());
            for mut v in list.drain(..) {
                let covering: Vec<&PolicyException> = self.items.iter().filter(|e| e.covers(&v, object)).collect();
                match covering.iter().find(|e| e.expires > now) {
                    Some(e) => waived.push(Waived { violation: v, exception: e.reference() }),
                    None => {
                        v.expired_exception = covering.iter().max_by_key(|e| e.expires).map(|e| e.reference());
                        kept.push(v);
                    }
                }
            }
            *list = kept;
        }
        decision.waived.extend(waived);
        decision.recompute_allowed();
    }
}

impl PolicyException {
    fn reference(&self) -> ExceptionRef {
        ExceptionRef {
            name: self.name.clone(),
            expires: self.expires.to_string(),
            approved_by: self.approved_by.clone(),
            ticket: self.ticket.clone(),
        }
    }

    /// Whether the exception names the finding's policy and its scope covers `object`.
    pub fn covers(&self, v: &Violation, object: &Value) -> bool {
        let qualified = format!("{}/{}", v.bundle, v.policy);
        if !self.policies.iter().any(|p| *p == v.policy || *p == qualified) {
            return false;
        }
        let m = &self.scope;
        let name = object::name(object).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let group = object::Gvk::of(object).map(|g| g.group).unwrap_or_default();
        // A Namespace is in its own namespace, as namespace matching reads it everywhere.
        let ns = match object::namespace(object) {
            None if kind == "Namespace" && group.is_empty() => name,
            ns => ns.unwrap_or_default(),
        };
        let kind_ok = |k: &String| match k.rsplit_once('/') {
            Some((g, k)) => k == kind && (g == group || (g == "core" && group.is_empty())),
            None => k == kind,
        };
        (m.namespaces.is_empty() || m.namespaces.iter().any(|n| n == ns))
            && (m.kinds.is_empty() || m.kinds.iter().any(kind_ok))
            && (m.names.is_empty() || m.names.iter().any(|n| glob_match(n, name)))
            && m.selector.as_ref().is_none_or(|s| selector_matches(s, object))
    }
}

/// Whole days from `a` to `b` (rounded down).
/// `exception NAME expires in N days (TIME)`.
pub fn expiry_warning(e: &PolicyException, days: i64) -> String {
    format!("exception {} expires in {days} days ({})", e.name, e.expires)
}

fn days_between(a: Timestamp, b: Timestamp) -> i64 {
    b.duration_since(a).as_secs() / 86_400
}

fn parse(
    v: &Value,
    source: SourceLocation,
    options: &LoadOptions,
    now: Timestamp,
    known: &dyn Fn(&str) -> bool,
) -> Result<PolicyException> {
    let (api_version, kind) = (v.get("apiVersion").and_then(Value::as_str), v.get("kind").and_then(Value::as_str));
    if api_version != Some(API_VERSION) || kind != Some(KIND) {
        let found = format!("{} {}", api_version.unwrap_or("(none)"), kind.unwrap_or("(none)"));
        return Err(field_error(&source, "kind", format!("expected {API_VERSION} {KIND}, found {found}")));
    }
    let name =
        object::name(v).filter(|n| !n.is_empty()).ok_or_else(|| field_error(&source, "metadata.name", "missing"))?;
    if options.require_signed {
        let field = format!("metadata.annotations.{}", sign::ANNOTATION);
        sign::verify(v, &options.trusted_keys).map_err(|why| field_error(&source, &field, why))?;
    }
    let spec = v.get("spec").ok_or_else(|| field_error(&source, "spec", "missing"))?;
    let spec: Spec = serde_json::from_value(spec.clone()).map_err(|e| {
        let msg = e.to_string();
        let field = msg.split('`').nth(1).map_or("spec".to_string(), |f| format!("spec.{f}"));
        field_error(&source, &field, msg)
    })?;
    let required = [
        ("spec.justification", spec.justification.trim().is_empty()),
        ("spec.compensatingControl", spec.compensating_control.trim().is_empty()),
        ("spec.approvedBy", spec.approved_by.iter().all(|a| a.trim().is_empty())),
        ("spec.policies", spec.policies.is_empty()),
    ];
    if let Some((field, _)) = required.iter().find(|(_, empty)| *empty) {
        return Err(field_error(&source, field, "must not be empty"));
    }
    if let Some(p) = spec.policies.iter().find(|p| !known(p)) {
        return Err(field_error(&source, "spec.policies", format!("unknown policy {p:?}")));
    }
    let m = &spec.scope;
    if m.namespaces.is_empty() && m.names.is_empty() && m.selector.is_none() {
        return Err(field_error(&source, "spec.match", "give at least one of namespaces, names or selector"));
    }
    if m.selector.as_ref().is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|x| x.is_empty())
    }) {
        return Err(field_error(
            &source,
            "spec.match.selector",
            "an empty selector matches every object; give matchLabels or matchExpressions",
        ));
    }
    let expires: Timestamp = spec
        .expires
        .parse()
        .map_err(|e| field_error(&source, "spec.expires", format!("not an RFC 3339 time ({:?}): {e}", spec.expires)))?;
    let limit = now.saturating_add(SignedDuration::from_hours(24 * options.max_days)).unwrap_or(now);
    if expires > limit {
        let days = options.max_days;
        return Err(field_error(
            &source,
            "spec.expires",
            format!("{expires} is more than {days} days ahead (--max-exception-days)"),
        ));
    }
    Ok(PolicyException {
        name: name.to_string(),
        policies: spec.policies,
        scope: spec.scope,
        justification: spec.justification,
        risk: spec.risk,
        compensating_control: spec.compensating_control,
        approved_by: spec.approved_by,
        ticket: spec.ticket,
        expires,
        source,
    })
}

#[cfg(test)]
mod tests;
