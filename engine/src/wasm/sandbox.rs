//! Per-evaluation store state: the deny-all WASI context (built lazily, only if the
//! plugin calls WASI at all), bounded captured output, bounded `host.log` messages,
//! and a resource limiter that records when the memory cap was hit.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::palisade::policy::host::{self, LogLevel};

/// Limits of one evaluation's side channels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputLimits {
    /// Bytes of stdout and of stderr kept.
    pub output_bytes: usize,
    /// `host.log` messages kept.
    pub log_messages: usize,
    /// Bytes of one log message kept.
    pub log_message_bytes: usize,
}

/// A clock that always reads zero: plugins get no time unless the manifest grants it.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Store data of one evaluation.
pub(crate) struct State {
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) logs: Vec<(LogLevel, String)>,
    pub(crate) logs_dropped: usize,
    limits: OutputLimits,
    allow_clock: bool,
    memory_cap: usize,
    pub(crate) memory_exceeded: bool,
    pub(crate) peak_memory: usize,
    /// Bytes of stdout and stderr already forwarded to the log.
    forwarded: [usize; 2],
}

impl State {
    pub(crate) fn new(limits: OutputLimits, memory_cap: usize, allow_clock: bool) -> State {
        State {
            wasi: None,
            table: ResourceTable::new(),
            stdout: MemoryOutputPipe::new(limits.output_bytes),
            stderr: MemoryOutputPipe::new(limits.output_bytes),
            logs: Vec::new(),
            logs_dropped: 0,
            limits,
            allow_clock,
            memory_cap,
            memory_exceeded: false,
            peak_memory: 0,
            forwarded: [0, 0],
        }
    }

    /// Readies a reused instance for another policy's call.
    pub(crate) fn prepare_call(&mut self, memory_cap: usize) {
        self.memory_cap = memory_cap;
        self.memory_exceeded = false;
    }

    /// Output written since the last call, per stream.
    pub(crate) fn take_output(&mut self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (i, (name, pipe)) in [("stdout", &self.stdout), ("stderr", &self.stderr)].into_iter().enumerate() {
            let bytes = pipe.contents();
            if bytes.len() > self.forwarded[i] {
                out.push((name, String::from_utf8_lossy(&bytes[self.forwarded[i]..]).into_owned()));
                self.forwarded[i] = bytes.len();
            }
        }
        out
    }

    /// Whether stdout or stderr filled up (the plugin wrote past the limit).
    pub(crate) fn output_overflowed(&self) -> bool {
        self.stdout.contents().len() >= self.limits.output_bytes
            || self.stderr.contents().len() >= self.limits.output_bytes
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (stdout, stderr, allow_clock) = (self.stdout.clone(), self.stderr.clone(), self.allow_clock);
        let ctx = self.wasi.get_or_insert_with(|| {
            // Deny-all: no preopened directories, no environment, no arguments, no
            // network, stdin closed, stdout/stderr captured and bounded.
            let mut b = WasiCtx::builder();
            b.stdout(stdout).stderr(stderr).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
            b.max_random_size(64 * 1024);
            if !allow_clock {
                b.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
            }
            b.build()
        });
        WasiCtxView { ctx, table: &mut self.table }
    }
}

impl host::Host for State {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.logs.len() >= self.limits.log_messages {
            self.logs_dropped += 1;
            return;
        }
        let mut message = message;
        if message.len() > self.limits.log_message_bytes {
            let cut = message.floor_char_boundary(self.limits.log_message_bytes);
            message.truncate(cut);
            message.push('…');
        }
        self.logs.push((level, message));
    }
}

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The `types` interface has no functions; its host trait is empty.
impl super::bindings::palisade::policy::types::Host for State {}
