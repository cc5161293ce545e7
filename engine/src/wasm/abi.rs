//! The plugin ABIs the host runs, and the only place their generated types appear:
//! 0.2.0 (`sdk/wit/policy.wit`, with `evaluate-batch`) and 0.1.0 (`sdk/wit/v0.1.0`,
//! frozen, one `evaluate` per policy). A component is bound to the newest world its
//! exports satisfy; everything else in the host sees [`Pre`] and [`Instance`].

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::PluginInfo;
use super::sandbox::{Level, State};

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod current {
    wasmtime::component::bindgen!({ world: "policy", path: "../sdk/wit" });
}

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod legacy {
    wasmtime::component::bindgen!({ world: "policy", path: "../sdk/wit/v0.1.0" });
}

/// The ABI of plugins with `evaluate-batch`.
pub const CURRENT: &str = "0.2.0";
/// The ABI of plugins built before it.
pub const LEGACY: &str = "0.1.0";

/// One violation as a plugin returns it (details still JSON text).
#[derive(Debug, Clone)]
pub(crate) struct RawViolation {
    pub message: String,
    pub details: Option<String>,
    pub path: Option<String>,
}

/// What one policy's evaluation returned.
pub(crate) type RawResult = Result<Vec<RawViolation>, String>;

/// A component linked and checked against one of the worlds, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    Current(current::PolicyPre<State>),
    Legacy(legacy::PolicyPre<State>),
}

/// An instance of a plugin.
pub(crate) enum Instance {
    Current(current::Policy),
    Legacy(legacy::Policy),
}

/// Adds both ABIs' host interfaces to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    current::Policy::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    legacy::Policy::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}

impl Pre {
    /// Binds the component to the newest world its exports satisfy.
    pub(crate) fn new(pre: InstancePre<State>) -> Result<Pre, String> {
        match current::PolicyPre::new(pre.clone()) {
            Ok(p) => Ok(Pre::Current(p)),
            Err(current_error) => legacy::PolicyPre::new(pre).map(Pre::Legacy).map_err(|_| {
                format!("not a palisade:policy@{CURRENT} (or @{LEGACY}) plugin: {}", super::one_line(&current_error))
            }),
        }
    }

    /// The ABI version of the world the component is bound to.
    pub(crate) fn abi(&self) -> &'static str {
        match self {
            Pre::Current(_) => CURRENT,
            Pre::Legacy(_) => LEGACY,
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Current(p) => Instance::Current(p.instantiate(store)?),
            Pre::Legacy(p) => Instance::Legacy(p.instantiate(store)?),
        })
    }
}

macro_rules! violations {
    ($result:expr) => {
        $result.map(|found| {
            found.into_iter().map(|v| RawViolation { message: v.message, details: v.details, path: v.path }).collect()
        })
    };
}

macro_rules! info {
    ($m:expr) => {{
        let m = $m;
        PluginInfo {
            name: m.name,
            version: m.version,
            description: m.description,
            abi_version: m.abi_version,
            kinds: m.kinds,
            requirements: m.requirements,
            settings_schema: m.settings_schema,
        }
    }};
}

impl Instance {
    pub(crate) fn metadata(&self, store: &mut Store<State>) -> wasmtime::Result<PluginInfo> {
        Ok(match self {
            Instance::Current(b) => info!(b.call_metadata(store)?),
            Instance::Legacy(b) => info!(b.call_metadata(store)?),
        })
    }

    pub(crate) fn validate_settings(
        &self,
        store: &mut Store<State>,
        settings: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Instance::Current(b) => b.call_validate_settings(store, settings),
            Instance::Legacy(b) => b.call_validate_settings(store, settings),
        }
    }

    /// One policy: the whole input document.
    pub(crate) fn evaluate(&self, store: &mut Store<State>, input: &str) -> wasmtime::Result<RawResult> {
        Ok(match self {
            Instance::Current(b) => violations!(b.call_evaluate(store, input)?),
            Instance::Legacy(b) => violations!(b.call_evaluate(store, input)?),
        })
    }

    /// Several policies on one review; `None` for an ABI 0.1.0 plugin.
    pub(crate) fn evaluate_batch(
        &self,
        store: &mut Store<State>,
        review: &str,
        settings: &[String],
    ) -> Option<wasmtime::Result<Vec<RawResult>>> {
        match self {
            Instance::Current(b) => Some(
                b.call_evaluate_batch(store, review, settings)
                    .map(|all| all.into_iter().map(|r| violations!(r)).collect()),
            ),
            Instance::Legacy(_) => None,
        }
    }
}

macro_rules! host {
    ($abi:ident $(, $extra:item)*) => {
        impl $abi::palisade::policy::host::Host for State {
            $($extra)*

            fn log(&mut self, level: $abi::palisade::policy::host::LogLevel, message: String) {
                use $abi::palisade::policy::host::LogLevel as L;
                let level = match level {
                    L::Trace => Level::Trace,
                    L::Debug => Level::Debug,
                    L::Info => Level::Info,
                    L::Warn => Level::Warn,
                    L::Error => Level::Error,
                };
                self.log(level, message);
            }
        }

        /// The `types` interface has no functions; its host trait is empty.
        impl $abi::palisade::policy::types::Host for State {}
    };
}

host!(
    current,
    fn image_signature(
        &mut self,
        image: String,
        keys: Vec<String>,
        plain_http: bool,
        timeout_ms: u32,
    ) -> Result<current::palisade::policy::host::SignatureVerdict, String> {
        self.image_signature(&image, &keys, plain_http, timeout_ms).map(|a| {
            current::palisade::policy::host::SignatureVerdict {
                signed: a.signed,
                digest: a.digest,
                key: a.key,
                reason: a.reason,
            }
        })
    }
);
host!(legacy);
