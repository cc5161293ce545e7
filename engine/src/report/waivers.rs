//! The evidence report's account of exceptions: per requirement, what is not enforced,
//! why, who said so and until when (active), and what was waived before (expired).

use std::fmt::Write as _;

use quick_xml::escape::escape;
use serde::Serialize;

use crate::engine::Policy;
use crate::exception::Exceptions;
use crate::scan::ScanReport;

/// One exception for one policy.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WaiverRow {
    /// The PolicyException's name.
    pub exception: String,
    /// The policy it waives.
    pub policy: String,
    /// That policy's requirement ids.
    pub requirements: Vec<String>,
    /// The objects it covers, in words.
    pub scope: String,
    /// Why.
    pub justification: String,
    /// The risk accepted, when the exception states it.
    pub risk: Option<String>,
    /// What stands in for the control.
    pub compensating_control: String,
    /// Who approved it.
    pub approved_by: Vec<String>,
    /// Where it is recorded.
    pub ticket: Option<String>,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Whole days left; `None` once expired.
    pub days_left: Option<i64>,
    /// Findings of this report it waived.
    pub waived: usize,
}

/// A row per (exception, policy it names).
pub fn rows(exceptions: &Exceptions, policies: &[Policy], report: &ScanReport) -> Vec<WaiverRow> {
    let now = exceptions.now();
    let mut out = Vec::new();
    for e in exceptions.items() {
        for id in &e.policies {
            let policy =
                policies.iter().find(|p| p.spec().id == *id || format!("{}/{}", p.bundle().name, p.spec().id) == *id);
            let Some(policy) = policy else { continue };
            let waived = report
                .results
                .iter()
                .flat_map(|r| &r.decision.waived)
                .filter(|w| w.exception.name == e.name && w.violation.policy == policy.spec().id)
                .count();
            let active = e.expires > now;
            out.push(WaiverRow {
                exception: e.name.clone(),
                policy: policy.spec().id.clone(),
                requirements: policy.spec().requirements.clone(),
                scope: scope(e),
                justification: e.justification.clone(),
                risk: e.risk.clone(),
                compensating_control: e.compensating_control.clone(),
                approved_by: e.approved_by.clone(),
                ticket: e.ticket.clone(),
                expires: e.expires.to_string(),
                days_left: active.then(|| e.expires.duration_since(now).as_secs() / 86_400),
                waived,
            });
        }
    }
    out
}

fn scope(e: &crate::exception::PolicyException) -> String {
    let m = &e.scope;
    let mut parts = Vec::new();
    for (what, list) in [("namespaces", &m.namespaces), ("kinds", &m.kinds), ("names", &m.names)] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    let selector = m.selector.as_ref();
    let mut labels: Vec<String> =
        selector.and_then(|s| s.match_labels.as_ref()).into_iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    labels.extend(selector.and_then(|s| s.match_expressions.as_ref()).into_iter().flatten().map(|x| {
        let values = x.values.as_deref().unwrap_or_default();
        if values.is_empty() {
            format!("{} {}", x.key, x.operator)
        } else {
            format!("{} {} ({})", x.key, x.operator, values.join(", "))
        }
    }));
    if !labels.is_empty() {
        parts.push(format!("labels {}", labels.join(", ")));
    }
    parts.join("; ")
}

fn status(r: &WaiverRow) -> String {
    match r.days_left {
        Some(d) => format!("active, {d} days left"),
        None => "EXPIRED: waives nothing".into(),
    }
}

/// Markdown table of the rows for requirement `id` (nothing when there are none).
pub fn markdown(rows: &[WaiverRow], id: &str) -> String {
    let mine: Vec<&WaiverRow> = rows.iter().filter(|r| r.requirements.iter().any(|x| x == id)).collect();
    if mine.is_empty() {
        return String::new();
    }
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "\nExceptions:\n\n| Exception | Policy | Scope | Justification | Risk | Compensating control | Approved by | Ticket | Expires | Status | Waived here |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in mine {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.exception,
            r.policy,
            cell(&r.scope),
            cell(&r.justification),
            cell(r.risk.as_deref().unwrap_or("-")),
            cell(&r.compensating_control),
            cell(&r.approved_by.join(", ")),
            cell(r.ticket.as_deref().unwrap_or("-")),
            r.expires,
            status(r),
            r.waived
        );
    }
    out
}

/// HTML table of the rows for requirement `id` (nothing when there are none).
pub fn html(rows: &[WaiverRow], id: &str) -> String {
    let mine: Vec<&WaiverRow> = rows.iter().filter(|r| r.requirements.iter().any(|x| x == id)).collect();
    if mine.is_empty() {
        return String::new();
    }
    let x = |s: &str| escape(s).into_owned();
    let mut out = String::from(
        "<p>Exceptions:</p><table><tr><th>Exception</th><th>Policy</th><th>Scope</th><th>Justification</th><th>Risk</th><th>Compensating control</th><th>Approved by</th><th>Ticket</th><th>Expires</th><th>Status</th><th>Waived here</th></tr>\n",
    );
    for r in mine {
        let class = if r.days_left.is_some() { "audit" } else { "deny" };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
            x(&r.exception),
            x(&r.policy),
            x(&r.scope),
            x(&r.justification),
            x(r.risk.as_deref().unwrap_or("-")),
            x(&r.compensating_control),
            x(&r.approved_by.join(", ")),
            x(r.ticket.as_deref().unwrap_or("-")),
            x(&r.expires),
            x(&status(r)),
            r.waived
        );
    }
    out.push_str("</table>\n");
    out
}
