//! Bundle conformance (`palisade conformance`): whether a bundle someone hands you
//! is well formed, tested, deterministic and within its budgets, before it goes
//! near a cluster. Runs the bundle's own cases through the [`crate::tester`] (each
//! several times, every implementation of dual policies) and checks, per policy:
//!
//! | check | holds when |
//! |---|---|
//! | `requirements` | every requirement id exists in the framework the bundle declares |
//! | `parameters` | the parameters validate against the policy's `schema` (or a plugin's settings schema) |
//! | `cases` | at least one passing and one failing case |
//! | `cases-pass` | every case of the policy passes |
//! | `deterministic` | the same input gives the same answer every time |
//! | `implementations-agree` | VM and interpreter, and the Rego, WebAssembly and CEL implementations a policy names, answer alike on every case |
//! | `budget` | the slowest case is within `budget_ms` (else the timeout); plugin memory within its cap |
//! | `plugin` | the plugin passes `palisade plugin check` |
//!
//! Bundle-level checks: `manifest`, `version`, `framework`, `test-files`.
//!
//! ```
//! use palisade::conformance::{self, Options};
//!
//! let bundle = palisade::Bundle::from_dir("tests/bundles/basic")?;
//! let report = conformance::check_bundle(&bundle, &Options::default())?;
//! assert!(report.passed(), "{}", report.pretty(false));
//! # Ok::<(), palisade::Error>(())
//! ```

#[cfg(feature = "wasm")]
pub mod plugin;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::bundle::schema::ParameterSchema;
use crate::bundle::{Bundle, PolicySpec};
use crate::error::Result;
use crate::report::junit::{self, JCase, JOutcome, JSuite};
use crate::tester::{self, BundleReport, CaseKind, CaseResult, Status, TestOptions};

/// How a conformance run works.
#[derive(Debug, Clone)]
pub struct Options {
    /// Evaluations of each case (at least 2 for the determinism check).
    pub repeat: usize,
    /// Plugin host settings (memory caps and deadlines policies fall back to).
    #[cfg(feature = "wasm")]
    pub wasm: crate::wasm::WasmOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            repeat: 3,
            #[cfg(feature = "wasm")]
            wasm: crate::wasm::WasmOptions::default(),
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The check holds.
    Pass,
    /// The check does not hold: a problem.
    Fail,
    /// The check does not apply (e.g. no plugin, no schema).
    Skip,
}

/// One check of the bundle or of one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The policy, or `None` for a bundle-level check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Stable check name (`cases-pass`, `budget`, ...).
    pub check: &'static str,
    /// Outcome.
    pub outcome: Outcome,
    /// What was found (the evidence, or what is wrong).
    pub detail: String,
}

impl Check {
    /// `policy: check: detail` (or `bundle: check: detail`), the one-line form of a problem.
    pub fn line(&self) -> String {
        format!("{}: {}: {}", self.policy.as_deref().unwrap_or("bundle"), self.check, self.detail)
    }
}

/// The conformance of one bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Bundle name (or the path, when the manifest did not load).
    pub bundle: String,
    /// Bundle version, when the manifest loaded.
    pub version: Option<String>,
    /// Every check, bundle-level first, then per policy in manifest order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The report of a bundle whose manifest does not load: one failed check.
    pub fn unloadable(path: &str, error: &crate::Error) -> Report {
        Report {
            bundle: path.to_string(),
            version: None,
            checks: vec![Check { policy: None, check: "manifest", outcome: Outcome::Fail, detail: error.to_string() }],
        }
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The failed checks.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// Text: a header, one line per problem (every check with `verbose`), a summary.
    pub fn pretty(&self, verbose: bool) -> String {
        let mut out = String::new();
        let version = self.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        let _ = writeln!(out, "conformance of bundle {}{version}", self.bundle);
        for c in &self.checks {
            let tag = match c.outcome {
                Outcome::Pass if verbose => "PASS",
                Outcome::Skip if verbose => "SKIP",
                Outcome::Fail => "FAIL",
                _ => continue,
            };
            let _ = writeln!(out, "  {tag}  {}", c.line());
        }
        let n = |o| self.checks.iter().filter(|c| c.outcome == o).count();
        let policies =
            self.checks.iter().filter_map(|c| c.policy.as_deref()).collect::<std::collections::BTreeSet<_>>();
        let _ = writeln!(
            out,
            "{}: {} policies, {} checks: {} passed, {} failed, {} not applicable",
            if self.passed() { "ok" } else { "FAILED" },
            policies.len(),
            self.checks.len(),
            n(Outcome::Pass),
            n(Outcome::Fail),
            n(Outcome::Skip)
        );
        out
    }

    /// JSON: `{"passed": bool, "bundle": ..., "checks": [...]}`.
    pub fn json(&self) -> String {
        let v = serde_json::json!({"passed": self.passed(), "bundle": self.bundle, "version": self.version, "checks": self.checks});
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    }

    /// JUnit XML: one case per check, classname `bundle.policy`.
    pub fn junit(&self) -> String {
        let cases = self
            .checks
            .iter()
            .map(|c| JCase {
                classname: format!("{}.{}", self.bundle, c.policy.as_deref().unwrap_or("bundle")),
                name: c.check.to_string(),
                time: 0.0,
                outcome: match c.outcome {
                    Outcome::Pass => JOutcome::Pass,
                    Outcome::Skip => JOutcome::Skipped(c.detail.clone()),
                    Outcome::Fail => JOutcome::Failure(c.detail.clone(), c.line()),
                },
            })
            .collect();
        let version = self.version.as_deref().unwrap_or("unloadable");
        junit::render(&[JSuite { name: format!("conformance {} {version}", self.bundle), cases }])
    }
}

/// Runs every check on a loaded bundle. Fails only when the bundle does not compile.
pub fn check_bundle(bundle: &Bundle, options: &Options) -> Result<Report> {
    let mut checks = Vec::new();
    let mut bundle_check = |check, outcome, detail: String| checks.push(Check { policy: None, check, outcome, detail });
    let manifest = bundle.manifest();
    bundle_check(
        "manifest",
        Outcome::Pass,
        format!("bundle.toml follows the schema; {} policies", bundle.policies().len()),
    );
    bundle_check("version", Outcome::Pass, format!("{} is semver", manifest.bundle.version));
    let framework = manifest.bundle.framework.as_deref();
    let known = framework.and_then(crate::framework::requirements);
    match (framework, known) {
        (Some(f), Some(reqs)) => bundle_check("framework", Outcome::Pass, format!("{f} ({} requirements)", reqs.len())),
        (Some(f), None) => bundle_check(
            "framework",
            Outcome::Fail,
            format!("{f} is not a framework Palisade ships (known: {})", crate::framework::PCI_DSS_4_0_1),
        ),
        (None, _) => bundle_check("framework", Outcome::Skip, "the bundle declares no framework".into()),
    }

    let tests = match tester::run_bundle(bundle, &TestOptions { repeat: options.repeat.max(2), ..Default::default() }) {
        Ok(tests) => tests,
        // A policy that does not compile (or a plugin that does not load) stops the run.
        Err(e) => {
            bundle_check("compiles", Outcome::Fail, e.to_string());
            return Ok(Report {
                bundle: bundle.name().to_string(),
                version: Some(bundle.version().to_string()),
                checks,
            });
        }
    };
    bundle_check("compiles", Outcome::Pass, "every policy compiles and every plugin loads".into());
    if tests.problems.is_empty() {
        bundle_check("test-files", Outcome::Pass, format!("{} cases", tests.cases.len()));
    }
    for p in &tests.problems {
        bundle_check("test-files", Outcome::Fail, p.clone());
    }
    for c in tests.cases.iter().filter(|c| c.policy.is_none() && c.status != Status::Passed) {
        bundle_check("cases-pass", Outcome::Fail, case_line(c, c.reasons()));
    }

    for spec in bundle.policies() {
        let mut push = |check, outcome, detail| {
            checks.push(Check { policy: Some(spec.id.clone()), check, outcome, detail });
        };
        let (outcome, detail) = requirements(spec, framework, known);
        push("requirements", outcome, detail);
        let plugin = plugin_check(bundle, spec, options);
        let (outcome, detail) = parameters(bundle, spec, plugin.as_ref());
        push("parameters", outcome, detail);
        let unstable_plugin = plugin_nondeterminism(plugin.as_ref());
        for (check, outcome, detail) in case_checks(spec, &tests, bundle, options, unstable_plugin) {
            push(check, outcome, detail);
        }
        let (outcome, detail) = plugin_outcome(plugin.as_ref(), &tests, spec);
        push("plugin", outcome, detail);
    }
    Ok(Report { bundle: bundle.name().to_string(), version: Some(bundle.version().to_string()), checks })
}

fn requirements(
    spec: &PolicySpec,
    framework: Option<&str>,
    known: Option<&BTreeMap<String, crate::framework::Requirement>>,
) -> (Outcome, String) {
    if spec.requirements.is_empty() {
        return (Outcome::Skip, "the policy maps to no requirement".into());
    }
    let Some(known) = known else {
        return match framework {
            None => (
                Outcome::Fail,
                "requirement ids given but the bundle declares no `framework` to check them against".into(),
            ),
            Some(f) => {
                (Outcome::Fail, format!("cannot check {} against unknown framework {f}", spec.requirements.join(", ")))
            }
        };
    };
    let unknown: Vec<&str> = spec.requirements.iter().map(String::as_str).filter(|r| !known.contains_key(*r)).collect();
    if unknown.is_empty() {
        (Outcome::Pass, spec.requirements.join(", "))
    } else {
        (Outcome::Fail, format!("{} not in {}", unknown.join(", "), framework.unwrap_or_default()))
    }
}

/// The outcome of `palisade plugin check` on a policy's plugin.
struct PluginOutcome {
    #[cfg(feature = "wasm")]
    report: plugin::CheckReport,
}

#[cfg(feature = "wasm")]
fn plugin_check(bundle: &Bundle, spec: &PolicySpec, options: &Options) -> Option<PluginOutcome> {
    let path = spec.wasm.as_deref()?;
    let bytes = bundle.file(path)?;
    let mut wasm = options.wasm.clone();
    if let Some(mb) = spec.memory_mb {
        wasm.default_memory_mb = mb;
    }
    if let Some(ms) = spec.timeout_ms {
        wasm.default_deadline = std::time::Duration::from_millis(ms);
    }
    Some(PluginOutcome { report: plugin::check(path, bytes, &spec.parameters, wasm) })
}

#[cfg(not(feature = "wasm"))]
fn plugin_check(_: &Bundle, _: &PolicySpec, _: &Options) -> Option<PluginOutcome> {
    None
}

fn plugin_outcome(plugin: Option<&PluginOutcome>, _tests: &BundleReport, spec: &PolicySpec) -> (Outcome, String) {
    if spec.wasm.is_none() {
        return (Outcome::Skip, "no WebAssembly implementation".into());
    }
    #[cfg(feature = "wasm")]
    if let Some(p) = plugin {
        // Determinism is reported by the `deterministic` check (see `plugin_nondeterminism`).
        let failed: Vec<String> = p
            .report
            .checks
            .iter()
            .filter(|c| !c.passed && c.check != plugin::DETERMINISM)
            .map(|c| format!("{} ({})", c.check, c.detail))
            .collect();
        let total = p.report.checks.len();
        return if failed.is_empty() {
            (Outcome::Pass, format!("{total} plugin checks passed (sha256 {})", &p.report.sha256[..12]))
        } else {
            (Outcome::Fail, format!("plugin check failed: {}", failed.join("; ")))
        };
    }
    let _ = plugin;
    (Outcome::Fail, "this build has no WebAssembly support (feature `wasm`)".into())
}

fn parameters(bundle: &Bundle, spec: &PolicySpec, plugin: Option<&PluginOutcome>) -> (Outcome, String) {
    let (schema, source): (std::result::Result<ParameterSchema, String>, String) = match &spec.schema {
        Some(file) => match bundle.text(file) {
            Ok(text) => (ParameterSchema::parse(text), file.clone()),
            Err(e) => (Err(e.to_string()), file.clone()),
        },
        None => match plugin_schema(plugin) {
            Some(value) => (ParameterSchema::compile(&value), "the plugin's settings schema".into()),
            None if spec.parameters.as_object().is_none_or(|m| m.is_empty()) => {
                return (Outcome::Skip, "no parameters".into());
            }
            None => return (Outcome::Skip, "parameters given but no `schema` declared".into()),
        },
    };
    match schema {
        Err(e) => (Outcome::Fail, format!("{source} {e}")),
        Ok(s) => match s.violations(&spec.parameters).as_slice() {
            [] => (Outcome::Pass, format!("valid against {source}")),
            v => (Outcome::Fail, format!("do not match {source}: {}", v.join("; "))),
        },
    }
}

/// The plugin check's own determinism failure, reported under `deterministic`.
#[cfg(feature = "wasm")]
fn plugin_nondeterminism(plugin: Option<&PluginOutcome>) -> Option<String> {
    let check = plugin?.report.checks.iter().find(|c| c.check == plugin::DETERMINISM && !c.passed)?;
    Some(format!("plugin check: {}", check.detail))
}

#[cfg(not(feature = "wasm"))]
fn plugin_nondeterminism(_: Option<&PluginOutcome>) -> Option<String> {
    None
}

#[cfg(feature = "wasm")]
fn plugin_schema(plugin: Option<&PluginOutcome>) -> Option<Value> {
    let text = plugin?.report.plugin.as_ref()?.settings_schema.as_deref()?;
    serde_json::from_str(text).ok()
}

#[cfg(not(feature = "wasm"))]
fn plugin_schema(_: Option<&PluginOutcome>) -> Option<Value> {
    None
}

/// `cases`, `cases-pass`, `deterministic`, `implementations-agree` and `budget`,
/// from the test run.
fn case_checks(
    spec: &PolicySpec,
    tests: &BundleReport,
    bundle: &Bundle,
    options: &Options,
    unstable_plugin: Option<String>,
) -> Vec<(&'static str, Outcome, String)> {
    let mine: Vec<&CaseResult> = tests.cases.iter().filter(|c| c.policy.as_deref() == Some(&spec.id)).collect();
    let mut out = Vec::new();
    let lacking: Vec<&str> = tests
        .untested
        .iter()
        .filter(|u| u.policy == spec.id)
        .map(|u| match u.lacks {
            CaseKind::Passing => "no passing case (a case expecting no finding)",
            CaseKind::Failing => "no failing case (a case expecting a finding)",
        })
        .collect();
    out.push(if lacking.is_empty() {
        ("cases", Outcome::Pass, format!("{} cases", mine.len()))
    } else {
        ("cases", Outcome::Fail, lacking.join("; "))
    });
    let failing: Vec<String> =
        mine.iter().filter(|c| !c.failures.is_empty()).map(|c| case_line(c, &c.failures)).collect();
    out.push(match failing.as_slice() {
        [] if mine.is_empty() => ("cases-pass", Outcome::Skip, "no cases".into()),
        [] => ("cases-pass", Outcome::Pass, format!("{} of {} passed", mine.len(), mine.len())),
        f => ("cases-pass", Outcome::Fail, format!("{} of {} failed: {}", f.len(), mine.len(), f.join(" | "))),
    });
    let unstable: Vec<String> = mine
        .iter()
        .filter_map(|c| c.nondeterminism.first().map(|n| format!("{}: case {:?}: {n}", c.file, c.name)))
        .chain(unstable_plugin)
        .collect();
    out.push(match unstable.as_slice() {
        [] => ("deterministic", Outcome::Pass, format!("each case evaluated {} times", options.repeat.max(2))),
        u => ("deterministic", Outcome::Fail, u.join(" | ")),
    });
    let disagreeing: Vec<String> = mine
        .iter()
        .filter_map(|c| c.disagreements.first().map(|d| format!("{}: case {:?}: {d}", c.file, c.name)))
        .collect();
    let kinds = crate::backend::implementations(spec);
    let dual = kinds.len() > 1;
    let vm = spec.rego.is_some()
        && spec.rego_execution.unwrap_or(bundle.manifest().bundle.rego_execution) == crate::bundle::RegoExecution::Vm;
    // The implementation that runs, resolved as the engine resolves it.
    let runs_wasm = crate::backend::resolve(bundle, spec, None) == crate::bundle::BackendKind::Wasm;
    out.push(match disagreeing.as_slice() {
        [] if !dual && !vm => ("implementations-agree", Outcome::Skip, "one implementation".into()),
        [] => {
            let what = if dual {
                kinds.iter().map(|k| k.label()).collect::<Vec<_>>().join(" and ")
            } else {
                "Rego VM and interpreter".to_string()
            };
            ("implementations-agree", Outcome::Pass, format!("{what} agree on all {} cases", mine.len()))
        }
        d => ("implementations-agree", Outcome::Fail, d.join(" | ")),
    });
    out.push(budget(spec, tests, options, runs_wasm));
    out
}

/// How far past its budget the fastest evaluation of a case may go before the
/// budget check fails.
pub const BUDGET_TOLERANCE: u64 = 2;

fn budget(spec: &PolicySpec, tests: &BundleReport, options: &Options, wasm: bool) -> (&'static str, Outcome, String) {
    let (limit_ms, declared) = match (spec.budget_ms, spec.timeout_ms) {
        (Some(b), _) => (b, "declared budget_ms"),
        (None, Some(t)) => (t, "timeout_ms"),
        #[cfg(feature = "wasm")]
        (None, None) if wasm => (options.wasm.default_deadline.as_millis() as u64, "default plugin deadline"),
        (None, None) => (crate::engine::DEFAULT_REGO_TIMEOUT.as_millis() as u64, "default Rego timeout"),
    };
    let mut slowest: Option<(u64, &CaseResult)> = None;
    let mut peak: Option<u64> = None;
    for case in &tests.cases {
        for cost in case.costs.iter().filter(|c| c.policy == spec.id) {
            if slowest.is_none_or(|(d, _)| cost.duration_us > d) {
                slowest = Some((cost.duration_us, case));
            }
            peak = peak.max(cost.memory_bytes);
        }
    }
    let Some((us, case)) = slowest else {
        return ("budget", Outcome::Skip, "no case evaluates the policy".into());
    };
    let mut problems = Vec::new();
    #[cfg_attr(not(feature = "wasm"), allow(unused_mut))]
    let mut detail = format!("slowest case {us} µs ({}: {:?}) of {limit_ms} ms ({declared})", case.file, case.name);
    // Times on a shared machine vary: the fastest of the repeated evaluations is
    // held to a generous multiple of the budget, so only a policy that is really
    // too slow fails, and the same policy fails on every run.
    if us > limit_ms * 1000 * BUDGET_TOLERANCE {
        problems.push(format!(
            "takes {us} µs on case {:?} ({}), over {BUDGET_TOLERANCE}x its {limit_ms} ms {declared}",
            case.name, case.file
        ));
    }
    #[cfg(feature = "wasm")]
    if let Some(bytes) = peak {
        let cap_mb = spec.memory_mb.unwrap_or(options.wasm.default_memory_mb);
        let _ = write!(detail, "; peak plugin memory {} KiB of {cap_mb} MiB", bytes / 1024);
        if bytes > u64::from(cap_mb) * 1024 * 1024 {
            problems.push(format!("plugin memory {} KiB over its {cap_mb} MiB cap", bytes / 1024));
        }
    }
    let _ = (peak, wasm, options);
    if problems.is_empty() { ("budget", Outcome::Pass, detail) } else { ("budget", Outcome::Fail, problems.join("; ")) }
}

fn case_line<'a>(c: &CaseResult, reasons: impl IntoIterator<Item = &'a String>) -> String {
    let reasons: Vec<&str> = reasons.into_iter().map(String::as_str).collect();
    format!("{}: case {:?}: {}", c.file, c.name, reasons.join("; "))
}
