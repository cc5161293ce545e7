//! Compiling Rego: a bundle's modules go into one regorus engine (a *unit*; a
//! second one only when two policies' modules declare the same package), and the
//! policies that run on the VM are grouped by parameters they can share (see
//! `groups.rs`): each group is one bytecode program whose entry point evaluates
//! every member's rules in a single run, so the library rules they share are
//! computed once per object.
//!
//! A group's entry point is a generated module:
//!
//! ```rego
//! package palisade_plan.g0
//! out contains ["3.violation", data.pci.network.pod_coverage.violation] if input.__palisade_run["3"]
//! ```
//!
//! `input.__palisade_run` names the members that matched the object, so a member
//! that does not match costs nothing. Parameters are bound per group, converted once
//! at load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regorus::Value as RValue;
use regorus::rvm::program::Program;

use super::{RuleKind, tidy, timer};
use crate::bundle::{RegoExecution, RegoVersion};

/// A module: display path (`bundle/file.rego`, used in `file:line:col`), text, syntax.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    pub path: String,
    pub text: String,
    pub version: RegoVersion,
}

/// What compiling one Rego policy needs.
#[derive(Debug)]
pub(crate) struct PolicySource<'a> {
    /// Policies of one bundle share its library modules and may share a unit.
    pub bundle: &'a str,
    /// Library modules of the bundle (and its dependencies).
    pub libs: &'a [Module],
    /// The policy's module.
    pub module: Module,
    /// Library modules of this policy alone.
    pub policy_libs: Vec<Module>,
    pub parameters: &'a serde_json::Value,
    pub timeout: Duration,
    pub execution: RegoExecution,
    pub coverage: Option<&'a crate::coverage::Coverage>,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub unit: usize,
    /// Rule paths to evaluate, with how each reports.
    pub rules: Vec<(String, RuleKind)>,
    pub parameters: RValue,
    pub timeout: Duration,
    /// The VM group it runs in; `None` runs it on the interpreter.
    pub group: Option<usize>,
    /// For the interpreter: an engine with just the policy's module and libraries
    /// (cloning a whole unit per evaluation would cost far more).
    pub engine: Option<regorus::Engine>,
    pub reads_inventory: bool,
    pub coverage: Option<crate::coverage::Coverage>,
}

/// Policies that share a unit and parameters, evaluated in one VM run.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub parameters: RValue,
    pub entry: String,
    pub program: Arc<Program>,
}

/// One regorus engine holding a bundle's modules, for compiling VM programs.
#[derive(Debug, Clone)]
struct Unit {
    pub bundle: String,
    pub engine: regorus::Engine,
    /// Module paths already added, and the package of each policy module.
    paths: BTreeMap<String, String>,
    packages: BTreeMap<String, String>,
}

/// The compiled policies and groups.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub slots: Vec<Slot>,
    pub groups: Vec<Group>,
}

/// Compiles every policy. The error names the policy (its index) and the
/// `file:line:col` of the problem.
pub(crate) fn compile(sources: &[PolicySource<'_>]) -> Result<Compiled, (usize, String)> {
    let mut units: Vec<Unit> = Vec::new();
    // Each bundle's libraries, parsed once: every unit of the bundle and every
    // interpreter policy that reaches them starts from a copy.
    let mut with_libs: BTreeMap<&str, Unit> = BTreeMap::new();
    let mut slots = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let package = package_of(&src.module.text);
        let unit = match units.iter().position(|u| u.bundle == src.bundle && u.accepts(&src.module, &package)) {
            Some(u) => u,
            None => {
                units.push(libs_unit(&mut with_libs, src).map_err(|e| (i, e))?);
                units.len() - 1
            }
        };
        let u = &mut units[unit];
        for lib in &src.policy_libs {
            u.add(lib).map_err(|e| (i, e))?;
        }
        let package = u.add(&src.module).map_err(|e| (i, e))?;
        u.packages.insert(package.clone(), src.module.path.clone());
        let rules = declared_rules(&u.engine, &src.module.path, &package).map_err(|e| (i, e))?;
        let reads_inventory = [&src.module]
            .into_iter()
            .chain(&src.policy_libs)
            .chain(src.libs)
            .any(|m| m.text.contains("data.inventory"));
        if let Some(c) = src.coverage {
            for m in src.libs.iter().chain(&src.policy_libs).chain([&src.module]) {
                c.register(&m.path);
            }
        }
        slots.push(Slot {
            unit,
            rules,
            parameters: RValue::from(src.parameters.clone()),
            timeout: src.timeout,
            group: None,
            engine: None,
            reads_inventory,
            coverage: src.coverage.cloned(),
        });
    }
    let groups = group(&mut units, &mut slots, sources)?;
    for (i, src) in sources.iter().enumerate() {
        if slots[i].group.is_some() {
            continue;
        }
        // The bundle's libraries only when the policy's modules name `data` at all
        // (nothing else reaches them): each evaluation clones the engine, and every
        // library module adds to that cost.
        let reaches_data = src.policy_libs.iter().chain([&src.module]).any(|m| m.text.contains("data"));
        let base = if reaches_data { libs_unit(&mut with_libs, src) } else { Unit::new(src, &[]) };
        slots[i].engine = Some(base.and_then(|b| solo(src, b)).map_err(|e| (i, e))?);
    }
    Ok(Compiled { slots, groups })
}

/// A unit holding just the libraries of `src`'s bundle (parsed on first use).
fn libs_unit<'a>(with_libs: &mut BTreeMap<&'a str, Unit>, src: &PolicySource<'a>) -> Result<Unit, String> {
    if let Some(u) = with_libs.get(src.bundle) {
        return Ok(u.clone());
    }
    let u = Unit::new(src, src.libs)?;
    with_libs.insert(src.bundle, u.clone());
    Ok(u)
}

/// An interpreter engine: `base` (empty, or the bundle's libraries) with the policy's
/// own libraries and module, analysed.
fn solo(src: &PolicySource<'_>, base: Unit) -> Result<regorus::Engine, String> {
    let mut unit = base;
    for m in src.policy_libs.iter().chain([&src.module]) {
        unit.add(m)?;
    }
    // Analyse, schedule and resolve imports now rather than on the first request.
    unit.engine.eval_bool_query("true".to_string(), false).map_err(|e| tidy(&e))?;
    Ok(unit.engine)
}

impl Unit {
    fn new(src: &PolicySource<'_>, libs: &[Module]) -> Result<Unit, String> {
        let mut unit = Unit {
            bundle: src.bundle.to_string(),
            engine: regorus::Engine::new(),
            paths: BTreeMap::new(),
            packages: BTreeMap::new(),
        };
        unit.engine.set_execution_timer_config(timer(src.timeout));
        #[cfg(feature = "oci")]
        crate::oci::builtin::register(&mut unit.engine).map_err(|e| tidy(&e))?;
        // Without registry support the builtin still exists, and says why it cannot answer.
        #[cfg(not(feature = "oci"))]
        unit.engine
            .add_extension(
                "palisade.image_signature".into(),
                3,
                Box::new(|_| {
                    anyhow::bail!(
                        "palisade.image_signature: this palisade was built without registry support (the `oci` feature)"
                    )
                }),
            )
            .map_err(|e| tidy(&e))?;
        for lib in libs {
            unit.add(lib)?;
        }
        Ok(unit)
    }

    /// Whether the module can join: new, the same module again, or a package no
    /// other policy module of this unit declares.
    fn accepts(&self, module: &Module, package: &str) -> bool {
        self.paths.contains_key(&module.path) || !self.packages.contains_key(package)
    }

    /// Adds a module once; returns its package (`data.x.y`).
    fn add(&mut self, m: &Module) -> Result<String, String> {
        if let Some(p) = self.paths.get(&m.path) {
            return Ok(p.clone());
        }
        self.engine.set_rego_v0(m.version == RegoVersion::V0);
        let package = self.engine.add_policy(m.path.clone(), m.text.clone()).map_err(|e| tidy(&e))?;
        self.paths.insert(m.path.clone(), package.clone());
        Ok(package)
    }
}

/// `data.` + the package a module declares, read without parsing (for grouping only;
/// regorus parses it for real when the module is added).
fn package_of(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package ").map(|p| format!("data.{}", p.trim())))
        .unwrap_or_default()
}

fn declared_rules(engine: &regorus::Engine, path: &str, package: &str) -> Result<Vec<(String, RuleKind)>, String> {
    let mut rules = Vec::new();
    for (name, kind) in [("violation", RuleKind::Violation), ("deny", RuleKind::Deny), ("warn", RuleKind::Warn)] {
        if engine.has_declared_rule_rooted_at(path, name).map_err(|e| tidy(&e))? {
            rules.push((format!("{package}.{name}"), kind));
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "{path}: package {} defines none of the rules `violation`, `deny` or `warn`",
            package.trim_start_matches("data.")
        ));
    }
    Ok(rules)
}

/// Groups the VM policies of each unit by parameters and compiles each group's
/// program; a group the VM cannot compile runs on the interpreter. Every group's
/// entry module is added before the first compile, so that regorus analyses each
/// unit's modules once, not once per group.
fn group(units: &mut [Unit], slots: &mut [Slot], sources: &[PolicySource<'_>]) -> Result<Vec<Group>, (usize, String)> {
    let mut by_unit: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, src) in sources.iter().enumerate() {
        if src.execution == RegoExecution::Vm && src.coverage.is_none() {
            by_unit.entry(slots[i].unit).or_default().push(i);
        }
    }
    let mut planned = Vec::new();
    for (unit, candidates) in by_unit {
        for merged in super::groups::partition(sources, &candidates) {
            let package = format!("palisade_plan.g{}", planned.len());
            let mut text = format!("package {package}\n\n");
            for &m in &merged.members {
                for (rule, _) in &slots[m].rules {
                    let name = rule.rsplit('.').next().unwrap_or_default();
                    text.push_str(&format!("out contains [\"{m}.{name}\", {rule}] if input.__palisade_run[\"{m}\"]\n"));
                }
            }
            let module = Module { path: format!("{package}.rego"), text, version: RegoVersion::V1 };
            units[unit].add(&module).map_err(|e| (merged.members[0], e))?;
            planned.push((unit, format!("data.{package}.out"), merged));
        }
    }
    let mut groups = Vec::new();
    for (unit, entry, merged) in planned {
        let Some(program) = compile_program(&mut units[unit].engine, &entry, &merged.members, slots) else { continue };
        let index = groups.len();
        for &m in &merged.members {
            slots[m].group = Some(index);
        }
        let parameters = RValue::from(serde_json::Value::Object(merged.parameters));
        groups.push(Group { parameters, entry, program });
    }
    Ok(groups)
}

/// One program: the group's entry point and every member rule (run alone to tell
/// which member failed when the group's run fails). `None` when the VM cannot
/// compile one of them.
fn compile_program(
    engine: &mut regorus::Engine,
    entry: &str,
    members: &[usize],
    slots: &[Slot],
) -> Option<Arc<Program>> {
    let mut entries = vec![entry.to_string()];
    for &m in members {
        entries.extend(slots[m].rules.iter().map(|(r, _)| r.clone()));
    }
    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
    let compiled = engine.compile_with_entrypoint(&entry.into()).ok()?;
    regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &refs).ok()
}
