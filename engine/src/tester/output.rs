//! Reporters for test runs: `pretty`, `json` and `junit`.

use std::fmt::Write as _;

use super::{BundleReport, Status};
use crate::report::junit::{self, JCase, JOutcome, JSuite};

/// Human-readable: one line per failing case with its reasons, problems, and a summary.
pub fn pretty(reports: &[BundleReport], verbose: bool) -> String {
    let mut out = String::new();
    for r in reports {
        let (pass, fail, err) = r.counts();
        let _ = writeln!(out, "bundle {} {}", r.bundle, r.version);
        for c in &r.cases {
            if c.status == Status::Passed && !verbose {
                continue;
            }
            let tag = match c.status {
                Status::Passed => "PASS ",
                Status::Failed => "FAIL ",
                Status::Error => "ERROR",
            };
            let policy = c.policy.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            let _ = writeln!(out, "  {tag} {} {policy}{}", c.file, c.name);
            for f in c.reasons() {
                let _ = writeln!(out, "        {f}");
            }
        }
        for p in &r.problems {
            let _ = writeln!(out, "  PROBLEM {p}");
        }
        for u in &r.untested {
            let _ = writeln!(out, "  PROBLEM {u}");
        }
        let verdict = if r.passed() { "ok" } else { "FAILED" };
        let problems = r.problems.len() + r.untested.len();
        let _ = writeln!(out, "  {verdict}: {pass} passed, {fail} failed, {err} errors, {problems} problems");
    }
    out
}

/// The reports as one JSON document.
pub fn json(reports: &[BundleReport]) -> String {
    let v = serde_json::json!({
        "passed": reports.iter().all(BundleReport::passed),
        "bundles": reports,
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// JUnit XML: one suite per bundle, one case per test case, problems as errors.
pub fn junit(reports: &[BundleReport]) -> String {
    let suites: Vec<JSuite> = reports
        .iter()
        .map(|r| {
            let mut cases: Vec<JCase> = r
                .cases
                .iter()
                .map(|c| JCase {
                    classname: format!("{}.{}", r.bundle, c.policy.as_deref().unwrap_or("bundle")),
                    name: format!("{}: {}", c.file, c.name),
                    time: c.duration.as_secs_f64(),
                    outcome: match c.status {
                        Status::Passed => JOutcome::Pass,
                        Status::Failed => {
                            let reasons: Vec<&str> = c.reasons().map(String::as_str).collect();
                            JOutcome::Failure(
                                reasons.first().map(|r| r.to_string()).unwrap_or_default(),
                                reasons.join("\n"),
                            )
                        }
                        Status::Error => {
                            JOutcome::Error(c.failures.first().cloned().unwrap_or_default(), c.failures.join("\n"))
                        }
                    },
                })
                .collect();
            cases.extend(r.problems.iter().cloned().chain(r.untested.iter().map(|u| u.to_string())).map(|p| JCase {
                classname: format!("{}.bundle", r.bundle),
                name: p.clone(),
                time: 0.0,
                outcome: JOutcome::Error(p.clone(), p),
            }));
            JSuite { name: format!("{} {}", r.bundle, r.version), cases }
        })
        .collect();
    junit::render(&suites)
}
