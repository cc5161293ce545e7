//! `palisade::Error`: every failure the library reports, each naming the offending
//! file, bundle, policy, document or key, with a stable machine-readable [`Error::code`].
//!
//! Library errors never expose `regorus`, `wasmtime` or `anyhow` types: messages from
//! those crates are carried as text.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading bundles, reading objects or evaluating.
///
/// A policy that fails *while evaluating* an object is not an `Error`: it is recorded
/// in the [`crate::Decision`] as a [`crate::PolicyError`] and handled by the policy's
/// failure mode, so one broken rule never loses the other results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// `bundle.toml` is not valid TOML or does not follow the schema.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// Path of the `bundle.toml` (or the bundle origin for embedded bundles).
        path: PathBuf,
        /// What was expected, with line and column when the parser knows them.
        message: String,
    },

    /// One policy entry of a bundle is invalid.
    #[error("{}: policy `{policy}`: `{key}`: {message}", path.display())]
    Policy {
        /// Path of the `bundle.toml`.
        path: PathBuf,
        /// The policy id.
        policy: String,
        /// The offending key of the `[[policy]]` entry.
        key: String,
        /// What is wrong.
        message: String,
    },

    /// The bundle's `engine` requirement does not accept this engine version.
    #[error(
        "{}: bundle {bundle} {version} requires palisade {requirement}, but this is palisade {engine}",
        path.display()
    )]
    EngineVersion {
        /// Path of the `bundle.toml`.
        path: PathBuf,
        /// Bundle name.
        bundle: String,
        /// Bundle version.
        version: String,
        /// The `engine` requirement.
        requirement: String,
        /// This engine's version.
        engine: String,
    },

    /// A CEL policy failed to load: a document that is not a valid
    /// ValidatingAdmissionPolicy, an expression that does not parse, or one calling a
    /// function the evaluator does not have.
    #[error("policy `{policy}` of bundle {bundle}: CEL does not compile: {message}")]
    CelCompile {
        /// Bundle name.
        bundle: String,
        /// Policy id.
        policy: String,
        /// File, policy, field, expression and what is wrong.
        message: String,
    },

    /// A Rego module failed to parse or compile.
    #[error("policy `{policy}` of bundle {bundle}: Rego does not compile: {message}")]
    RegoCompile {
        /// Bundle name.
        bundle: String,
        /// Policy id (or `lib` for a library module).
        policy: String,
        /// Parser/compiler message, including `file:line:col`.
        message: String,
    },

    /// A WebAssembly plugin could not be loaded (digest mismatch, not a component, ABI).
    #[error("policy `{policy}` of bundle {bundle}: plugin {}: {message}", path.display())]
    Plugin {
        /// Bundle name.
        bundle: String,
        /// Policy id.
        policy: String,
        /// Path of the `.wasm` file inside the bundle.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A document (YAML or JSON) of an input file could not be parsed.
    #[error("{file}: document {document}{}: {message}", place(*line, *column))]
    Document {
        /// The file (`-` for standard input).
        file: String,
        /// Index of the document in the file, starting at 1.
        document: usize,
        /// Line in the file where the problem is, when known (1-based).
        line: Option<usize>,
        /// Column, when known (1-based).
        column: Option<usize>,
        /// What was expected.
        message: String,
    },

    /// An input that is not a valid Kubernetes object, AdmissionReview or test case.
    #[error("{context}: {message}")]
    Input {
        /// Where the input came from (file, document, JSON path).
        context: String,
        /// What was expected.
        message: String,
    },

    /// A bundle, packed archive or signature failed an integrity or trust check.
    #[error("{}: {message}", path.display())]
    Integrity {
        /// The bundle or archive.
        path: PathBuf,
        /// Which check failed, naming the file when one is at fault.
        message: String,
    },

    /// Bundle dependency resolution failed.
    #[error("{message}")]
    Resolve {
        /// The whole chain of requirements that could not be satisfied.
        message: String,
    },

    /// A PolicyException document that is incomplete or out of bounds.
    #[error("{file}: document {document}: `{field}`: {message}")]
    Exception {
        /// The file it was read from.
        file: String,
        /// Index of the document in the file, starting at 1.
        document: usize,
        /// The offending field (`spec.expires`).
        field: String,
        /// What was expected.
        message: String,
    },

    /// A request to a Kubernetes API server failed (unreachable, unauthorised, a list
    /// that failed half way, a missing CRD).
    #[error("cluster {cluster}: {what}: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Cluster {
        /// The API server's URL (or the kubeconfig context).
        cluster: String,
        /// What was being done, naming the kind ("list apps/v1 Deployment").
        what: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// The server's or the client's message.
        message: String,
    },

    /// A request to an OCI registry failed, or what it served is not a palisade bundle.
    #[error("registry {reference}: {what}: {message}")]
    Registry {
        /// The reference (`host/repo:tag`).
        reference: String,
        /// What was being done ("push", "pull").
        what: String,
        /// The registry's or the client's message.
        message: String,
    },
}

fn place(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl Error {
    /// A stable identifier for the kind of error, for scripts and logs
    /// (in the spirit of OPA's `rego_parse_error`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io_error",
            Error::Manifest { .. } => "bundle_manifest_error",
            Error::Policy { .. } => "bundle_policy_error",
            Error::EngineVersion { .. } => "bundle_engine_version_error",
            Error::RegoCompile { .. } => "rego_compile_error",
            Error::CelCompile { .. } => "cel_compile_error",
            Error::Plugin { .. } => "plugin_load_error",
            Error::Document { .. } => "document_parse_error",
            Error::Input { .. } => "input_error",
            Error::Integrity { .. } => "bundle_integrity_error",
            Error::Resolve { .. } => "bundle_resolve_error",
            Error::Cluster { .. } => "cluster_error",
            Error::Exception { .. } => "exception_error",
            Error::Registry { .. } => "registry_error",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), action, source }
    }

    pub(crate) fn input(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input { context: context.into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let e = Error::Policy {
            path: "b/bundle.toml".into(),
            policy: "p1".into(),
            key: "rego".into(),
            message: "file rules/x.rego does not exist".into(),
        };
        assert_eq!(e.to_string(), "b/bundle.toml: policy `p1`: `rego`: file rules/x.rego does not exist");
        assert_eq!(e.code(), "bundle_policy_error");
        let d =
            Error::Document { file: "a.yaml".into(), document: 3, line: Some(12), column: None, message: "bad".into() };
        assert_eq!(d.to_string(), "a.yaml: document 3 (line 12): bad");
    }
}
