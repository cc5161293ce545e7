//! The plugin host as a [`Backend`]: every plugin policy of an engine in one
//! runtime (a component shared by several policies is compiled once), evaluated
//! per object with one fresh instance per component (the isolation unit described
//! in `mod.rs`).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;

use super::abi::Instance;
use super::policy::convert;
use super::sandbox::State;
use super::{Origin, PluginInfo, PluginSource, WasmOptions, WasmPolicy, WasmRuntime, forward_logs, one_line};
use crate::backend::{Backend, Evaluation, Failure, share};
use crate::decision::PolicyErrorKind;
use crate::input::Input;

/// What the engine shows about a plugin policy.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub slot: usize,
    pub info: PluginInfo,
    pub sha256: String,
    /// Loaded from the precompiled cache rather than compiled.
    pub cached: bool,
}

/// Every plugin policy of an engine.
#[derive(Debug)]
pub(crate) struct WasmBackend {
    options: WasmOptions,
    /// Created with the first plugin: it reserves the instance pool.
    runtime: Option<Arc<WasmRuntime>>,
    policies: Vec<WasmPolicy>,
}

impl WasmBackend {
    pub(crate) fn new(options: WasmOptions) -> WasmBackend {
        WasmBackend { options, runtime: None, policies: Vec::new() }
    }

    /// Loads a policy's plugin (digest check, compile or cache, metadata, settings);
    /// returns its slot.
    pub(crate) fn load(&mut self, src: &PluginSource<'_>) -> Result<usize, String> {
        let runtime = match &self.runtime {
            Some(r) => r.clone(),
            None => {
                let r = WasmRuntime::new(self.options.clone())?;
                self.runtime = Some(r.clone());
                r
            }
        };
        self.policies.push(WasmPolicy::load(&runtime, src)?);
        Ok(self.policies.len() - 1)
    }

    pub(crate) fn summary(&self, slot: usize) -> Summary {
        let p = &self.policies[slot];
        Summary { slot, info: p.info.clone(), sha256: p.sha256.clone(), cached: p.origin == Origin::Cached }
    }
}

impl Backend for WasmBackend {
    fn evaluate(&self, input: &Input, policies: &[usize]) -> Vec<Evaluation> {
        // The review as JSON once per object; every component reads the same text.
        let review = serde_json::to_string(input.review()).unwrap_or_default();
        let mut out: Vec<Option<Evaluation>> = vec![None; policies.len()];
        // Positions in `policies`, by component (one instance each).
        let mut components: Vec<(&str, super::Grants, Vec<usize>)> = Vec::new();
        for (pos, &slot) in policies.iter().enumerate() {
            let p = &self.policies[slot];
            if let Some(failure) = p.settings_error() {
                out[pos] = Some(Evaluation { outcome: Err(failure), duration: Default::default(), memory_bytes: None });
                continue;
            }
            match components.iter_mut().find(|(sha, grants, _)| *sha == p.sha256 && *grants == p.grants) {
                Some((_, _, members)) => members.push(pos),
                None => components.push((&p.sha256, p.grants, vec![pos])),
            }
        }
        for (_, _, members) in components {
            let members: Vec<(usize, &WasmPolicy)> =
                members.into_iter().map(|pos| (pos, &self.policies[policies[pos]])).collect();
            for (pos, evaluation) in run_component(&review, &members) {
                out[pos] = Some(evaluation);
            }
        }
        out.into_iter()
            .map(|e| {
                e.unwrap_or_else(|| Evaluation {
                    outcome: Err(Failure::new(
                        PolicyErrorKind::Runtime,
                        "internal error: the policy was not evaluated",
                    )),
                    duration: Default::default(),
                    memory_bytes: None,
                })
            })
            .collect()
    }
}

/// The policies of one component on one object, in one fresh instance: one
/// `evaluate-batch` call (memory cap the largest of theirs, deadline the sum), or
/// consecutive `evaluate` calls for an ABI 0.1.0 plugin. A failed call is re-run
/// for each policy alone so the failure is charged to the right one.
fn run_component(review: &str, members: &[(usize, &WasmPolicy)]) -> Vec<(usize, Evaluation)> {
    let first = members[0].1;
    let cap = members.iter().map(|(_, p)| p.memory_cap).max().unwrap_or(first.memory_cap);
    let deadline = members.iter().map(|(_, p)| p.deadline).sum();
    let mut store = first.store(cap, deadline);
    let start = Instant::now();
    let instance = match first.pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => {
            let failure =
                Failure::new(PolicyErrorKind::Runtime, format!("could not be instantiated: {}", one_line(&e)));
            let each = Evaluation { outcome: Err(failure), duration: start.elapsed(), memory_bytes: None };
            return members.iter().map(|(pos, _)| (*pos, each.clone())).collect();
        }
    };
    let settings: Vec<String> = members.iter().map(|(_, p)| p.settings_json.clone()).collect();
    let batch = instance.evaluate_batch(&mut store, review, &settings);
    forward_logs(&first.id, store.data_mut());
    match batch {
        Some(Ok(results)) if results.len() == members.len() => {
            let duration = share(start.elapsed(), members.len());
            let memory_bytes = Some(store.data().peak_memory as u64);
            members
                .iter()
                .zip(results)
                .map(|((pos, _), r)| (*pos, Evaluation { outcome: convert(r), duration, memory_bytes }))
                .collect()
        }
        Some(_) => alone(review, members),
        None => one_by_one(review, members, store, instance),
    }
}

/// Each policy in its own fresh instance, with its own limits.
fn alone(review: &str, members: &[(usize, &WasmPolicy)]) -> Vec<(usize, Evaluation)> {
    members
        .iter()
        .map(|(pos, p)| {
            let start = Instant::now();
            let (outcome, memory_bytes) = p.evaluate_alone(review);
            (*pos, Evaluation { outcome, duration: start.elapsed(), memory_bytes })
        })
        .collect()
}

/// ABI 0.1.0: `evaluate` per policy, in the shared instance, each call with its
/// policy's limits; after a failure the next policy gets a fresh instance.
fn one_by_one(
    review: &str,
    members: &[(usize, &WasmPolicy)],
    store: Store<State>,
    instance: Instance,
) -> Vec<(usize, Evaluation)> {
    let mut current = Some((store, instance));
    let mut out = Vec::new();
    for (pos, p) in members {
        let start = Instant::now();
        let (mut store, instance) = match current.take() {
            Some(found) => found,
            None => {
                let mut store = p.store(p.memory_cap, p.deadline);
                match p.pre.instantiate(&mut store) {
                    Ok(i) => (store, i),
                    Err(_) => {
                        let (outcome, memory_bytes) = p.evaluate_alone(review);
                        out.push((*pos, Evaluation { outcome, duration: start.elapsed(), memory_bytes }));
                        continue;
                    }
                }
            }
        };
        store.data_mut().prepare_call(p.memory_cap);
        store.set_epoch_deadline(WasmPolicy::ticks(p.deadline));
        let input = format!("{{\"review\":{review},\"parameters\":{}}}", p.settings_json);
        let result = instance.evaluate(&mut store, &input).map_err(|e| p.classify(&e, store.data(), p.deadline));
        forward_logs(&p.id, store.data_mut());
        let memory_bytes = Some(store.data().peak_memory as u64);
        let failed = result.is_err();
        let outcome = result.and_then(convert);
        out.push((*pos, Evaluation { outcome, duration: start.elapsed(), memory_bytes }));
        if !failed {
            current = Some((store, instance));
        }
    }
    out
}
