//! Scope, overlap, expiry and malformed documents of [`super::Exceptions`].

use super::*;
use crate::decision::{Action, Severity};
use crate::object::ObjectRef;
use serde_json::json;

const NOW: &str = "2026-12-06T12:00:00Z";

fn clock(at: &str) -> Arc<dyn Clock> {
    Arc::new(FixedClock(at.parse().unwrap()))
}

fn known(id: &str) -> bool {
    ["pss-run-as-non-root", "no-latest-tag", "pci-dss/no-latest-tag"].contains(&id)
}

/// Writes `docs` (YAML) to a file and loads them with the clock at `at`.
fn load_at(docs: &str, at: &str) -> Result<Exceptions> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exceptions.yaml");
    std::fs::write(&file, docs).unwrap();
    Exceptions::load(&[file.display().to_string()], &LoadOptions::default(), clock(at), &known)
}

fn exception(name: &str, policies: &str, scope: &str, expires: &str) -> String {
    format!(
        "---\napiVersion: palisade.dev/v1alpha1\nkind: PolicyException\nmetadata: {{name: {name}}}\nspec:\n  \
         policies: {policies}\n  match: {scope}\n  justification: vendor image runs as root\n  \
         risk: container escape\n  compensatingControl: node isolated, Falco alerts\n  \
         approvedBy: [security-lead@example.com]\n  ticket: SEC-42\n  expires: \"{expires}\"\n"
    )
}

fn finding(policy: &str) -> Violation {
    Violation {
        bundle: "pci-dss".into(),
        bundle_version: "1.1.0".into(),
        policy: policy.into(),
        title: policy.into(),
        message: format!("{policy} failed"),
        details: None,
        action: Action::Deny,
        severity: Severity::High,
        requirements: vec!["2.2.1".into()],
        framework: None,
        object: ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: None,
            name: "x".into(),
            source: None,
        },
        path: None,
        expired_exception: None,
    }
}

fn deployment(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}})
}

/// The decision on `object` with both policies failing, after `ex`.
fn judge(ex: &Exceptions, object: &Value) -> Decision {
    let mut d =
        Decision::from_parts(vec![finding("pss-run-as-non-root"), finding("no-latest-tag")], vec![], vec![], vec![]);
    ex.apply(&mut d, object);
    d
}

fn waived(d: &Decision) -> Vec<(&str, &str)> {
    d.waived.iter().map(|w| (w.violation.policy.as_str(), w.exception.name.as_str())).collect()
}

#[test]
fn scope_by_namespace_glob_and_selector() {
    let ex = load_at(
        &exception(
            "legacy-root",
            "[pss-run-as-non-root]",
            "{namespaces: [batch], kinds: [Deployment], names: [\"legacy-*\"], selector: {matchLabels: {app: legacy}}}",
            "2027-03-31T00:00:00Z",
        ),
        NOW,
    )
    .unwrap();
    let d = judge(&ex, &deployment("batch", "legacy-report", "legacy"));
    assert_eq!(waived(&d), vec![("pss-run-as-non-root", "legacy-root")]);
    // The other policy's finding stays, and still denies.
    assert_eq!(d.violations.iter().map(|v| v.policy.as_str()).collect::<Vec<_>>(), vec!["no-latest-tag"]);
    assert!(!d.allowed);
    // Another namespace, a name outside the glob, other labels, another kind: nothing waived.
    // A Namespace is in its own namespace.
    let ns_ex =
        load_at(&exception("ns", "[no-latest-tag]", "{namespaces: [batch]}", "2027-01-01T00:00:00Z"), NOW).unwrap();
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "batch"}});
    assert_eq!(waived(&judge(&ns_ex, &namespace)), vec![("no-latest-tag", "ns")]);
    for other in [
        deployment("payments", "legacy-report", "legacy"),
        deployment("batch", "report-legacy", "legacy"),
        deployment("batch", "legacy-report", "modern"),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "legacy-report", "namespace": "batch", "labels": {"app": "legacy"}}}),
    ] {
        assert!(judge(&ex, &other).waived.is_empty(), "{other}");
    }
}

#[test]
fn a_waived_denial_admits_and_overlapping_exceptions_waive_once() {
    let docs = [
        exception("a", "[pss-run-as-non-root, pci-dss/no-latest-tag]", "{namespaces: [batch]}", "2027-01-01T00:00:00Z"),
        exception("b", "[no-latest-tag]", "{names: [\"*\"]}", "2027-02-01T00:00:00Z"),
    ]
    .concat();
    let ex = load_at(&docs, NOW).unwrap();
    let d = judge(&ex, &deployment("batch", "job", "x"));
    assert!(d.allowed, "{d:?}");
    assert!(d.violations.is_empty());
    assert_eq!(waived(&d), vec![("pss-run-as-non-root", "a"), ("no-latest-tag", "a")]);
}

#[test]
fn expiry_is_exact_to_the_second() {
    let doc = exception("short", "[no-latest-tag]", "{namespaces: [batch]}", "2026-12-06T12:00:10Z");
    let obj = deployment("batch", "job", "x");
    // One second before: waived, and listed as expiring within 30 days (0 days left).
    let before = load_at(&doc, "2026-12-06T12:00:09Z").unwrap();
    assert_eq!(waived(&judge(&before, &obj)), vec![("no-latest-tag", "short")]);
    assert_eq!(before.expiring().iter().map(|(e, d)| (e.name.as_str(), *d)).collect::<Vec<_>>(), vec![("short", 0)]);
    assert_eq!(before.counts(), (1, 0));
    // At the instant: expired. The finding is back, naming the exception and its date.
    let at = load_at(&doc, "2026-12-06T12:00:10Z").unwrap();
    let d = judge(&at, &obj);
    assert!(d.waived.is_empty());
    let v = d.violations.iter().find(|v| v.policy == "no-latest-tag").unwrap();
    let e = v.expired_exception.as_ref().unwrap();
    assert_eq!((e.name.as_str(), e.expires.as_str()), ("short", "2026-12-06T12:00:10Z"));
    assert_eq!(at.counts(), (0, 1));
    assert!(at.expiring().is_empty());
}

#[test]
fn malformed_documents_name_file_document_and_field() {
    let good = exception("ok", "[no-latest-tag]", "{namespaces: [batch]}", "2027-01-01T00:00:00Z");
    let cases: Vec<(String, &str)> = vec![
        (good.replace("  expires: \"2027-01-01T00:00:00Z\"\n", ""), "`spec.expires`"),
        (good.replace("[security-lead@example.com]", "[]"), "`spec.approvedBy`: must not be empty"),
        (good.replace("  justification: vendor image runs as root\n", ""), "`spec.justification`"),
        (
            good.replace("compensatingControl: node isolated, Falco alerts", "compensatingControl: \"\""),
            "`spec.compensatingControl`",
        ),
        (good.replace("[no-latest-tag]", "[no-such-policy]"), "unknown policy \"no-such-policy\""),
        (good.replace("{namespaces: [batch]}", "{kinds: [Pod]}"), "`spec.match`: give at least one of"),
        (good.replace("{namespaces: [batch]}", "{selector: {}}"), "`spec.match.selector`: an empty selector"),
        (good.replace("{namespaces: [batch]}", "{selector: {matchLabels: {}}}"), "`spec.match.selector`: an empty"),
        (good.replace("2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"), "more than 365 days ahead"),
        (good.replace("2027-01-01T00:00:00Z", "next year"), "not an RFC 3339 time"),
        (good.replace("kind: PolicyException", "kind: Exception"), "expected palisade.dev/v1alpha1 PolicyException"),
        (good.replace("  risk:", "  riks:"), "unknown field `riks`"),
        ([good.clone(), good.clone()].concat(), "\"ok\" is also defined in"),
    ];
    for (doc, expected) in cases {
        let err = load_at(&[good.clone(), doc].concat(), NOW).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.code(), "exception_error", "{text}");
        assert!(text.contains("exceptions.yaml: document 2: "), "{text}");
        assert!(text.contains(expected), "expected {expected:?} in: {text}");
    }
}
