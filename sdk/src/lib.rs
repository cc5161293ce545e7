//! `palisade-sdk`: write Palisade policy plugins in Rust.
//!
//! A plugin is a WebAssembly component implementing the `palisade:policy@0.2.0`
//! world (`sdk/wit/policy.wit`). With this crate an author writes one function from
//! a typed [`Request`] to a list of [`Violation`]s and exports it with
//! [`export_policy!`]:
//!
//! ```
//! use palisade_sdk::{Metadata, Policy, Request, Violation};
//!
//! struct NoHostNetwork;
//!
//! impl Policy for NoHostNetwork {
//!     fn metadata() -> Metadata {
//!         Metadata::new("no-host-network", "1.0.0", "Pods do not share the node's network")
//!             .kinds(["Pod"])
//!             .requirements(["2.2.5"])
//!     }
//!
//!     fn evaluate(request: &Request) -> Result<Vec<Violation>, String> {
//!         let Some(pod) = request.pod()? else { return Ok(vec![]) };
//!         Ok(if pod.spec.host_network == Some(true) {
//!             vec![Violation::new("pod shares the host's network namespace").at("spec.hostNetwork")]
//!         } else {
//!             vec![]
//!         })
//!     }
//! }
//!
//! // In the plugin crate (crate-type = ["cdylib"], built for wasm32-wasip2):
//! // palisade_sdk::export_policy!(NoHostNetwork);
//!
//! // Run the logic natively in `cargo test`:
//! let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
//!                              "spec": {"hostNetwork": true, "containers": []}});
//! let found = palisade_sdk::testing::evaluate::<NoHostNetwork>(&palisade_sdk::testing::input(&pod)).unwrap();
//! assert_eq!(found[0].path.as_deref(), Some("spec.hostNetwork"));
//! ```
//!
//! Speed comes from reading only what a policy needs: [`Request::parse`] borrows the
//! input and keeps the objects as raw JSON; [`Request::pod`] deserialises only the
//! security-relevant part of a Pod ([`pod::Pod`]); [`Request::object`] gives any
//! other type, including the full `k8s-openapi` ones.
//!
//! ## Which target to build for
//! Build for `wasm32-wasip2` (what `cargo build --target wasm32-wasip2` produces is
//! already a component). The host links a deny-all WASI context for such
//! components, which costs a few microseconds per evaluation. A component that
//! imports nothing but the Palisade ABI (built for `wasm32-unknown-unknown` and
//! componentised with `wasm-tools component new`) needs no WASI and starts a little
//! faster; prefer it only when those microseconds matter, since it loses `std`'s
//! I/O (print to stdout is then unavailable; use [`log`] either way).

pub mod log;
pub mod pod;
pub mod registry;
mod request;
pub mod testing;

pub use request::{GroupVersionKind, Operation, Request, UserInfo};

/// The ABI version this SDK implements.
pub const ABI_VERSION: &str = "0.2.0";

/// Bindings generated from `sdk/wit/policy.wit`. Used by [`export_policy!`]; authors
/// do not need them.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, missing_debug_implementations, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "wit",
        pub_export_macro: true,
        default_bindings_module: "palisade_sdk::bindings",
    });
}

/// What a plugin says about itself (the WIT `plugin-metadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Plugin name.
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Kinds the plugin understands (`Pod`, `apps/Deployment`).
    pub kinds: Vec<String>,
    /// Requirement ids the plugin enforces.
    pub requirements: Vec<String>,
    /// JSON Schema of the settings, if the plugin takes any.
    pub settings_schema: Option<String>,
}

impl Metadata {
    /// Name, version and description.
    pub fn new(name: &str, version: &str, description: &str) -> Metadata {
        Metadata { name: name.into(), version: version.into(), description: description.into(), ..Default::default() }
    }

    /// Kinds understood.
    pub fn kinds<I: IntoIterator<Item = S>, S: Into<String>>(mut self, kinds: I) -> Metadata {
        self.kinds = kinds.into_iter().map(Into::into).collect();
        self
    }

    /// Requirement ids enforced.
    pub fn requirements<I: IntoIterator<Item = S>, S: Into<String>>(mut self, reqs: I) -> Metadata {
        self.requirements = reqs.into_iter().map(Into::into).collect();
        self
    }

    /// JSON Schema of the settings.
    pub fn settings_schema(mut self, schema: &str) -> Metadata {
        self.settings_schema = Some(schema.into());
        self
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Message (never include secret values).
    pub message: String,
    /// Structured details.
    pub details: Option<serde_json::Value>,
    /// Dotted JSON path of the offending field.
    pub path: Option<String>,
}

impl Violation {
    /// A violation with a message.
    pub fn new(message: impl Into<String>) -> Violation {
        Violation { message: message.into(), details: None, path: None }
    }

    /// Where in the object.
    pub fn at(mut self, path: impl Into<String>) -> Violation {
        self.path = Some(path.into());
        self
    }

    /// Structured details.
    pub fn details(mut self, details: serde_json::Value) -> Violation {
        self.details = Some(details);
        self
    }
}

/// A policy implemented by a plugin.
pub trait Policy {
    /// Set to `true` when the policy reads Pods through [`Request::pod`] (or
    /// [`Request::shared_pod`]), never as raw JSON: a Pod under review is then parsed
    /// in the same pass as the review (noticeably faster on large Pods), and the raw
    /// accessors see no object for it; objects of other kinds stay raw. In an
    /// `evaluate-batch` call every policy's request shares that one parse:
    /// [`Request::shared_pod`] reads it without a copy.
    const PARSE_PODS: bool = false;

    /// Describes the plugin.
    fn metadata() -> Metadata;

    /// Checks the settings (the policy's `parameters`, as JSON). Default: accept anything.
    fn validate_settings(settings: &str) -> Result<(), String> {
        let _ = settings;
        Ok(())
    }

    /// Evaluates one object. The host may call it for several policies on the same
    /// object (its review parsed once); [`Request::review_json`] gives the raw
    /// review when the parsed accessors are not enough.
    fn evaluate(request: &Request) -> Result<Vec<Violation>, String>;
}

/// `evaluate`: one input document.
fn evaluate_one<P: Policy>(input: &str) -> Result<Vec<Violation>, String> {
    let request = if P::PARSE_PODS { Request::parse_pod(input)? } else { Request::parse(input)? };
    P::evaluate(&request)
}

/// `evaluate-batch`: the review parsed once, then each policy's settings in turn.
fn evaluate_many<P: Policy>(review: &str, settings: &[&str]) -> Vec<Result<Vec<Violation>, String>> {
    let base = if P::PARSE_PODS { Request::parse_pod_review(review) } else { Request::parse_review(review) };
    match base {
        Ok(base) => settings.iter().map(|s| P::evaluate(&base.with_settings(s))).collect(),
        Err(e) => settings.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Glue between the generated bindings and a [`Policy`]; used by [`export_policy!`].
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::bindings::palisade::policy::types as wit;

    pub fn metadata<P: Policy>() -> wit::PluginMetadata {
        let m = P::metadata();
        wit::PluginMetadata {
            name: m.name,
            version: m.version,
            description: m.description,
            abi_version: ABI_VERSION.to_string(),
            kinds: m.kinds,
            requirements: m.requirements,
            settings_schema: m.settings_schema,
        }
    }

    pub fn validate_settings<P: Policy>(settings: String) -> Result<(), String> {
        P::validate_settings(&settings)
    }

    pub fn evaluate<P: Policy>(input: String) -> Result<Vec<wit::Violation>, String> {
        super::evaluate_one::<P>(&input).map(convert)
    }

    pub fn evaluate_batch<P: Policy>(
        review: String,
        settings: Vec<String>,
    ) -> Vec<Result<Vec<wit::Violation>, String>> {
        let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
        super::evaluate_many::<P>(&review, &settings).into_iter().map(|r| r.map(convert)).collect()
    }

    fn convert(found: Vec<Violation>) -> Vec<wit::Violation> {
        found
            .into_iter()
            .map(|v| wit::Violation { message: v.message, details: v.details.map(|d| d.to_string()), path: v.path })
            .collect()
    }
}

/// Exports a [`Policy`] implementation as the plugin's component exports.
///
/// ```ignore
/// palisade_sdk::export_policy!(MyPolicy);
/// ```
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        struct __PalisadeExport;
        impl $crate::bindings::Guest for __PalisadeExport {
            fn metadata() -> $crate::bindings::PluginMetadata {
                $crate::__private::metadata::<$policy>()
            }
            fn validate_settings(settings: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::validate_settings::<$policy>(settings)
            }
            fn evaluate(
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::bindings::Violation>, ::std::string::String> {
                $crate::__private::evaluate::<$policy>(input)
            }
            fn evaluate_batch(
                review: ::std::string::String,
                settings: ::std::vec::Vec<::std::string::String>,
            ) -> ::std::vec::Vec<
                ::std::result::Result<::std::vec::Vec<$crate::bindings::Violation>, ::std::string::String>,
            > {
                $crate::__private::evaluate_batch::<$policy>(review, settings)
            }
        }
        $crate::bindings::export!(__PalisadeExport with_types_in $crate::bindings);
    };
}
