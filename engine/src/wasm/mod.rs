//! The WebAssembly plugin host, and the only module that uses `wasmtime`.
//!
//! Plugins are components implementing `palisade:policy@0.1.0` (`sdk/wit/`). Each is
//! compiled once per digest when its bundle loads (or deserialised from the
//! precompiled cache), checked against the sha256 its manifest pins, and
//! pre-instantiated (`InstancePre`). Every evaluation then runs in a **fresh store
//! and instance** from the pooling allocator, so no state leaks between requests,
//! with a memory cap, an epoch deadline, the deny-all WASI subset of `wasi.rs` and
//! bounded output. Traps, deadlines, memory exhaustion and malformed results become
//! [`Failure`]s that the policy's failure mode handles.

mod cache;
pub mod check;
mod sandbox;
mod session;
mod wasi;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Store, Trap};

use crate::decision::PolicyErrorKind;
pub(crate) use cache::Origin;
use sandbox::{OutputLimits, State};
pub(crate) use session::Session;

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({ world: "policy", path: "../sdk/wit" });
}
use bindings::{Policy as PolicyBindings, PolicyPre};

/// The ABI version this host implements.
pub const ABI_VERSION: &str = "0.1.0";

/// Host-wide settings of the WebAssembly runtime.
#[derive(Debug, Clone)]
pub struct WasmOptions {
    /// Directory of the precompiled-plugin cache; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Memory cap of a plugin when its policy sets none, in MiB.
    pub default_memory_mb: u32,
    /// The largest memory cap a policy may ask for, in MiB.
    pub max_memory_mb: u32,
    /// Deadline of one evaluation when the policy sets none.
    pub default_deadline: Duration,
    /// Instances the pooling allocator keeps ready (concurrent evaluations).
    pub pool_size: u32,
    /// Bytes of stdout and of stderr kept per evaluation.
    pub output_bytes: usize,
}

impl Default for WasmOptions {
    fn default() -> Self {
        WasmOptions {
            cache_dir: None,
            default_memory_mb: 64,
            max_memory_mb: 512,
            default_deadline: Duration::from_millis(100),
            pool_size: 128,
            output_bytes: 64 * 1024,
        }
    }
}

const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A wasmtime engine configured for untrusted plugins, its linker, and the thread
/// that advances epochs for deadlines.
pub(crate) struct WasmRuntime {
    engine: Engine,
    linker: Linker<State>,
    options: WasmOptions,
    alive: Arc<AtomicBool>,
    /// Components compiled so far, by sha256: policies sharing a plugin compile it once.
    components: std::sync::Mutex<std::collections::HashMap<String, (PolicyPre<State>, Origin)>>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

impl WasmRuntime {
    pub(crate) fn new(options: WasmOptions) -> Result<Arc<WasmRuntime>, String> {
        let mut pool = PoolingAllocationConfig::new();
        let n = options.pool_size.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
            .max_memory_size(options.max_memory_mb as usize * 1024 * 1024)
            // Keep a typical plugin's working set resident between instances.
            .linear_memory_keep_resident(2 * 1024 * 1024)
            .table_keep_resident(64 * 1024)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .concurrency_support(false)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| format!("cannot create the WebAssembly engine: {e:#}"))?;
        let mut linker = Linker::<State>::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| format!("{e:#}"))?;
        PolicyBindings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let alive = Arc::new(AtomicBool::new(true));
        let (ticker_engine, ticker_alive) = (engine.clone(), alive.clone());
        std::thread::Builder::new()
            .name("palisade-wasm-epoch".into())
            .spawn(move || {
                while ticker_alive.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(Arc::new(WasmRuntime { engine, linker, options, alive, components: Default::default() }))
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: String,
    /// ABI version the plugin declares.
    pub abi_version: String,
    /// Kinds it understands.
    pub kinds: Vec<String>,
    /// Requirement ids it enforces.
    pub requirements: Vec<String>,
    /// JSON Schema of its settings.
    pub settings_schema: Option<String>,
}

/// One finding reported by a plugin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PluginFinding {
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub path: Option<String>,
}

/// Why a plugin evaluation failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub kind: PolicyErrorKind,
    pub message: String,
}

/// Resource use of one call, for `plugin check` and conformance budgets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallStats {
    pub duration: Duration,
    pub peak_memory: usize,
}

/// What loading a plugin needs.
#[derive(Debug)]
pub(crate) struct PluginSource<'a> {
    pub id: &'a str,
    pub bytes: &'a [u8],
    /// The sha256 the manifest pins (hex); `None` only for `palisade plugin` commands.
    pub sha256: Option<&'a str>,
    pub memory_mb: Option<u32>,
    pub deadline: Option<Duration>,
    pub allow_clock: bool,
    pub settings: &'a serde_json::Value,
}

/// A loaded plugin, ready to evaluate.
#[derive(Clone)]
pub(crate) struct WasmPolicy {
    runtime: Arc<WasmRuntime>,
    pre: PolicyPre<State>,
    pub(crate) info: PluginInfo,
    pub(crate) origin: Origin,
    pub(crate) sha256: String,
    id: String,
    memory_cap: usize,
    deadline: Duration,
    allow_clock: bool,
    settings_json: String,
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
        let sha256 = hex::encode(Sha256::digest(src.bytes));
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
        let cached = runtime.components.lock().ok().and_then(|c| c.get(&sha256).cloned());
        let (pre, origin) = match cached {
            Some(found) => found,
            None => {
                let (component, origin) =
                    cache::load(&runtime.engine, opts.cache_dir.as_deref(), &sha256, src.bytes)
                        .map_err(|e| format!("not a valid WebAssembly component: {}", one_line(&e)))?;
                let pre = instance_pre(runtime, &component)?;
                if let Ok(mut c) = runtime.components.lock() {
                    c.insert(sha256.clone(), (pre.clone(), origin));
                }
                (pre, origin)
            }
        };
        let mut policy = WasmPolicy {
            runtime: runtime.clone(),
            pre,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                abi_version: String::new(),
                kinds: Vec::new(),
                requirements: Vec::new(),
                settings_schema: None,
            },
            origin,
            sha256,
            id: src.id.to_string(),
            memory_cap: memory_mb as usize * 1024 * 1024,
            deadline: src.deadline.unwrap_or(opts.default_deadline),
            allow_clock: src.allow_clock,
            settings_json: src.settings.to_string(),
            settings_error: None,
        };
        let meta =
            policy.call(|b, store| b.call_metadata(store)).0.map_err(|f| format!("metadata(): {}", f.message))?;
        if meta.abi_version != ABI_VERSION {
            return Err(format!(
                "the plugin declares ABI version {:?}, but this host implements {ABI_VERSION}",
                meta.abi_version
            ));
        }
        policy.info = PluginInfo {
            name: meta.name,
            version: meta.version,
            description: meta.description,
            abi_version: meta.abi_version,
            kinds: meta.kinds,
            requirements: meta.requirements,
            settings_schema: meta.settings_schema,
        };
        let settings = policy.settings_json.clone();
        policy.settings_error = match policy.call(|b, store| b.call_validate_settings(store, &settings)).0 {
            Ok(Ok(())) => None,
            Ok(Err(msg)) => Some(format!("rejected its settings: {msg}")),
            Err(f) => Some(format!("failed to validate its settings: {}", f.message)),
        };
        Ok(policy)
    }

    /// Whether the plugin rejected its settings (every evaluation then fails).
    pub(crate) fn settings_error(&self) -> Option<&str> {
        self.settings_error.as_deref()
    }

    /// Evaluates one object, given the `review` as JSON text, on the session's
    /// instance of this plugin.
    /// Also returns the instance's linear memory size after the call.
    pub(crate) fn evaluate(
        &self,
        session: &mut Session,
        review_json: &str,
    ) -> (Result<Vec<PluginFinding>, Failure>, Option<u64>) {
        if let Some(e) = &self.settings_error {
            return (Err(Failure { kind: PolicyErrorKind::InvalidSettings, message: e.clone() }), None);
        }
        let input = format!("{{\"review\":{review_json},\"parameters\":{}}}", self.settings_json);
        let (store, bindings) = match session.instance(self) {
            Ok(found) => found,
            Err(e) => {
                let failure = Failure {
                    kind: PolicyErrorKind::Runtime,
                    message: format!("could not be instantiated: {}", one_line(&e)),
                };
                return (Err(failure), None);
            }
        };
        store.data_mut().prepare_call(self.memory_cap);
        store.set_epoch_deadline(self.deadline_ticks());
        let result = bindings.call_evaluate(&mut *store, &input).map_err(|e| self.classify(&e, store.data()));
        forward_logs(&self.id, store.data_mut());
        let memory = Some(store.data().peak_memory as u64);
        let result = convert(result);
        if result.is_err() {
            session.discard(self);
        }
        (result, memory)
    }

    fn deadline_ticks(&self) -> u64 {
        self.deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1
    }

    /// A fresh store with this policy's limits.
    fn new_store(&self) -> Store<State> {
        let opts = &self.runtime.options;
        let limits = OutputLimits { output_bytes: opts.output_bytes, log_messages: 100, log_message_bytes: 4096 };
        let mut store = Store::new(&self.runtime.engine, State::new(limits, self.memory_cap, self.allow_clock));
        store.limiter(|s| s);
        store.set_epoch_deadline(self.deadline_ticks());
        store.epoch_deadline_trap();
        store
    }

    /// Evaluates a complete input document, with resource statistics.
    pub(crate) fn evaluate_input(&self, input: &str) -> (Result<Vec<PluginFinding>, Failure>, CallStats) {
        let (result, stats) = self.call(|b, store| b.call_evaluate(store, input));
        (convert(result), stats)
    }

    /// Runs `f` against a fresh instance in a fresh store with this policy's limits.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&PolicyBindings, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> (Result<R, Failure>, CallStats) {
        let mut store = self.new_store();
        let start = Instant::now();
        let result = match self.pre.instantiate(&mut store) {
            Ok(bindings) => f(&bindings, &mut store).map_err(|e| self.classify(&e, store.data())),
            Err(e) => Err(Failure {
                kind: PolicyErrorKind::Runtime,
                message: format!("could not be instantiated: {}", one_line(&e)),
            }),
        };
        let stats = CallStats { duration: start.elapsed(), peak_memory: store.data().peak_memory };
        forward_logs(&self.id, store.data_mut());
        (result, stats)
    }

    fn classify(&self, e: &wasmtime::Error, state: &State) -> Failure {
        let trap = e.downcast_ref::<Trap>().copied();
        if state.memory_exceeded {
            return Failure {
                kind: PolicyErrorKind::OutOfMemory,
                message: format!("exceeded its {} MiB memory limit", self.memory_cap / (1024 * 1024)),
            };
        }
        if state.output_overflowed() {
            // Writing past the limit fails the write; Rust's `print!` then panics (a trap).
            return Failure {
                kind: PolicyErrorKind::OutputLimit,
                message: format!(
                    "wrote more than its {} KiB output limit to stdout or stderr",
                    self.runtime.options.output_bytes / 1024
                ),
            };
        }
        if let Some(exit) = e.downcast_ref::<wasi::Exited>() {
            return Failure { kind: PolicyErrorKind::Trap, message: format!("trapped: {exit}") };
        }
        match trap {
            Some(Trap::Interrupt) => Failure {
                kind: PolicyErrorKind::Timeout,
                message: format!("exceeded its {} ms deadline", self.deadline.as_millis()),
            },
            Some(Trap::StackOverflow) => Failure {
                kind: PolicyErrorKind::Trap,
                message: "trapped: call stack exhausted (recursion too deep)".into(),
            },
            Some(t) => Failure {
                kind: PolicyErrorKind::Trap,
                message: format!("trapped: {}", t.to_string().trim_start_matches("wasm trap: ")),
            },
            None => Failure {
                kind: PolicyErrorKind::MalformedResult,
                message: format!("returned a malformed result: {}", one_line(e)),
            },
        }
    }
}

/// Turns the raw result of `evaluate` into findings, checking the details are JSON.
fn convert(
    result: Result<Result<Vec<bindings::palisade::policy::types::Violation>, String>, Failure>,
) -> Result<Vec<PluginFinding>, Failure> {
    match result {
        Ok(Ok(found)) => found
            .into_iter()
            .map(|v| {
                let details = match v.details {
                    None => None,
                    Some(d) => Some(serde_json::from_str(&d).map_err(|e| Failure {
                        kind: PolicyErrorKind::MalformedResult,
                        message: format!("returned a malformed result: violation details are not JSON ({e})"),
                    })?),
                };
                Ok(PluginFinding { message: v.message, details, path: v.path })
            })
            .collect(),
        Ok(Err(msg)) => Err(Failure { kind: PolicyErrorKind::Runtime, message: format!("returned an error: {msg}") }),
        Err(f) => Err(f),
    }
}

fn instance_pre(runtime: &WasmRuntime, component: &Component) -> Result<PolicyPre<State>, String> {
    let mut linker = runtime.linker.clone();
    wasi::stub_other_wasi(&mut linker, &runtime.engine, component)
        .map_err(|e| format!("the component imports something the sandbox does not grant: {}", one_line(&e)))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("the component imports something the sandbox does not grant: {}", one_line(&e)))?;
    PolicyPre::new(pre).map_err(|e| format!("not a palisade:policy@{ABI_VERSION} plugin: {}", one_line(&e)))
}

fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn forward_logs(id: &str, state: &mut State) {
    use bindings::palisade::policy::host::LogLevel;
    for (level, message) in state.logs.drain(..) {
        match level {
            LogLevel::Trace => tracing::trace!(plugin = id, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin = id, "{message}"),
            LogLevel::Info => tracing::info!(plugin = id, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin = id, "{message}"),
            LogLevel::Error => tracing::error!(plugin = id, "{message}"),
        }
    }
    if state.logs_dropped > 0 {
        tracing::warn!(plugin = id, dropped = state.logs_dropped, "plugin log messages dropped");
        state.logs_dropped = 0;
    }
    for (stream, text) in state.take_output() {
        tracing::debug!(plugin = id, stream, "{text}");
    }
}
