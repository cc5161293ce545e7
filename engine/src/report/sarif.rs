//! SARIF 2.1.0 output for code-scanning tools (GitHub code scanning among them):
//! one rule per policy, one result per finding, located at the file and line of
//! the YAML document that holds the object.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::decision::{Action, Severity};
use crate::engine::Policy;
use crate::object::ObjectRef;
use crate::scan::ScanReport;

/// Characters escaped in artifact URIs (a relative URI reference).
const URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn level(action: Action) -> &'static str {
    match action {
        Action::Deny => "error",
        Action::Warn => "warning",
        Action::Audit => "note",
    }
}

fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

fn location(object: &ObjectRef) -> Value {
    let (uri, line) = match &object.source {
        Some(s) if s.file == "-" => ("stdin".to_string(), s.line.max(1)),
        Some(s) => (utf8_percent_encode(&s.file.replace('\\', "/"), URI).to_string(), s.line.max(1)),
        None => ("unknown".to_string(), 1),
    };
    json!({
        "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}},
        "logicalLocations": [{"fullyQualifiedName": object.to_string(), "kind": "object"}]
    })
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Renders the scan as a SARIF 2.1.0 log.
pub fn render(report: &ScanReport, policies: &[Policy]) -> Value {
    let rule_id = |bundle: &str, id: &str| format!("{bundle}/{id}");
    let rules: Vec<Value> = policies
        .iter()
        .map(|p| {
            let s = p.spec();
            let full = if s.description.is_empty() { s.title.clone() } else { s.description.clone() };
            json!({
                "id": rule_id(&p.bundle().name, &s.id),
                "name": s.id,
                "shortDescription": {"text": s.title},
                "fullDescription": {"text": full},
                "help": {"text": format!("{}\nRequirements: {}", full, s.requirements.join(", "))},
                "defaultConfiguration": {"level": level(s.action)},
                "properties": {
                    "requirements": s.requirements,
                    "severity": s.severity.to_string(),
                    "security-severity": security_severity(s.severity),
                    "tags": ["security", "kubernetes"],
                }
            })
        })
        .collect();
    let index = |bundle: &str, id: &str| policies.iter().position(|p| p.bundle().name == bundle && p.spec().id == id);
    let mut results = Vec::new();
    for r in &report.results {
        for v in r.decision.violations.iter().chain(&r.decision.warnings) {
            let mut text = format!("{}: {}", v.object, v.message);
            if let Some(path) = &v.path {
                text.push_str(&format!(" (at {path})"));
            }
            text.push_str(&v.expired_note());
            let mut res = json!({
                "ruleId": rule_id(&v.bundle, &v.policy),
                "level": level(v.action),
                "message": {"text": text},
                "locations": [location(&v.object)],
                "partialFingerprints": {"palisadeFinding/v1": fingerprint(&[&v.policy, &v.object.to_string(), &v.message])},
                "properties": {"requirements": v.requirements, "bundle": v.bundle, "bundleVersion": v.bundle_version}
            });
            if let Some(e) = &v.expired_exception {
                res["properties"]["expiredException"] = json!(e.name);
                res["properties"]["exceptionExpired"] = json!(e.expires);
            }
            if let Some(i) = index(&v.bundle, &v.policy) {
                res["ruleIndex"] = json!(i);
            }
            results.push(res);
        }
        for w in &r.decision.waived {
            let (v, x) = (&w.violation, &w.exception);
            let mut res = json!({
                "ruleId": rule_id(&v.bundle, &v.policy),
                "level": level(v.action),
                "message": {"text": format!("{}: {}", v.object, v.message)},
                "locations": [location(&v.object)],
                "partialFingerprints": {"palisadeFinding/v1": fingerprint(&[&v.policy, &v.object.to_string(), &v.message])},
                "suppressions": [{"kind": "external", "status": "accepted",
                    "justification": format!("PolicyException {} (approved by {}, expires {})", x.name, x.approved_by.join(", "), x.expires),
                    "properties": {"exception": x.name, "expires": x.expires, "ticket": x.ticket}}],
                "properties": {"requirements": v.requirements, "bundle": v.bundle, "bundleVersion": v.bundle_version}
            });
            if let Some(i) = index(&v.bundle, &v.policy) {
                res["ruleIndex"] = json!(i);
            }
            results.push(res);
        }
        for e in &r.decision.errors {
            let mut res = json!({
                "ruleId": rule_id(&e.bundle, &e.policy),
                "level": "error",
                "kind": "fail",
                "message": {"text": format!("{}: {}", e.object, e.message)},
                "locations": [location(&e.object)],
                "partialFingerprints": {"palisadeFinding/v1": fingerprint(&[&e.policy, &e.object.to_string(), "error"])},
            });
            if let Some(i) = index(&e.bundle, &e.policy) {
                res["ruleIndex"] = json!(i);
            }
            results.push(res);
        }
    }
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| json!({"level": "error", "message": {"text": e.to_string()}, "descriptor": {"id": e.code()}}))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "palisade",
                "version": crate::bundle::ENGINE_VERSION,
                "semanticVersion": crate::bundle::ENGINE_VERSION,
                "informationUri": "https://github.com/palisade-dev/palisade",
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": report.errors.is_empty(), "toolExecutionNotifications": notifications}],
            "results": results,
        }]
    })
}
