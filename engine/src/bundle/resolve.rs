//! Finding and resolving bundles: a search path of bundle directories and packed
//! archives (`--bundle-path`, `PALISADE_BUNDLE_PATH`), `NAME@REQ` selections, and
//! `[dependencies]` resolved to one version per name — the newest that satisfies
//! every requirement. Conflicts name the whole chain; cycles are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};

use super::{Bundle, LoadOptions};
use crate::error::{Error, Result};

/// A bundle found on the search path.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Name.
    pub name: String,
    /// Version.
    pub version: Version,
    /// Directory or archive.
    pub path: PathBuf,
}

/// What to load: a bundle already at hand (directory or archive given by path), or
/// a name and version requirement to pick from the search path.
#[derive(Debug, Clone)]
pub enum Root {
    /// A loaded bundle.
    Bundle(Bundle),
    /// `NAME@REQ`.
    Named(String, VersionReq),
}

/// The bundles available on a search path.
#[derive(Debug, Clone, Default)]
pub struct BundleSource {
    candidates: Vec<Candidate>,
    options: LoadOptions,
}

fn is_archive(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".tar.gz") || p.to_string_lossy().ends_with(".tgz")
}

impl BundleSource {
    /// Scans `paths`: each is a bundle directory, an archive, or a directory holding
    /// bundle directories and archives (one level down).
    pub fn scan(paths: &[PathBuf], options: LoadOptions) -> Result<BundleSource> {
        let mut found = Vec::new();
        for p in paths {
            if p.join("bundle.toml").is_file() || is_archive(p) {
                found.push(p.clone());
                continue;
            }
            let entries = std::fs::read_dir(p).map_err(|e| Error::io(p, "cannot read bundle path", e))?;
            let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            children.sort();
            found.extend(children.into_iter().filter(|c| c.join("bundle.toml").is_file() || is_archive(c)));
        }
        let mut candidates = Vec::new();
        for path in found {
            // Only the identity is needed here; signatures are checked when a candidate is chosen.
            let b = Bundle::load(&path, &LoadOptions { trusted_keys: Vec::new(), ..options.clone() })?;
            candidates.push(Candidate { name: b.name().to_string(), version: b.version().clone(), path });
        }
        Ok(BundleSource { candidates, options })
    }

    /// Every bundle found.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    fn versions_of(&self, name: &str) -> Vec<&Candidate> {
        let mut v: Vec<&Candidate> = self.candidates.iter().filter(|c| c.name == name).collect();
        v.sort_by(|a, b| b.version.cmp(&a.version));
        v
    }

    /// Resolves the roots and their dependencies to one bundle per name, dependencies
    /// first, each carrying the library modules of the bundles it depends on.
    pub fn resolve(&self, roots: Vec<Root>) -> Result<Vec<Bundle>> {
        let mut pinned: BTreeMap<String, Bundle> = BTreeMap::new();
        // dependency name -> requirer -> (who, requirement)
        let mut needs: BTreeMap<String, BTreeMap<String, (String, VersionReq)>> = BTreeMap::new();
        for root in roots {
            match root {
                Root::Bundle(b) => {
                    if let Some(other) = pinned.get(b.name()) {
                        return Err(Error::Resolve {
                            message: format!(
                                "bundle {} is given twice ({} and {}); load one version of each bundle",
                                b.name(),
                                other.version(),
                                b.version()
                            ),
                        });
                    }
                    pinned.insert(b.name().to_string(), b);
                }
                Root::Named(name, req) => {
                    needs
                        .entry(name.clone())
                        .or_default()
                        .insert(format!("(command line {name}@{req})"), ("the command line".into(), req));
                }
            }
        }
        let mut selected: BTreeMap<String, Bundle> = BTreeMap::new();
        for b in pinned.values() {
            add_needs(&mut needs, b);
            selected.insert(b.name().to_string(), b.clone());
        }
        for _round in 0..64 {
            let mut changed = false;
            let names: Vec<String> = needs.keys().cloned().collect();
            for name in names {
                let reqs = &needs[&name];
                if let Some(b) = pinned.get(&name) {
                    if let Some((who, req)) = reqs.values().find(|(_, r)| !r.matches(b.version())) {
                        return Err(conflict(
                            &name,
                            reqs,
                            &[b.version().clone()],
                            Some(format!("{who} needs {name} {req}, but {name} {} was given", b.version())),
                        ));
                    }
                    continue;
                }
                let available = self.versions_of(&name);
                if available.is_empty() {
                    let who: Vec<String> = reqs.values().map(|(w, r)| format!("{w} needs {name} {r}")).collect();
                    return Err(Error::Resolve {
                        message: format!("{}; no bundle {name} on the bundle path", who.join("; ")),
                    });
                }
                let choice = available.iter().find(|c| reqs.values().all(|(_, r)| r.matches(&c.version)));
                let Some(choice) = choice else {
                    let versions: Vec<Version> = available.iter().map(|c| c.version.clone()).collect();
                    return Err(conflict(&name, reqs, &versions, None));
                };
                if selected.get(&name).is_some_and(|b| *b.version() == choice.version) {
                    continue;
                }
                let b = Bundle::load(&choice.path, &self.options)?;
                // The previous choice's own requirements no longer count.
                for deps in needs.values_mut() {
                    deps.retain(|requirer, _| requirer != &name);
                }
                add_needs(&mut needs, &b);
                selected.insert(name.clone(), b);
                changed = true;
            }
            // Drop bundles nothing requires any more (after a change of version).
            selected.retain(|n, _| pinned.contains_key(n) || needs.get(n).is_some_and(|r| !r.is_empty()));
            if !changed {
                return order(selected);
            }
        }
        Err(Error::Resolve { message: "dependency resolution did not settle after 64 rounds".into() })
    }
}

fn add_needs(needs: &mut BTreeMap<String, BTreeMap<String, (String, VersionReq)>>, b: &Bundle) {
    for (dep, req) in &b.manifest().dependencies {
        needs
            .entry(dep.clone())
            .or_default()
            .insert(b.name().to_string(), (format!("{} {}", b.name(), b.version()), req.clone()));
    }
}

fn conflict(
    name: &str,
    reqs: &BTreeMap<String, (String, VersionReq)>,
    available: &[Version],
    lead: Option<String>,
) -> Error {
    let mut parts: Vec<String> = reqs.values().map(|(who, r)| format!("{who} needs {name} {r}")).collect();
    if let Some(l) = lead {
        parts.insert(0, l);
    }
    let mut versions: Vec<&Version> = available.iter().collect();
    versions.sort();
    let list: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    Error::Resolve {
        message: format!(
            "no version of {name} satisfies every requirement: {}; available: {}",
            parts.join("; "),
            list.join(", ")
        ),
    }
}

/// Orders bundles dependencies first, refusing cycles, and gives each the library
/// modules of its (transitive) dependencies.
fn order(selected: BTreeMap<String, Bundle>) -> Result<Vec<Bundle>> {
    fn visit(
        name: &str,
        selected: &BTreeMap<String, Bundle>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(i) = stack.iter().position(|n| n == name) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|n| format!("{n} {}", selected[n].version())).collect();
            cycle.push(format!("{name} {}", selected[name].version()));
            return Err(Error::Resolve { message: format!("dependency cycle: {}", cycle.join(" -> ")) });
        }
        stack.push(name.to_string());
        for dep in selected[name].manifest().dependencies.keys() {
            if selected.contains_key(dep) {
                visit(dep, selected, stack, done, out)?;
            }
        }
        stack.pop();
        done.insert(name.to_string());
        out.push(name.to_string());
        Ok(())
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for name in selected.keys() {
        visit(name, &selected, &mut Vec::new(), &mut done, &mut out)?;
    }
    let mut ordered: Vec<Bundle> = Vec::new();
    for name in &out {
        let mut b = selected[name].clone();
        let mut libs = Vec::new();
        let mut seen = BTreeSet::new();
        collect_dep_libs(name, &selected, &mut libs, &mut seen)?;
        b.set_dependency_libs(libs);
        ordered.push(b);
    }
    Ok(ordered)
}

fn collect_dep_libs(
    name: &str,
    selected: &BTreeMap<String, Bundle>,
    libs: &mut Vec<(String, String)>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    for dep in selected[name].manifest().dependencies.keys() {
        if !seen.insert(dep.clone()) {
            continue;
        }
        let Some(d) = selected.get(dep) else { continue };
        for (path, text) in d.rego_libs()? {
            check_lib_package(d, &path, &text)?;
            libs.push((format!("{}/{path}", d.origin().display()), text));
        }
        collect_dep_libs(dep, selected, libs, seen)?;
    }
    Ok(())
}

/// The package naming rule for libraries shared through `[dependencies]`: bundle
/// `k8s-lib`'s library modules declare `package lib.k8s_lib` or a package below it
/// (`lib.k8s_lib.images`), so the libraries of two dependencies never merge into one
/// package. Dependents import them as `data.lib.k8s_lib`.
fn check_lib_package(dep: &Bundle, path: &str, text: &str) -> Result<()> {
    let root = format!("lib.{}", dep.name().replace('-', "_"));
    let package = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.split('#').next().unwrap_or(p).trim().to_string())
        .unwrap_or_default();
    if package == root || package.starts_with(&format!("{root}.")) {
        return Ok(());
    }
    Err(Error::Manifest {
        path: dep.origin().join("bundle.toml"),
        message: format!(
            "library module {path} declares package {package:?}: a bundle used as a dependency keeps its library \
             modules in package {root} (or below it), so that two dependencies never share a package"
        ),
    })
}
