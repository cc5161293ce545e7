//! The WebAssembly plugin host, and the only module that uses `wasmtime`.
//!
//! Plugins are components implementing `palisade:policy@0.2.0` (`sdk/wit/`; ABI
//! 0.1.0 plugins still run, see `abi.rs`). Each is compiled once per digest when its
//! bundle loads (or deserialised from the precompiled cache), checked against the
//! sha256 its manifest pins, and pre-instantiated (`InstancePre`).
//!
//! Isolation unit: **one fresh instance per component per object**, from the
//! pooling allocator. The policies a component backs share that instance for that
//! object: one `evaluate-batch` call whose memory cap is the largest of theirs and
//! whose deadline is the sum of theirs. Nothing survives from one object to the
//! next. A call that traps, times out, exhausts memory or answers malformed is
//! re-run for each of its policies alone, each in a fresh instance with its own
//! limits, so the failure is charged to the policy that caused it and the others
//! still report. Every instance gets the deny-all WASI subset of `wasi.rs` and
//! bounded output; failures become policy errors (`backend::Failure`) that the
//! policy's failure mode handles.

mod abi;
mod backend;
mod cache;
mod policy;
mod sandbox;
mod wasi;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

pub(crate) use backend::{Summary, WasmBackend};
pub(crate) use cache::Origin;
pub(crate) use policy::{CallStats, PluginSource, WasmPolicy};
pub(crate) use sandbox::Grants;
use sandbox::State;

/// The newest plugin ABI this host implements (`0.1.0` plugins run too).
pub const ABI_VERSION: &str = abi::CURRENT;

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
    components: std::sync::Mutex<std::collections::HashMap<String, (abi::Pre, Origin)>>,
    /// sha256 of plugin bytes already hashed, by address and length: the policies of a
    /// bundle that share a plugin share its bytes (one `Arc` in the bundle), which stay
    /// alive while the runtime loads them, so the 20 policies of pci-dss that share
    /// pci-workloads hash it once.
    digests: std::sync::Mutex<std::collections::HashMap<(usize, usize), String>>,
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
        abi::add_to_linker(&mut linker).map_err(|e| format!("{e:#}"))?;
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
        Ok(Arc::new(WasmRuntime {
            engine,
            linker,
            options,
            alive,
            components: Default::default(),
            digests: Default::default(),
        }))
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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

fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn forward_logs(id: &str, state: &mut State) {
    use sandbox::Level;
    for (level, message) in state.logs.drain(..) {
        match level {
            Level::Trace => tracing::trace!(plugin = id, "{message}"),
            Level::Debug => tracing::debug!(plugin = id, "{message}"),
            Level::Info => tracing::info!(plugin = id, "{message}"),
            Level::Warn => tracing::warn!(plugin = id, "{message}"),
            Level::Error => tracing::error!(plugin = id, "{message}"),
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
