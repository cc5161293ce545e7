//! Per-evaluation store state: the resources of the granted WASI subset
//! (`wasi.rs`), bounded captured stdout and stderr, bounded `host.log` messages, and
//! a resource limiter that records when the memory cap was hit.

use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};

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

/// Severity of a `host.log` message (the same five levels in every ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The captured output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout,
    Stderr,
}

/// WASI resources (streams, pollables) one call may create: a plugin that makes
/// more in one evaluation is looping, and traps instead of growing the host's table.
const MAX_RESOURCES: usize = 100_000;

/// The capabilities a policy's manifest grants its plugin beyond the deny-all default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Grants {
    /// `clock`: the clocks read the host's time (otherwise zero).
    pub clock: bool,
    /// `registry`: `host.image-signature` answers (otherwise it returns an error).
    pub registry: bool,
}

impl Grants {
    pub(crate) fn of(grants: &[crate::bundle::Grant]) -> Grants {
        use crate::bundle::Grant;
        Grants { clock: grants.contains(&Grant::Clock), registry: grants.contains(&Grant::Registry) }
    }
}

/// Store data of one evaluation.
pub(crate) struct State {
    pub(crate) table: ResourceTable,
    resources_created: usize,
    output: [Vec<u8>; 2],
    overflowed: bool,
    pub(crate) logs: Vec<(Level, String)>,
    pub(crate) logs_dropped: usize,
    limits: OutputLimits,
    /// What the manifest grants the policy.
    pub(crate) grants: Grants,
    /// The origin of the monotonic clock.
    pub(crate) started: Instant,
    memory_cap: usize,
    pub(crate) memory_exceeded: bool,
    pub(crate) peak_memory: usize,
    /// Bytes of stdout and stderr already forwarded to the log.
    forwarded: [usize; 2],
}

impl State {
    pub(crate) fn new(limits: OutputLimits, memory_cap: usize, grants: Grants) -> State {
        State {
            table: ResourceTable::new(),
            resources_created: 0,
            output: [Vec::new(), Vec::new()],
            overflowed: false,
            logs: Vec::new(),
            logs_dropped: 0,
            limits,
            grants,
            started: Instant::now(),
            memory_cap,
            memory_exceeded: false,
            peak_memory: 0,
            forwarded: [0, 0],
        }
    }

    /// The memory cap of the call in progress, in bytes.
    pub(crate) fn memory_cap(&self) -> usize {
        self.memory_cap
    }

    /// Readies a reused instance for another policy's call.
    pub(crate) fn prepare_call(&mut self, memory_cap: usize) {
        self.memory_cap = memory_cap;
        self.memory_exceeded = false;
    }

    /// Puts a host object in the table for the plugin to hold.
    pub(crate) fn push<T: Send + 'static>(&mut self, value: T) -> wasmtime::Result<Resource<T>> {
        self.resources_created += 1;
        if self.resources_created > MAX_RESOURCES {
            wasmtime::bail!("created more than {MAX_RESOURCES} WASI resources in one call");
        }
        Ok(self.table.push(value)?)
    }

    /// Bytes `which` can still take.
    pub(crate) fn output_room(&self, which: Output) -> usize {
        self.limits.output_bytes.saturating_sub(self.output[which as usize].len())
    }

    /// Appends to stdout or stderr; past the limit keeps what fits and traps.
    pub(crate) fn write_output(&mut self, which: Output, bytes: &[u8]) -> wasmtime::Result<()> {
        let room = self.output_room(which);
        self.output[which as usize].extend_from_slice(&bytes[..bytes.len().min(room)]);
        if bytes.len() > room {
            return Err(self.output_full());
        }
        Ok(())
    }

    /// The trap of a plugin that wants to write past the output limit.
    pub(crate) fn output_full(&mut self) -> wasmtime::Error {
        self.overflowed = true;
        wasmtime::format_err!("wrote past the {}-byte output limit", self.limits.output_bytes)
    }

    /// Output written since the last call, per stream.
    pub(crate) fn take_output(&mut self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (i, name) in ["stdout", "stderr"].into_iter().enumerate() {
            let bytes = &self.output[i];
            if bytes.len() > self.forwarded[i] {
                out.push((name, String::from_utf8_lossy(&bytes[self.forwarded[i]..]).into_owned()));
                self.forwarded[i] = bytes.len();
            }
        }
        out
    }

    /// Whether the plugin wrote past the stdout or stderr limit.
    pub(crate) fn output_overflowed(&self) -> bool {
        self.overflowed
    }
}

impl State {
    /// `host.log`: kept up to the message limits, the rest counted.
    pub(crate) fn log(&mut self, level: Level, message: String) {
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

    /// `host.image-signature`: the image-signature check the Rego builtin makes (one
    /// implementation, one cache), for policies granted `registry`.
    pub(crate) fn image_signature(
        &mut self,
        image: &str,
        keys: &[String],
        plain_http: bool,
        timeout_ms: u32,
    ) -> Result<SignatureAnswer, String> {
        if !self.grants.registry {
            return Err("host.image-signature needs the policy to be granted `registry` (grants = [\"registry\"] in bundle.toml)".into());
        }
        #[cfg(feature = "oci")]
        {
            let timeout = std::time::Duration::from_millis(timeout_ms.into());
            let a = crate::oci::builtin::check(image, keys, plain_http, timeout).map_err(|e| e.to_string())?;
            Ok(SignatureAnswer { signed: a.signed, digest: a.digest, key: a.key, reason: a.reason })
        }
        #[cfg(not(feature = "oci"))]
        {
            let _ = (image, keys, plain_http, timeout_ms);
            Err("host.image-signature: this palisade was built without registry support (feature `oci`)".into())
        }
    }
}

/// What `host.image-signature` answers (see `crate::oci::builtin::Answer`).
pub(crate) struct SignatureAnswer {
    pub signed: bool,
    pub digest: String,
    pub key: String,
    pub reason: String,
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
