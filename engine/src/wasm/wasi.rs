//! The WASI 0.2 the sandbox grants, implemented here: what a component built for
//! `wasm32-wasip2` imports to run Rust's standard library, and nothing that reaches
//! outside the store.
//!
//! | interface | what the plugin gets |
//! |---|---|
//! | `wasi:io/{error,poll,streams}` | streams and pollables over the items below; every pollable is ready |
//! | `wasi:cli/{stdin,stdout,stderr}` | stdin is closed; stdout and stderr are captured, bounded by `output_bytes` (a write past it traps) |
//! | `wasi:cli/terminal-*` | no terminal |
//! | `wasi:cli/environment` | no variables, no arguments, no working directory |
//! | `wasi:cli/exit` | traps, naming the status |
//! | `wasi:clocks/{wall,monotonic}-clock` | zero, unless the policy is granted `clock` |
//! | `wasi:random/{random,insecure,insecure-seed}` | the host's randomness (hash-map seeds) |
//! | `wasi:filesystem/preopens` | no directories, so no file can be opened |
//!
//! Any other `wasi:` import (sockets, filesystem operations, HTTP) links to a function
//! that traps with its name when called ([`stub_other_wasi`]): the plugin loads, and
//! using what it was not granted is a policy error. A non-WASI import other than the
//! palisade ABI is refused at load.
//!
//! Written against the linker directly (not `wasmtime-wasi`) so that the plugin host
//! needs no async runtime: `palisade` with the `wasm` feature pulls in no tokio.

use std::time::{Duration, SystemTime};

use wasmtime::component::{Component, ComponentType, Lift, Linker, LinkerInstance, Lower, Resource, ResourceType};
use wasmtime::{Engine, StoreContextMut};

use super::sandbox::{Output, State};

/// The WASI version defined; imports of any other 0.2.x resolve to it (the linker
/// matches semver-compatible names).
const V: &str = "0.2.6";

/// Host objects behind the resources a plugin can hold. An interface that `use`s a
/// resource of another re-exports it, so each is also defined under those names
/// (left to the trap stubs, it would get another type and fail to link).
pub(crate) struct OutputStream(Output);
pub(crate) struct InputStream;
pub(crate) struct IoError(String);
pub(crate) struct Pollable;
pub(crate) struct TerminalInput;
pub(crate) struct TerminalOutput;
pub(crate) struct Descriptor;

/// `wasi:io/streams.stream-error`.
#[derive(ComponentType, Lift, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    LastOperationFailed(Resource<IoError>),
    #[component(name = "closed")]
    Closed,
}

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lift, Lower, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// Why a plugin stopped through `wasi:cli/exit`: a trap that names it.
#[derive(Debug)]
pub(crate) struct Exited(pub bool);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "called exit({}) instead of returning", if self.0 { "ok" } else { "err" })
    }
}

impl std::error::Error for Exited {}

type Ctx<'a> = StoreContextMut<'a, State>;
type R<T> = wasmtime::Result<T>;

/// Adds the granted WASI interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> R<()> {
    io(linker)?;
    cli(linker)?;
    clocks(linker)?;
    random(linker)?;
    let mut types = linker.instance(&format!("wasi:filesystem/types@{V}"))?;
    resource::<Descriptor>(&mut types, "descriptor")?;
    resource::<InputStream>(&mut types, "input-stream")?;
    resource::<OutputStream>(&mut types, "output-stream")?;
    resource::<IoError>(&mut types, "error")?;
    let mut preopens = linker.instance(&format!("wasi:filesystem/preopens@{V}"))?;
    resource::<Descriptor>(&mut preopens, "descriptor")?;
    preopens.func_wrap("get-directories", |_: Ctx, (): ()| Ok((Vec::<(Resource<Descriptor>, String)>::new(),)))?;
    Ok(())
}

/// Links every other `wasi:` import of `component` to a trap naming it; refuses
/// network interfaces and imports that are neither WASI nor the palisade ABI.
pub(crate) fn stub_other_wasi(linker: &mut Linker<State>, engine: &Engine, component: &Component) -> R<()> {
    for (name, _) in component.component_type().imports(engine) {
        if name.starts_with("wasi:sockets/") || name.starts_with("wasi:http/") {
            wasmtime::bail!("it imports `{name}`, but plugins get no network");
        }
        if !name.starts_with("wasi:") && !name.starts_with("palisade:policy/") {
            wasmtime::bail!("it imports `{name}`, which the sandbox does not provide");
        }
    }
    linker.define_unknown_imports_as_traps(component)
}

fn resource<T: 'static>(inst: &mut LinkerInstance<'_, State>, name: &str) -> R<()> {
    inst.resource(name, ResourceType::host::<T>(), |mut store, rep| {
        store.data_mut().table.delete(Resource::<T>::new_own(rep))?;
        Ok(())
    })
}

fn io(linker: &mut Linker<State>) -> R<()> {
    let mut error = linker.instance(&format!("wasi:io/error@{V}"))?;
    resource::<IoError>(&mut error, "error")?;
    error.func_wrap("[method]error.to-debug-string", |store: Ctx, (e,): (Resource<IoError>,)| {
        Ok((store.data().table.get(&e)?.0.clone(),))
    })?;

    let mut poll = linker.instance(&format!("wasi:io/poll@{V}"))?;
    resource::<Pollable>(&mut poll, "pollable")?;
    poll.func_wrap("[method]pollable.ready", |_: Ctx, (_,): (Resource<Pollable>,)| Ok((true,)))?;
    poll.func_wrap("[method]pollable.block", |_: Ctx, (_,): (Resource<Pollable>,)| Ok(()))?;
    poll.func_wrap("poll", |_: Ctx, (all,): (Vec<Resource<Pollable>>,)| {
        Ok(((0..all.len() as u32).collect::<Vec<u32>>(),))
    })?;

    let mut streams = linker.instance(&format!("wasi:io/streams@{V}"))?;
    resource::<InputStream>(&mut streams, "input-stream")?;
    resource::<OutputStream>(&mut streams, "output-stream")?;
    resource::<IoError>(&mut streams, "error")?;
    resource::<Pollable>(&mut streams, "pollable")?;
    input_stream(&mut streams)?;
    output_stream(&mut streams)
}

/// stdin: always at its end.
fn input_stream(streams: &mut LinkerInstance<'_, State>) -> R<()> {
    for name in ["read", "blocking-read"] {
        streams
            .func_wrap(&format!("[method]input-stream.{name}"), |_: Ctx, (_, _): (Resource<InputStream>, u64)| {
                Ok((Err::<Vec<u8>, _>(StreamError::Closed),))
            })?;
    }
    for name in ["skip", "blocking-skip"] {
        streams
            .func_wrap(&format!("[method]input-stream.{name}"), |_: Ctx, (_, _): (Resource<InputStream>, u64)| {
                Ok((Err::<u64, _>(StreamError::Closed),))
            })?;
    }
    streams.func_wrap("[method]input-stream.subscribe", |mut store: Ctx, (_,): (Resource<InputStream>,)| {
        Ok((store.data_mut().push(Pollable)?,))
    })
}

/// stdout and stderr: appended to the store's bounded capture.
fn output_stream(streams: &mut LinkerInstance<'_, State>) -> R<()> {
    // A full stream traps here: answering 0 would make the guest wait for room forever.
    streams.func_wrap("[method]output-stream.check-write", |mut store: Ctx, (s,): (Resource<OutputStream>,)| {
        let which = store.data().table.get(&s)?.0;
        match store.data().output_room(which) {
            0 => Err(store.data_mut().output_full()),
            room => Ok((Ok::<u64, StreamError>(room as u64),)),
        }
    })?;
    for name in ["write", "blocking-write-and-flush"] {
        streams.func_wrap(
            &format!("[method]output-stream.{name}"),
            |mut store: Ctx, (s, bytes): (Resource<OutputStream>, Vec<u8>)| {
                let which = store.data().table.get(&s)?.0;
                store.data_mut().write_output(which, &bytes)?;
                Ok((Ok::<(), StreamError>(()),))
            },
        )?;
    }
    for name in ["write-zeroes", "blocking-write-zeroes-and-flush"] {
        streams.func_wrap(
            &format!("[method]output-stream.{name}"),
            |mut store: Ctx, (s, len): (Resource<OutputStream>, u64)| {
                let which = store.data().table.get(&s)?.0;
                let room = store.data().output_room(which);
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(room.saturating_add(1));
                store.data_mut().write_output(which, &vec![0; len])?;
                Ok((Ok::<(), StreamError>(()),))
            },
        )?;
    }
    for name in ["flush", "blocking-flush"] {
        streams.func_wrap(&format!("[method]output-stream.{name}"), |_: Ctx, (_,): (Resource<OutputStream>,)| {
            Ok((Ok::<(), StreamError>(()),))
        })?;
    }
    for name in ["splice", "blocking-splice"] {
        streams.func_wrap(
            &format!("[method]output-stream.{name}"),
            |_: Ctx, (_, _, _): (Resource<OutputStream>, Resource<InputStream>, u64)| {
                Ok((Err::<u64, _>(StreamError::Closed),))
            },
        )?;
    }
    streams.func_wrap("[method]output-stream.subscribe", |mut store: Ctx, (_,): (Resource<OutputStream>,)| {
        Ok((store.data_mut().push(Pollable)?,))
    })
}

fn cli(linker: &mut Linker<State>) -> R<()> {
    let mut env = linker.instance(&format!("wasi:cli/environment@{V}"))?;
    env.func_wrap("get-environment", |_: Ctx, (): ()| Ok((Vec::<(String, String)>::new(),)))?;
    env.func_wrap("get-arguments", |_: Ctx, (): ()| Ok((Vec::<String>::new(),)))?;
    env.func_wrap("initial-cwd", |_: Ctx, (): ()| Ok((None::<String>,)))?;
    let mut exit = linker.instance(&format!("wasi:cli/exit@{V}"))?;
    exit.func_wrap("exit", |_: Ctx, (status,): (Result<(), ()>,)| -> R<()> { Err(Exited(status.is_ok()).into()) })?;
    let mut stdin = linker.instance(&format!("wasi:cli/stdin@{V}"))?;
    resource::<InputStream>(&mut stdin, "input-stream")?;
    stdin.func_wrap("get-stdin", |mut store: Ctx, (): ()| Ok((store.data_mut().push(InputStream)?,)))?;
    for (interface, which) in [("stdout", Output::Stdout), ("stderr", Output::Stderr)] {
        let mut inst = linker.instance(&format!("wasi:cli/{interface}@{V}"))?;
        resource::<OutputStream>(&mut inst, "output-stream")?;
        inst.func_wrap(&format!("get-{interface}"), move |mut store: Ctx, (): ()| {
            Ok((store.data_mut().push(OutputStream(which))?,))
        })?;
    }
    resource::<TerminalInput>(&mut linker.instance(&format!("wasi:cli/terminal-input@{V}"))?, "terminal-input")?;
    resource::<TerminalOutput>(&mut linker.instance(&format!("wasi:cli/terminal-output@{V}"))?, "terminal-output")?;
    let mut stdin = linker.instance(&format!("wasi:cli/terminal-stdin@{V}"))?;
    resource::<TerminalInput>(&mut stdin, "terminal-input")?;
    stdin.func_wrap("get-terminal-stdin", |_: Ctx, (): ()| Ok((None::<Resource<TerminalInput>>,)))?;
    for name in ["stdout", "stderr"] {
        let mut inst = linker.instance(&format!("wasi:cli/terminal-{name}@{V}"))?;
        resource::<TerminalOutput>(&mut inst, "terminal-output")?;
        inst.func_wrap(&format!("get-terminal-{name}"), |_: Ctx, (): ()| Ok((None::<Resource<TerminalOutput>>,)))?;
    }
    Ok(())
}

/// Real time only for policies granted `clock`; otherwise both clocks read zero.
fn clocks(linker: &mut Linker<State>) -> R<()> {
    let mut wall = linker.instance(&format!("wasi:clocks/wall-clock@{V}"))?;
    wall.func_wrap("now", |store: Ctx, (): ()| {
        let since = match store.data().grants.clock {
            true => SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            false => Duration::ZERO,
        };
        Ok((Datetime { seconds: since.as_secs(), nanoseconds: since.subsec_nanos() },))
    })?;
    wall.func_wrap("resolution", |_: Ctx, (): ()| Ok((Datetime { seconds: 0, nanoseconds: 1_000 },)))?;
    let mut mono = linker.instance(&format!("wasi:clocks/monotonic-clock@{V}"))?;
    resource::<Pollable>(&mut mono, "pollable")?;
    mono.func_wrap("now", |store: Ctx, (): ()| {
        let since = if store.data().grants.clock { store.data().started.elapsed() } else { Duration::ZERO };
        Ok((u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),))
    })?;
    mono.func_wrap("resolution", |_: Ctx, (): ()| Ok((1_000u64,)))?;
    // A timer is ready at once: a plugin cannot sleep past its deadline in the host.
    for name in ["subscribe-instant", "subscribe-duration"] {
        mono.func_wrap(name, |mut store: Ctx, (_,): (u64,)| Ok((store.data_mut().push(Pollable)?,)))?;
    }
    Ok(())
}

/// Bounded by `max_random_size`, like every other buffer the plugin can ask for.
fn random(linker: &mut Linker<State>) -> R<()> {
    const MAX_RANDOM: u64 = 64 * 1024;
    let bytes = |len: u64| -> R<Vec<u8>> {
        if len > MAX_RANDOM {
            wasmtime::bail!("asked for {len} random bytes, more than the {MAX_RANDOM} allowed");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf).map_err(|e| wasmtime::format_err!("no randomness: {e}"))?;
        Ok(buf)
    };
    let u64_of = move || -> R<u64> {
        let b = bytes(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let mut secure = linker.instance(&format!("wasi:random/random@{V}"))?;
    secure.func_wrap("get-random-bytes", move |_: Ctx, (len,): (u64,)| Ok((bytes(len)?,)))?;
    secure.func_wrap("get-random-u64", move |_: Ctx, (): ()| Ok((u64_of()?,)))?;
    let mut insecure = linker.instance(&format!("wasi:random/insecure@{V}"))?;
    insecure.func_wrap("get-insecure-random-bytes", move |_: Ctx, (len,): (u64,)| Ok((bytes(len)?,)))?;
    insecure.func_wrap("get-insecure-random-u64", move |_: Ctx, (): ()| Ok((u64_of()?,)))?;
    let mut seed = linker.instance(&format!("wasi:random/insecure-seed@{V}"))?;
    seed.func_wrap("insecure-seed", move |_: Ctx, (): ()| Ok(((u64_of()?, u64_of()?),)))?;
    Ok(())
}
