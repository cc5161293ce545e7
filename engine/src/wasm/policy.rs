//! One policy backed by a plugin: loading (digest pin, compile or cache, ABI and
//! metadata check, settings validation), fresh stores with the policy's limits, and
//! turning what a call returned or how it failed into an [`Outcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use super::abi::{Instance, Pre, RawResult};
use super::sandbox::{Grants, OutputLimits, State};
use super::{EPOCH_TICK, Origin, PluginInfo, WasmRuntime, cache, forward_logs, one_line, wasi};
use crate::backend::{Failure, Finding, Outcome};
use crate::decision::PolicyErrorKind;

/// What loading a plugin needs.
#[derive(Debug)]
pub(crate) struct PluginSource<'a> {
    pub id: &'a str,
    pub bytes: &'a [u8],
    /// The sha256 the manifest pins (hex); `None` only for `palisade plugin` commands.
    pub sha256: Option<&'a str>,
    pub memory_mb: Option<u32>,
    pub deadline: Option<Duration>,
    pub grants: Grants,
    pub settings: &'a serde_json::Value,
}

/// Resource use of one call, for `plugin check` and conformance budgets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallStats {
    pub duration: Duration,
    pub peak_memory: usize,
}

/// A loaded plugin policy, ready to evaluate.
#[derive(Clone)]
pub(crate) struct WasmPolicy {
    pub(super) runtime: Arc<WasmRuntime>,
    pub(super) pre: Pre,
    pub(crate) info: PluginInfo,
    pub(crate) origin: Origin,
    pub(crate) sha256: String,
    pub(super) id: String,
    pub(super) memory_cap: usize,
    pub(super) deadline: Duration,
    pub(super) grants: Grants,
    pub(super) settings_json: String,
    settings_error: Option<String>,
}

impl std::fmt::Debug for WasmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPolicy").field("id", &self.id).field("info", &self.info).finish_non_exhaustive()
    }
}

impl WasmPolicy {
    /// Checks the digest, compiles (or loads from cache), links, reads metadata and
    /// validates settings.
    pub(crate) fn load(runtime: &Arc<WasmRuntime>, src: &PluginSource<'_>) -> Result<WasmPolicy, String> {
        let sha256 = digest(runtime, src.bytes);
        if let Some(pin) = src.sha256
            && !pin.eq_ignore_ascii_case(&sha256)
        {
            return Err(format!(
                "sha256 mismatch: bundle.toml pins {pin}, but the file's sha256 is {sha256}; refusing to load it"
            ));
        }
        let opts = &runtime.options;
        let memory_mb = src.memory_mb.unwrap_or(opts.default_memory_mb);
        if memory_mb > opts.max_memory_mb {
            return Err(format!("memory_mb = {memory_mb} is above the host maximum of {} MiB", opts.max_memory_mb));
        }
        let (pre, origin) = component(runtime, &sha256, src.bytes)?;
        let mut policy = WasmPolicy {
            runtime: runtime.clone(),
            pre,
            info: PluginInfo::default(),
            origin,
            sha256,
            id: src.id.to_string(),
            memory_cap: memory_mb as usize * 1024 * 1024,
            deadline: src.deadline.unwrap_or(opts.default_deadline),
            grants: src.grants,
            settings_json: src.settings.to_string(),
            settings_error: None,
        };
        let meta = policy.call(|b, store| b.metadata(store)).0.map_err(|f| format!("metadata(): {}", f.message))?;
        if meta.abi_version != policy.pre.abi() {
            return Err(format!(
                "the plugin declares ABI version {:?}, but its exports are those of ABI {}",
                meta.abi_version,
                policy.pre.abi()
            ));
        }
        policy.info = meta;
        let settings = policy.settings_json.clone();
        policy.settings_error = match policy.call(|b, store| b.validate_settings(store, &settings)).0 {
            Ok(Ok(())) => None,
            Ok(Err(msg)) => Some(format!("rejected its settings: {msg}")),
            Err(f) => Some(format!("failed to validate its settings: {}", f.message)),
        };
        Ok(policy)
    }

    /// Why every evaluation fails, when the plugin rejected its settings.
    pub(crate) fn settings_error(&self) -> Option<Failure> {
        self.settings_error.as_ref().map(|e| Failure::new(PolicyErrorKind::InvalidSettings, e.clone()))
    }

    /// The plugin's answer to its settings, when it rejected them.
    pub(crate) fn settings_rejection(&self) -> Option<&str> {
        self.settings_error.as_deref()
    }

    /// The epoch ticks of a deadline.
    pub(super) fn ticks(deadline: Duration) -> u64 {
        u64::try_from(deadline.as_micros().div_ceil(EPOCH_TICK.as_micros())).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// A fresh store with the given memory cap and deadline.
    pub(super) fn store(&self, memory_cap: usize, deadline: Duration) -> Store<State> {
        let opts = &self.runtime.options;
        let limits = OutputLimits { output_bytes: opts.output_bytes, log_messages: 100, log_message_bytes: 4096 };
        let mut store = Store::new(&self.runtime.engine, State::new(limits, memory_cap, self.grants));
        store.limiter(|s| s);
        store.set_epoch_deadline(Self::ticks(deadline));
        store.epoch_deadline_trap();
        store
    }

    /// Evaluates a complete input document in a fresh instance, with statistics.
    pub(crate) fn evaluate_input(&self, input: &str) -> (Outcome, CallStats) {
        let (result, stats) = self.call(|b, store| b.evaluate(store, input));
        (result.and_then(convert), stats)
    }

    /// This policy alone on `review`, in a fresh instance with its own limits.
    pub(crate) fn evaluate_alone(&self, review: &str) -> (Outcome, Option<u64>) {
        if let Some(f) = self.settings_error() {
            return (Err(f), None);
        }
        let input = format!("{{\"review\":{review},\"parameters\":{}}}", self.settings_json);
        let (outcome, stats) = self.evaluate_input(&input);
        (outcome, Some(stats.peak_memory as u64))
    }

    /// Runs `f` against a fresh instance in a fresh store with this policy's limits.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&Instance, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> (Result<R, Failure>, CallStats) {
        let mut store = self.store(self.memory_cap, self.deadline);
        let start = Instant::now();
        let result = match self.pre.instantiate(&mut store) {
            Ok(instance) => f(&instance, &mut store).map_err(|e| self.classify(&e, store.data(), self.deadline)),
            Err(e) => {
                Err(Failure::new(PolicyErrorKind::Runtime, format!("could not be instantiated: {}", one_line(&e))))
            }
        };
        let stats = CallStats { duration: start.elapsed(), peak_memory: store.data().peak_memory };
        forward_logs(&self.id, store.data_mut());
        (result, stats)
    }

    /// What a failed call means, given the store's state after it.
    pub(super) fn classify(&self, e: &wasmtime::Error, state: &State, deadline: Duration) -> Failure {
        if state.memory_exceeded {
            let mb = state.memory_cap() / (1024 * 1024);
            return Failure::new(PolicyErrorKind::OutOfMemory, format!("exceeded its {mb} MiB memory limit"));
        }
        if state.output_overflowed() {
            // Writing past the limit traps (see `wasi.rs`).
            let kib = self.runtime.options.output_bytes / 1024;
            let message = format!("wrote more than its {kib} KiB output limit to stdout or stderr");
            return Failure::new(PolicyErrorKind::OutputLimit, message);
        }
        if let Some(exit) = e.downcast_ref::<wasi::Exited>() {
            return Failure::new(PolicyErrorKind::Trap, format!("trapped: {exit}"));
        }
        match e.downcast_ref::<Trap>().copied() {
            Some(Trap::Interrupt) => {
                Failure::new(PolicyErrorKind::Timeout, format!("exceeded its {} ms deadline", deadline.as_millis()))
            }
            Some(Trap::StackOverflow) => {
                Failure::new(PolicyErrorKind::Trap, "trapped: call stack exhausted (recursion too deep)")
            }
            Some(t) => Failure::new(
                PolicyErrorKind::Trap,
                format!("trapped: {}", t.to_string().trim_start_matches("wasm trap: ")),
            ),
            None => {
                Failure::new(PolicyErrorKind::MalformedResult, format!("returned a malformed result: {}", one_line(e)))
            }
        }
    }
}

/// Turns what the plugin returned into findings, checking the details are JSON.
pub(super) fn convert(result: RawResult) -> Outcome {
    let found = result.map_err(|msg| Failure::new(PolicyErrorKind::Runtime, format!("returned an error: {msg}")))?;
    found
        .into_iter()
        .map(|v| {
            let details = match v.details {
                None => None,
                Some(d) => Some(serde_json::from_str(&d).map_err(|e| {
                    Failure::new(
                        PolicyErrorKind::MalformedResult,
                        format!("returned a malformed result: violation details are not JSON ({e})"),
                    )
                })?),
            };
            Ok(Finding { message: v.message, details, path: v.path, warn: false })
        })
        .collect()
}

/// The component with this digest, linked: from this runtime's table, or compiled
/// (or deserialised from the precompiled cache) and linked now.
/// The sha256 of `bytes` (hex), hashed once per runtime for the same bytes.
fn digest(runtime: &WasmRuntime, bytes: &[u8]) -> String {
    let key = (bytes.as_ptr() as usize, bytes.len());
    if let Some(known) = runtime.digests.lock().ok().and_then(|d| d.get(&key).cloned()) {
        return known;
    }
    let sha256 = hex::encode(Sha256::digest(bytes));
    if let Ok(mut d) = runtime.digests.lock() {
        d.insert(key, sha256.clone());
    }
    sha256
}

fn component(runtime: &WasmRuntime, sha256: &str, bytes: &[u8]) -> Result<(Pre, Origin), String> {
    if let Some(found) = runtime.components.lock().ok().and_then(|c| c.get(sha256).cloned()) {
        return Ok(found);
    }
    let (component, origin) = cache::load(&runtime.engine, runtime.options.cache_dir.as_deref(), sha256, bytes)
        .map_err(|e| format!("not a valid WebAssembly component: {}", one_line(&e)))?;
    let pre = instance_pre(runtime, &component)?;
    if let Ok(mut c) = runtime.components.lock() {
        c.insert(sha256.to_string(), (pre.clone(), origin));
    }
    Ok((pre, origin))
}

fn instance_pre(runtime: &WasmRuntime, component: &Component) -> Result<Pre, String> {
    let grant =
        |e: wasmtime::Error| format!("the component imports something the sandbox does not grant: {}", one_line(&e));
    let mut linker = runtime.linker.clone();
    wasi::stub_other_wasi(&mut linker, &runtime.engine, component).map_err(grant)?;
    Pre::new(linker.instantiate_pre(component).map_err(grant)?)
}
