//! Palisade: a policy engine for Kubernetes.
//!
//! Palisade loads versioned policy [`Bundle`]s whose rules are written in Rego
//! (evaluated in-process by `regorus`), compiles them once into an [`Engine`], and
//! evaluates Kubernetes objects or admission requests into a [`Decision`].
//!
//! ```
//! use palisade::{Bundle, Engine, Input};
//!
//! let engine = Engine::builder().bundle(Bundle::from_dir("tests/bundles/basic")?).build()?;
//! let input = Input::from_object(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok", "namespace": "shop"},
//!     "spec": {"containers": [{"name": "app", "image": "registry.example.com/app@sha256:0123"}]}
//! }))?;
//! let decision = engine.evaluate(&input);
//! assert!(decision.allowed, "{:?}", decision.violations);
//! # Ok::<(), palisade::Error>(())
//! ```

pub mod admission;
mod backend;
pub mod bundle;
pub mod cel;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod conformance;
pub mod coverage;
pub mod decision;
pub mod decision_log;
pub mod documents;
pub mod engine;
pub mod error;
pub mod exception;
pub mod framework;
pub mod gatekeeper;
pub mod input;
pub mod inventory;
pub mod matching;
pub mod object;
#[cfg(feature = "oci")]
pub mod oci;
mod rego;
pub mod report;
pub mod scaffold;
pub mod scan;
#[cfg(feature = "server")]
pub mod server;
pub mod sources;
pub mod tester;
#[cfg(feature = "wasm")]
pub mod wasm;
pub mod webhook_config;

pub use bundle::Bundle;
pub use decision::{Action, Decision, FailureMode, PolicyError, Severity, Violation, Waived};
pub use engine::{Engine, EngineBuilder, Mode, RegoExecution};
pub use error::{Error, Result};
pub use input::Input;
pub use inventory::Inventory;

#[cfg(feature = "embed-default-bundle")]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/default_bundle.rs"));
}

/// The `pci-dss` bundle built into the library (feature `embed-default-bundle`,
/// on with the `cli` feature): `policy-bundles/pci-dss` as it was at build time.
#[cfg(feature = "embed-default-bundle")]
pub fn default_bundle() -> Result<Bundle> {
    let files = embedded::FILES.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
    Bundle::from_files("embedded:pci-dss", files)
}
