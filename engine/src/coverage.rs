//! Rego line coverage: which lines of each policy and library module the bundle's
//! test cases evaluated (`palisade test --coverage`). Gathered by regorus's
//! interpreter, so an engine recording coverage runs its Rego on the interpreter.
//!
//! ```
//! use palisade::coverage::Coverage;
//! use palisade::tester::{self, TestOptions};
//!
//! let coverage = Coverage::new();
//! let bundle = palisade::Bundle::from_dir("tests/bundles/basic")?;
//! let options = TestOptions { coverage: Some(coverage.clone()), ..Default::default() };
//! assert!(tester::run_bundle(&bundle, &options)?.passed());
//! let report = coverage.report();
//! assert!(report.percent > 50.0, "{}", report.pretty());
//! # Ok::<(), palisade::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// A coverage collector, shared by every engine a test run builds. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    files: Arc<Mutex<BTreeMap<String, Lines>>>,
}

#[derive(Debug, Clone, Default)]
struct Lines {
    /// Whether any evaluation reached the module.
    seen: bool,
    covered: BTreeSet<u32>,
    not_covered: BTreeSet<u32>,
}

impl Coverage {
    /// An empty collector.
    pub fn new() -> Coverage {
        Coverage::default()
    }

    /// Notes a module that can be covered, so one no case reaches is still listed.
    pub(crate) fn register(&self, file: &str) {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).entry(file.to_string()).or_default();
    }

    /// Adds what one evaluation covered in `file`.
    pub(crate) fn record(&self, file: &str, covered: &BTreeSet<u32>, not_covered: &BTreeSet<u32>) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = files.entry(file.to_string()).or_default();
        lines.seen = true;
        lines.covered.extend(covered);
        lines.not_covered.extend(not_covered);
    }

    /// The coverage so far, per file and overall.
    pub fn report(&self) -> CoverageReport {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = CoverageReport { files: Vec::new(), covered: 0, total: 0, percent: 100.0 };
        for (file, lines) in files.iter() {
            let uncovered: Vec<u32> = lines.not_covered.difference(&lines.covered).copied().collect();
            let covered = lines.covered.len();
            let total = covered + uncovered.len();
            out.covered += covered;
            out.total += total;
            out.files.push(FileCoverage {
                file: file.clone(),
                evaluated: lines.seen,
                covered,
                total,
                percent: percent(covered, total),
                uncovered,
            });
        }
        out.percent = percent(out.covered, out.total);
        out
    }
}

fn percent(covered: usize, total: usize) -> f64 {
    if total == 0 { 100.0 } else { covered as f64 * 100.0 / total as f64 }
}

/// Line coverage of every Rego module a test run loaded.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageReport {
    /// One entry per module.
    pub files: Vec<FileCoverage>,
    /// Lines evaluated, over all modules.
    pub covered: usize,
    /// Lines that could be evaluated, over all modules.
    pub total: usize,
    /// `covered / total` in percent (100 when there is nothing to cover).
    pub percent: f64,
}

/// Line coverage of one module.
#[derive(Debug, Clone, Serialize)]
pub struct FileCoverage {
    /// Path of the module (bundle origin and path inside the bundle).
    pub file: String,
    /// False when no case evaluated anything in the module (its lines are then unknown).
    pub evaluated: bool,
    /// Lines evaluated.
    pub covered: usize,
    /// Lines that could be evaluated.
    pub total: usize,
    /// `covered / total` in percent.
    pub percent: f64,
    /// Line numbers never evaluated.
    pub uncovered: Vec<u32>,
}

impl CoverageReport {
    /// One line per file (`percent  file  uncovered: 3-5, 9`), then the total.
    pub fn pretty(&self) -> String {
        let mut out = String::from("coverage:\n");
        for f in &self.files {
            if !f.evaluated {
                let _ = writeln!(out, "     -    {}  (no case evaluates this module)", f.file);
                continue;
            }
            let _ = write!(out, "  {:5.1}%  {}  ({}/{} lines)", f.percent, f.file, f.covered, f.total);
            if !f.uncovered.is_empty() {
                let _ = write!(out, "  uncovered: {}", ranges(&f.uncovered));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "  {:5.1}%  total ({}/{} lines)", self.percent, self.covered, self.total);
        out
    }
}

/// `[3, 4, 5, 9]` as `3-5, 9`.
fn ranges(lines: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = lines[i];
        let mut end = start;
        while i + 1 < lines.len() && lines[i + 1] == end + 1 {
            i += 1;
            end = lines[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_evaluations_and_lists_uncovered_ranges() {
        let c = Coverage::new();
        c.register("lib.rego");
        c.record("p.rego", &[3, 4].into(), &[5, 6, 7, 9].into());
        c.record("p.rego", &[5].into(), &[3, 6, 7, 9].into());
        let r = c.report();
        let p = r.files.iter().find(|f| f.file == "p.rego").unwrap();
        assert_eq!((p.covered, p.total), (3, 6));
        assert_eq!(ranges(&p.uncovered), "6-7, 9");
        assert!(r.files.iter().any(|f| f.file == "lib.rego" && !f.evaluated));
        assert_eq!(r.percent, 50.0);
        assert!(r.pretty().contains("uncovered: 6-7, 9"), "{}", r.pretty());
    }
}
