//! Output formats for scan results: `pretty` (for people), `json` (the whole
//! report), `jsonl` (one finding per line, for log pipelines), `sarif` (code
//! scanning) and `junit` (CI test reporters).

pub mod evidence;
pub mod junit;
pub mod policy_report;
pub mod sarif;
pub mod waivers;

use std::fmt::Write as _;

use serde_json::json;

use crate::decision::Action;
use crate::engine::Policy;
use crate::scan::ScanReport;
use junit::{JCase, JOutcome, JSuite};

/// A scan output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Pretty,
    /// One JSON document.
    Json,
    /// One JSON object per finding and per error.
    Jsonl,
    /// SARIF 2.1.0.
    Sarif,
    /// JUnit XML.
    Junit,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReports and a ClusterPolicyReport (YAML).
    PolicyReport,
    /// `openreports.io/v1alpha1` Reports and a ClusterReport (YAML).
    OpenReports,
}

/// Renders a scan report. `policies` are the engine's (SARIF and JUnit list them).
pub fn render(report: &ScanReport, policies: &[Policy], format: Format, color: bool) -> String {
    match format {
        Format::Pretty => pretty(report, color),
        Format::Json => {
            // Serialised straight from the report: no intermediate JSON value (an audit's
            // report is the largest thing it holds).
            #[derive(serde::Serialize)]
            struct WithSummary<'a> {
                #[serde(flatten)]
                report: &'a ScanReport,
                summary: serde_json::Value,
            }
            let mut text =
                serde_json::to_string_pretty(&WithSummary { report, summary: summary(report) }).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Jsonl => jsonl(report),
        Format::Sarif => {
            format!("{}\n", serde_json::to_string_pretty(&sarif::render(report, policies)).unwrap_or_default())
        }
        Format::Junit => junit::render(&junit_suites(report)),
        Format::PolicyReport | Format::OpenReports => {
            let flavor = if format == Format::PolicyReport {
                policy_report::Flavor::WgPolicy
            } else {
                policy_report::Flavor::OpenReports
            };
            policy_report::render(report, policies, flavor, jiff::Timestamp::now())
                .iter()
                .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap_or_default()))
                .collect()
        }
    }
}

fn summary(report: &ScanReport) -> serde_json::Value {
    let n = |f: &dyn Fn(&crate::scan::ObjectResult) -> bool| report.results.iter().filter(|r| f(r)).count();
    json!({
        "objects": report.results.len(),
        "denied": n(&|r| !r.decision.allowed),
        "with_warnings": n(&|r| !r.decision.warnings.is_empty()),
        "violations": report.results.iter().map(|r| r.decision.violations.len()).sum::<usize>(),
        "warnings": report.results.iter().map(|r| r.decision.warnings.len()).sum::<usize>(),
        "policy_errors": report.results.iter().map(|r| r.decision.errors.len()).sum::<usize>(),
        "waived": report.results.iter().map(|r| r.decision.waived.len()).sum::<usize>(),
        "input_errors": report.errors.len(),
    })
}

struct Paint(bool);
impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
}

fn pretty(report: &ScanReport, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for r in &report.results {
        let d = &r.decision;
        if d.violations.is_empty() && d.warnings.is_empty() && d.errors.is_empty() && d.waived.is_empty() {
            continue;
        }
        let status = if !d.allowed {
            p.c("1;31", "DENY")
        } else if !d.warnings.is_empty() {
            p.c("1;33", "WARN")
        } else if d.violations.is_empty() && d.errors.is_empty() {
            p.c("1;32", "WAIVED")
        } else {
            p.c("1;36", "AUDIT")
        };
        let place = r.object.source.as_ref().map(|s| format!("{}:{} ", s.file, s.line)).unwrap_or_default();
        let _ = writeln!(out, "{status} {place}{}", p.c("1", &r.object.to_string()));
        let mut findings: Vec<_> = d.violations.iter().chain(&d.warnings).collect();
        findings.sort_by_key(|v| (v.action, v.policy.clone()));
        for v in findings {
            let tag = match v.action {
                Action::Deny => p.c("31", "deny "),
                Action::Warn => p.c("33", "warn "),
                Action::Audit => p.c("36", "audit"),
            };
            let reqs = crate::decision::reqs(&v.framework, &v.requirements);
            let reqs = if reqs.is_empty() { reqs } else { format!(" {}", reqs.trim_end()) };
            let at = v.path.as_ref().map(|x| format!(" [at {x}]")).unwrap_or_default();
            let _ = writeln!(out, "  {tag} {}{reqs}: {}{at}{}", p.c("1", &v.policy), v.message, v.expired_note());
        }
        for w in &d.waived {
            let (v, e) = (&w.violation, &w.exception);
            let by = format!("exception {} until {}", e.name, e.expires);
            let _ = writeln!(out, "  {} {}: {} [{by}]", p.c("32", "waived"), p.c("1", &v.policy), v.message);
        }
        for e in &d.errors {
            let mode = match e.failure_mode {
                crate::FailureMode::Fail => "denies: failure mode fail",
                crate::FailureMode::Ignore => "ignored: failure mode ignore",
            };
            let _ = writeln!(out, "  {} {} ({mode})", p.c("35", "error"), e.message);
        }
    }
    for e in &report.errors {
        let _ = writeln!(out, "{} {e}", p.c("1;35", "ERROR"));
    }
    let s = summary(report);
    // A bundle from a registry is named with the digest its reference resolved to.
    let bundles: Vec<String> = report
        .bundles
        .iter()
        .map(|b| match b.origin.starts_with("oci://") {
            true => format!("{} {} ({})", b.name, b.version, b.origin),
            false => format!("{} {}", b.name, b.version),
        })
        .collect();
    let _ = writeln!(
        out,
        "\n{} objects scanned with {}: {} denied, {} with warnings, {} violations, {} warnings, {} policy errors, {} input errors{}",
        s["objects"],
        if bundles.is_empty() { "no bundle".to_string() } else { bundles.join(", ") },
        s["denied"],
        s["with_warnings"],
        s["violations"],
        s["warnings"],
        s["policy_errors"],
        s["input_errors"],
        if s["waived"] == 0 { String::new() } else { format!(", {} waived by exceptions", s["waived"]) }
    );
    out
}

fn jsonl(report: &ScanReport) -> String {
    let mut out = String::new();
    for r in &report.results {
        for v in r.decision.violations.iter().chain(&r.decision.warnings) {
            let mut line = serde_json::to_value(v).unwrap_or_default();
            line["type"] = json!("finding");
            out.push_str(&line.to_string());
            out.push('\n');
        }
        for w in &r.decision.waived {
            let mut line = serde_json::to_value(w).unwrap_or_default();
            line["type"] = json!("waived");
            out.push_str(&line.to_string());
            out.push('\n');
        }
        for e in &r.decision.errors {
            let mut line = serde_json::to_value(e).unwrap_or_default();
            line["type"] = json!("policy_error");
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    for e in &report.errors {
        out.push_str(&json!({"type": "input_error", "code": e.code(), "message": e.to_string()}).to_string());
        out.push('\n');
    }
    out
}

fn junit_suites(report: &ScanReport) -> Vec<JSuite> {
    let mut cases = Vec::new();
    for r in &report.results {
        let classname = r
            .object
            .source
            .as_ref()
            .map(|s| format!("{}#{}", s.file, s.document))
            .unwrap_or_else(|| r.object.to_string());
        for ev in &r.decision.evaluated {
            let denials: Vec<String> = r
                .decision
                .violations
                .iter()
                .filter(|v| v.policy == ev.policy && v.bundle == ev.bundle && v.action == Action::Deny)
                .map(|v| format!("{}{}", v.message, v.expired_note()))
                .collect();
            let error = r.decision.errors.iter().find(|e| e.policy == ev.policy && e.bundle == ev.bundle);
            let waived =
                r.decision.waived.iter().find(|w| w.violation.policy == ev.policy && w.violation.bundle == ev.bundle);
            let outcome = if let Some(e) = error {
                JOutcome::Error(e.message.clone(), e.message.clone())
            } else if !denials.is_empty() {
                JOutcome::Failure(denials[0].clone(), denials.join("\n"))
            } else if let Some(w) = waived {
                JOutcome::Skipped(format!(
                    "waived by exception {} until {}: {}",
                    w.exception.name, w.exception.expires, w.violation.message
                ))
            } else {
                JOutcome::Pass
            };
            cases.push(JCase {
                classname: classname.clone(),
                name: format!("{} {}", ev.policy, r.object),
                time: 0.0,
                outcome,
            });
        }
    }
    for e in &report.errors {
        cases.push(JCase {
            classname: "input".into(),
            name: e.to_string(),
            time: 0.0,
            outcome: JOutcome::Error(e.code().into(), e.to_string()),
        });
    }
    vec![JSuite { name: "palisade scan".into(), cases }]
}
