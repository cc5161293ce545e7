//! The PCI DSS evidence report an assessor reads (`palisade report`): per
//! requirement, the policies enforcing it, what was checked (objects by kind and
//! namespace scope), how many passed, each finding with its object and message,
//! and the requirements outside the platform's reach with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use quick_xml::escape::escape;
use serde::Serialize;
use serde_json::Value;

use crate::engine::Policy;
use crate::exception::Exceptions;
use crate::framework::{self, Requirement};
use crate::scan::ScanReport;

/// The namespace label that holds a namespace's PCI DSS scope.
pub const SCOPE_LABEL: &str = "pci-dss.palisade.dev/scope";

/// Requirement groups with no platform rules, and why.
const OUT_OF_SCOPE: &[(&str, &str)] = &[
    (
        "9",
        "Physical access to cardholder data (facilities, media, point-of-interaction devices) is not visible in, nor changed by, the cluster's configuration; the evidence is the hosting provider's attestation and on-site controls.",
    ),
    (
        "12",
        "Organisational policies and programs (security policy, risk assessment, awareness, third-party management, incident response) are documents and processes of the organisation, not platform configuration.",
    ),
];

/// One finding in the report.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    /// `Kind/namespace/name`.
    pub object: String,
    /// File and line, when scanned from a file.
    pub location: Option<String>,
    /// The namespace's scope (`cde`, `connected`, `dmz`, or `out of scope`).
    pub scope: String,
    /// deny, warn, audit — or `error` when the policy failed to evaluate.
    pub action: String,
    /// What was found.
    pub message: String,
}

/// What one policy checked.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyEvidence {
    /// Bundle and policy id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Objects evaluated, by kind.
    pub checked: BTreeMap<String, usize>,
    /// Objects evaluated without a finding.
    pub passed: usize,
    /// Findings (waived ones included, with action `waived`).
    pub findings: Vec<FindingRow>,
}

/// One requirement and its policies.
#[derive(Debug, Clone, Serialize)]
pub struct RequirementEvidence {
    /// Requirement number.
    pub id: String,
    /// Title (the project's paraphrase).
    pub title: String,
    /// The policies enforcing it.
    pub policies: Vec<PolicyEvidence>,
}

/// A top-level requirement (1–12).
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// `1` … `12`.
    pub id: String,
    /// Title.
    pub title: String,
    /// Requirements with platform rules.
    pub requirements: Vec<RequirementEvidence>,
    /// Why the group has no platform rules, when it has none.
    pub out_of_scope: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// When it was generated (RFC 3339).
    pub generated: String,
    /// Bundles used (`name version (digest)`).
    pub bundles: Vec<String>,
    /// Objects scanned, by kind.
    pub objects_by_kind: BTreeMap<String, usize>,
    /// Objects scanned, by namespace scope.
    pub objects_by_scope: BTreeMap<String, usize>,
    /// Requirement groups 1–12.
    pub groups: Vec<Group>,
    /// Inputs that could not be read.
    pub input_errors: Vec<String>,
    /// Exceptions in force or expired (see [`Evidence::with_exceptions`]).
    pub waivers: Vec<super::waivers::WaiverRow>,
}

fn scope_of(namespace: Option<&str>, scopes: &BTreeMap<String, String>) -> String {
    match namespace {
        None => "cluster-scoped".into(),
        Some(ns) => scopes.get(ns).cloned().unwrap_or_else(|| "out of scope".into()),
    }
}

/// Builds the report from a scan. `namespaces` are the Namespace objects known
/// (scanned or given as inventory), for the scope of each object.
pub fn build(report: &ScanReport, policies: &[Policy], namespaces: &[&Value]) -> Evidence {
    let scopes: BTreeMap<String, String> = namespaces
        .iter()
        .filter_map(|ns| {
            let name = crate::object::name(ns)?;
            Some((name.to_string(), crate::object::label(ns, SCOPE_LABEL)?.to_string()))
        })
        .collect();
    let reqs = framework::requirements(framework::PCI_DSS_4_0_1);
    let title = |id: &str| reqs.and_then(|r| r.get(id)).map(|r: &Requirement| r.title.clone()).unwrap_or_default();

    let mut by_policy: BTreeMap<(String, String), PolicyEvidence> = BTreeMap::new();
    for p in policies {
        let key = (p.bundle().name.clone(), p.spec().id.clone());
        by_policy.insert(
            key,
            PolicyEvidence {
                id: format!("{}/{}", p.bundle().name, p.spec().id),
                title: p.spec().title.clone(),
                checked: BTreeMap::new(),
                passed: 0,
                findings: Vec::new(),
            },
        );
    }
    let mut objects_by_kind = BTreeMap::new();
    let mut objects_by_scope = BTreeMap::new();
    for r in &report.results {
        *objects_by_kind.entry(r.object.kind.clone()).or_insert(0) += 1;
        let scope = scope_of(r.object.namespace.as_deref(), &scopes);
        *objects_by_scope.entry(scope.clone()).or_insert(0) += 1;
        let d = &r.decision;
        for e in &d.evaluated {
            let Some(pe) = by_policy.get_mut(&(e.bundle.clone(), e.policy.clone())) else { continue };
            *pe.checked.entry(r.object.kind.clone()).or_insert(0) += 1;
            let of = |policy: &str, bundle: &str| policy == e.policy && bundle == e.bundle;
            // (action, message) of every finding of this policy: reported, waived, or an error.
            let rows: Vec<(String, String)> = d
                .violations
                .iter()
                .chain(&d.warnings)
                .filter(|v| of(&v.policy, &v.bundle))
                .map(|v| (v.action.to_string(), v.message.clone()))
                .chain(d.waived.iter().filter(|w| of(&w.violation.policy, &w.violation.bundle)).map(|w| {
                    let (v, x) = (&w.violation, &w.exception);
                    ("waived".to_string(), format!("{} (exception {} until {})", v.message, x.name, x.expires))
                }))
                .chain(
                    d.errors.iter().filter(|x| of(&x.policy, &x.bundle)).map(|x| ("error".into(), x.message.clone())),
                )
                .collect();
            if rows.is_empty() {
                pe.passed += 1;
            }
            for (action, message) in rows {
                pe.findings.push(FindingRow {
                    object: r.object.to_string(),
                    location: r.object.source.as_ref().map(|s| format!("{}:{}", s.file, s.line)),
                    scope: scope.clone(),
                    action,
                    message,
                });
            }
        }
    }

    // requirement id -> policies
    let mut req_policies: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for p in policies {
        for r in &p.spec().requirements {
            req_policies.entry(r.clone()).or_default().push((p.bundle().name.clone(), p.spec().id.clone()));
        }
    }
    let mut groups = Vec::new();
    for n in 1..=12u32 {
        let gid = n.to_string();
        let mut ids: Vec<&String> =
            req_policies.keys().filter(|id| id.split('.').next() == Some(gid.as_str())).collect();
        ids.sort_by_key(|i| framework::sort_key(i));
        let requirements: Vec<RequirementEvidence> = ids
            .into_iter()
            .map(|id| RequirementEvidence {
                id: id.clone(),
                title: title(id),
                policies: req_policies[id].iter().filter_map(|k| by_policy.get(k).cloned()).collect(),
            })
            .collect();
        let out_of_scope = if requirements.is_empty() {
            Some(
                OUT_OF_SCOPE
                    .iter()
                    .find(|(g, _)| *g == gid)
                    .map(|(_, why)| why.to_string())
                    .unwrap_or_else(|| "No policy of the loaded bundles maps to this requirement.".into()),
            )
        } else {
            None
        };
        groups.push(Group { id: gid.clone(), title: title(&gid), requirements, out_of_scope });
    }
    Evidence {
        generated: jiff::Timestamp::now().to_string(),
        bundles: report
            .bundles
            .iter()
            .map(|b| match b.origin.starts_with("oci://") {
                true => format!("{} {} ({}, from {})", b.name, b.version, b.digest, b.origin),
                false => format!("{} {} ({})", b.name, b.version, b.digest),
            })
            .collect(),
        objects_by_kind,
        objects_by_scope,
        groups,
        input_errors: report.errors.iter().map(|e| e.to_string()).collect(),
        waivers: Vec::new(),
    }
}

fn counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown rendering.
pub fn markdown(e: &Evidence) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# PCI DSS v4.0.1 platform evidence\n");
    let _ = writeln!(out, "Generated {} by palisade {}.\n", e.generated, crate::bundle::ENGINE_VERSION);
    let _ = writeln!(out, "- Bundles: {}", e.bundles.join("; "));
    let _ = writeln!(out, "- Objects checked by kind: {}", counts(&e.objects_by_kind));
    let _ = writeln!(out, "- Objects checked by namespace scope: {}", counts(&e.objects_by_scope));
    if !e.input_errors.is_empty() {
        let _ = writeln!(
            out,
            "- **Inputs that could not be read ({}):** {}",
            e.input_errors.len(),
            e.input_errors.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "\n## Summary\n\n| Requirement | Policies | Objects checked | Passed | Findings |\n| --- | --- | --- | --- | --- |"
    );
    for g in &e.groups {
        let policies: BTreeSet<&str> =
            g.requirements.iter().flat_map(|r| r.policies.iter().map(|p| p.id.as_str())).collect();
        let checked: usize = unique(g).iter().map(|p| p.checked.values().sum::<usize>()).sum();
        let passed: usize = unique(g).iter().map(|p| p.passed).sum();
        let findings: usize = unique(g).iter().map(|p| p.findings.len()).sum();
        if g.out_of_scope.is_some() {
            let _ = writeln!(out, "| {} {} | outside platform scope | - | - | - |", g.id, cell(&g.title));
        } else {
            let _ = writeln!(
                out,
                "| {} {} | {} | {checked} | {passed} | {findings} |",
                g.id,
                cell(&g.title),
                policies.len()
            );
        }
    }
    for g in &e.groups {
        let _ = writeln!(out, "\n## Requirement {}: {}\n", g.id, g.title);
        if let Some(why) = &g.out_of_scope {
            let _ = writeln!(out, "Outside the platform's scope. {why}");
            continue;
        }
        for r in &g.requirements {
            let _ = writeln!(out, "### {} {}\n", r.id, r.title);
            for p in &r.policies {
                let _ = writeln!(
                    out,
                    "- `{}` — {}: checked {} object(s) ({}), {} passed, {} finding(s)",
                    p.id,
                    p.title,
                    p.checked.values().sum::<usize>(),
                    counts(&p.checked),
                    p.passed,
                    p.findings.len()
                );
            }
            let findings: Vec<(&PolicyEvidence, &FindingRow)> =
                r.policies.iter().flat_map(|p| p.findings.iter().map(move |f| (p, f))).collect();
            if !findings.is_empty() {
                let _ =
                    writeln!(out, "\n| Policy | Object | Scope | Action | Finding |\n| --- | --- | --- | --- | --- |");
                for (p, f) in findings {
                    let at = f.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "| `{}` | {}{at} | {} | {} | {} |",
                        p.id,
                        cell(&f.object),
                        f.scope,
                        f.action,
                        cell(&f.message)
                    );
                }
            }
            out.push_str(&super::waivers::markdown(&e.waivers, &r.id));
            out.push('\n');
        }
    }
    out
}

impl Evidence {
    /// The report with a table, under each requirement, of the exceptions that waive its
    /// policies: scope, reason, compensating control, approver, ticket, days left, and
    /// the expired ones.
    pub fn with_exceptions(mut self, exceptions: &Exceptions, policies: &[Policy], report: &ScanReport) -> Evidence {
        self.waivers = super::waivers::rows(exceptions, policies, report);
        self
    }
}

/// Each policy once per group (a policy may map to several requirements of a group).
fn unique(g: &Group) -> Vec<&PolicyEvidence> {
    let mut seen = BTreeSet::new();
    g.requirements.iter().flat_map(|r| &r.policies).filter(|p| seen.insert(p.id.as_str())).collect()
}

/// HTML rendering: one self-contained file (inline CSS, no external assets).
pub fn html(e: &Evidence) -> String {
    let x = |s: &str| escape(s).into_owned();
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>PCI DSS v4.0.1 platform evidence</title>\n<style>\n\
         body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1b1b}\n\
         table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\n\
         th{background:#f2f2f2}.deny,.error{color:#a30000;font-weight:600}.warn{color:#8a5a00}.audit{color:#005a8a}.oos{color:#666;font-style:italic}\n\
         code{background:#f5f5f5;padding:0 .2em}h2{border-bottom:2px solid #ddd;margin-top:2em}\n</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>PCI DSS v4.0.1 platform evidence</h1>");
    let _ = writeln!(out, "<p>Generated {} by palisade {}.</p><ul>", x(&e.generated), crate::bundle::ENGINE_VERSION);
    let _ = writeln!(out, "<li>Bundles: {}</li>", x(&e.bundles.join("; ")));
    let _ = writeln!(out, "<li>Objects checked by kind: {}</li>", x(&counts(&e.objects_by_kind)));
    let _ = writeln!(out, "<li>Objects checked by namespace scope: {}</li>", x(&counts(&e.objects_by_scope)));
    if !e.input_errors.is_empty() {
        let _ =
            writeln!(out, "<li class=\"error\">Inputs that could not be read: {}</li>", x(&e.input_errors.join("; ")));
    }
    out.push_str("</ul>\n<h2>Summary</h2><table><tr><th>Requirement</th><th>Policies</th><th>Objects checked</th><th>Passed</th><th>Findings</th></tr>\n");
    for g in &e.groups {
        if g.out_of_scope.is_some() {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"#req-{}\">{} {}</a></td><td colspan=\"4\" class=\"oos\">outside platform scope</td></tr>",
                g.id,
                g.id,
                x(&g.title)
            );
            continue;
        }
        let ps = unique(g);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#req-{}\">{} {}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            g.id,
            g.id,
            x(&g.title),
            ps.len(),
            ps.iter().map(|p| p.checked.values().sum::<usize>()).sum::<usize>(),
            ps.iter().map(|p| p.passed).sum::<usize>(),
            ps.iter().map(|p| p.findings.len()).sum::<usize>()
        );
    }
    out.push_str("</table>\n");
    for g in &e.groups {
        let _ = writeln!(out, "<h2 id=\"req-{}\">Requirement {}: {}</h2>", g.id, g.id, x(&g.title));
        if let Some(why) = &g.out_of_scope {
            let _ = writeln!(out, "<p class=\"oos\">Outside the platform's scope. {}</p>", x(why));
            continue;
        }
        for r in &g.requirements {
            let _ = writeln!(out, "<h3>{} {}</h3><ul>", x(&r.id), x(&r.title));
            for p in &r.policies {
                let _ = writeln!(
                    out,
                    "<li><code>{}</code> — {}: checked {} object(s) ({}), {} passed, {} finding(s)</li>",
                    x(&p.id),
                    x(&p.title),
                    p.checked.values().sum::<usize>(),
                    x(&counts(&p.checked)),
                    p.passed,
                    p.findings.len()
                );
            }
            out.push_str("</ul>\n");
            let rows: Vec<(&PolicyEvidence, &FindingRow)> =
                r.policies.iter().flat_map(|p| p.findings.iter().map(move |f| (p, f))).collect();
            if !rows.is_empty() {
                out.push_str(
                    "<table><tr><th>Policy</th><th>Object</th><th>Scope</th><th>Action</th><th>Finding</th></tr>\n",
                );
                for (p, f) in rows {
                    let at = f.location.as_ref().map(|l| format!("<br><small>{}</small>", x(l))).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "<tr><td><code>{}</code></td><td>{}{at}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                        x(&p.id),
                        x(&f.object),
                        x(&f.scope),
                        x(&f.action),
                        x(&f.action),
                        x(&f.message)
                    );
                }
                out.push_str("</table>\n");
            }
            out.push_str(&super::waivers::html(&e.waivers, &r.id));
        }
    }
    out.push_str("</body></html>\n");
    out
}
