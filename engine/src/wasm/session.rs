//! Instances for one evaluation. Every object gets fresh instances, so nothing a
//! plugin keeps in memory survives from one request to the next; within the
//! evaluation of one object, the policies that share a plugin (the 19 Pod Security
//! checks of one component, say) share its instance instead of paying for one
//! each. An instance that fails (trap, deadline, memory) is dropped, and the next
//! policy gets a fresh one.

use wasmtime::Store;

use super::sandbox::State;
use super::{PolicyBindings, WasmPolicy};

struct Entry {
    sha256: String,
    allow_clock: bool,
    store: Store<State>,
    bindings: PolicyBindings,
}

/// The instances of one evaluation.
#[derive(Default)]
pub(crate) struct Session {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("instances", &self.entries.len()).finish()
    }
}

impl Session {
    /// The instance of `policy`'s plugin, instantiated on first use.
    pub(crate) fn instance(&mut self, policy: &WasmPolicy) -> wasmtime::Result<(&mut Store<State>, &PolicyBindings)> {
        let found = self.entries.iter().position(|e| e.sha256 == policy.sha256 && e.allow_clock == policy.allow_clock);
        let index = match found {
            Some(i) => i,
            None => {
                let mut store = policy.new_store();
                let bindings = policy.pre.instantiate(&mut store)?;
                self.entries.push(Entry {
                    sha256: policy.sha256.clone(),
                    allow_clock: policy.allow_clock,
                    store,
                    bindings,
                });
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[index];
        Ok((&mut entry.store, &entry.bindings))
    }

    /// Drops `policy`'s instance (after a failure it must not be reused).
    pub(crate) fn discard(&mut self, policy: &WasmPolicy) {
        self.entries.retain(|e| !(e.sha256 == policy.sha256 && e.allow_clock == policy.allow_clock));
    }
}
