//! Policy bundles: a directory (later also a packed archive) with a `bundle.toml`
//! manifest, Rego modules, WebAssembly plugins, library modules and test cases.
//!
//! Loading reads every file of the bundle into memory once, parses and validates the
//! manifest (schema, semver, engine requirement, unique policy ids, referenced files),
//! and computes a content digest. Compilation is the [`crate::Engine`]'s job.

pub mod doc;
mod manifest;
pub mod pack;
pub mod resolve;
pub mod schema;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use manifest::{BackendKind, BundleMeta, Grant, Manifest, PolicySpec, RegoExecution, RegoVersion};

use crate::error::{Error, Result};

/// Limits applied while reading a bundle directory.
const MAX_FILES: usize = 10_000;
const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// The version of this engine, checked against each bundle's `engine` requirement.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    origin: PathBuf,
    manifest: Arc<Manifest>,
    files: Arc<BTreeMap<String, Arc<[u8]>>>,
    digest: String,
    /// Library modules of the bundles this one depends on (set by the resolver).
    dependency_libs: Arc<Vec<(String, String)>>,
    /// Key id of the trusted key whose signature was verified, for packed bundles.
    signer: Option<String>,
    packed: bool,
}

/// How bundles are loaded: trusted signing keys and archive limits.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// When not empty, only packed bundles signed by one of these keys load.
    pub trusted_keys: Vec<sign::TrustedKey>,
    /// Limits applied to archives.
    pub limits: pack::Limits,
}

impl Bundle {
    /// Loads a bundle directory.
    ///
    /// ```
    /// let bundle = palisade::Bundle::from_dir("tests/bundles/basic")?;
    /// assert_eq!(bundle.name(), "basic");
    /// # Ok::<(), palisade::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, "cannot read bundle", e))?;
        if !meta.is_dir() {
            return Err(Error::Manifest {
                path: dir.to_path_buf(),
                message: "expected a bundle directory containing bundle.toml".into(),
            });
        }
        if !dir.join("bundle.toml").is_file() {
            return Err(Error::Manifest {
                path: dir.join("bundle.toml"),
                message: "no bundle.toml in this directory".into(),
            });
        }
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        read_tree(dir, dir, &mut files, &mut total)?;
        Bundle::from_files(dir, files)
    }

    /// Builds a bundle from in-memory files (paths relative to the bundle root, `/`
    /// separated). `origin` names the bundle in messages.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// let mut files = BTreeMap::new();
    /// files.insert("bundle.toml".to_string(), br#"
    /// [bundle]
    /// name = "demo"
    /// version = "1.0.0"
    /// engine = "^0.1"
    /// [[policy]]
    /// id = "no-latest"
    /// title = "Images are pinned"
    /// rego = "no_latest.rego"
    /// match = { kinds = ["Pod"] }
    /// "#.to_vec());
    /// files.insert("no_latest.rego".to_string(), br#"
    /// package demo.no_latest
    /// deny contains msg if {
    ///   some c in input.review.object.spec.containers
    ///   endswith(c.image, ":latest")
    ///   msg := sprintf("container %s uses a :latest image", [c.name])
    /// }
    /// "#.to_vec());
    /// let bundle = palisade::Bundle::from_files("demo", files)?;
    /// assert_eq!(bundle.policies().len(), 1);
    /// # Ok::<(), palisade::Error>(())
    /// ```
    pub fn from_files(origin: impl Into<PathBuf>, files: BTreeMap<String, Vec<u8>>) -> Result<Bundle> {
        let origin = origin.into();
        let files: BTreeMap<String, Arc<[u8]>> = files.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
        let manifest_path = origin.join("bundle.toml");
        let text = files
            .get("bundle.toml")
            .ok_or_else(|| Error::Manifest { path: manifest_path.clone(), message: "no bundle.toml".into() })?;
        let text = std::str::from_utf8(text)
            .map_err(|_| Error::Manifest { path: manifest_path.clone(), message: "not valid UTF-8".into() })?;
        let manifest: Manifest = toml::from_str(text)
            .map_err(|e| Error::Manifest { path: manifest_path.clone(), message: toml_message(&e, text) })?;
        Bundle::assemble(origin, manifest, files)
    }

    /// Builds a bundle from a manifest made in code (e.g. from Gatekeeper templates and
    /// constraints) and the files it refers to.
    pub fn from_manifest(
        origin: impl Into<PathBuf>,
        manifest: Manifest,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Bundle> {
        let files: BTreeMap<String, Arc<[u8]>> = files.into_iter().map(|(k, v)| (k, Arc::from(v))).collect();
        Bundle::assemble(origin.into(), manifest, files)
    }

    fn assemble(origin: PathBuf, manifest: Manifest, files: BTreeMap<String, Arc<[u8]>>) -> Result<Bundle> {
        validate(&origin.join("bundle.toml"), &manifest, &files)?;
        let digest = digest_of(&files);
        Ok(Bundle {
            origin,
            manifest: Arc::new(manifest),
            files: Arc::new(files),
            digest,
            dependency_libs: Arc::new(Vec::new()),
            signer: None,
            packed: false,
        })
    }

    /// Loads a packed bundle (`.tar.gz` made by `palisade bundle pack`): limits are
    /// enforced while decompressing, every file is checked against the archive's
    /// digest manifest, and with trusted keys the detached signature (`FILE.sig`)
    /// must verify.
    pub fn from_archive(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Bundle> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read bundle", e))?;
        let pack::Unpacked { files, manifest, manifest_bytes } = pack::unpack(path, &bytes, options.limits)?;
        let mut bundle = Bundle::from_files(path, files)?;
        if manifest.name != bundle.name() || manifest.version != bundle.version().to_string() {
            return Err(Error::Integrity {
                path: path.to_path_buf(),
                message: format!(
                    "the digest manifest is for {} {}, but bundle.toml says {} {}",
                    manifest.name,
                    manifest.version,
                    bundle.name(),
                    bundle.version()
                ),
            });
        }
        if !options.trusted_keys.is_empty() {
            let sigs = sign::read_signatures(&sign::sig_path(path))?;
            bundle.signer = Some(sign::verify(path, &manifest_bytes, sigs.as_ref(), &options.trusted_keys)?);
        }
        bundle.packed = true;
        Ok(bundle)
    }

    /// Loads a bundle directory or archive. With trusted keys, directories are
    /// refused: only signed archives can be verified.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Bundle> {
        let path = path.as_ref();
        if path.is_dir() {
            if !options.trusted_keys.is_empty() {
                return Err(Error::Integrity {
                    path: path.to_path_buf(),
                    message: "a bundle directory carries no signature; with trusted keys only signed archives load (palisade bundle pack, then sign)".into(),
                });
            }
            Bundle::from_dir(path)
        } else {
            Bundle::from_archive(path, options)
        }
    }

    /// Key id of the trusted key that signed this (packed) bundle, when verified.
    pub fn signer(&self) -> Option<&str> {
        self.signer.as_deref()
    }

    /// Whether the bundle was loaded from an archive.
    pub fn is_packed(&self) -> bool {
        self.packed
    }

    /// Library modules of the bundles this one depends on.
    pub fn dependency_libs(&self) -> &[(String, String)] {
        &self.dependency_libs
    }

    pub(crate) fn set_dependency_libs(&mut self, libs: Vec<(String, String)>) {
        self.dependency_libs = Arc::new(libs);
    }

    /// Bundle name.
    pub fn name(&self) -> &str {
        &self.manifest.bundle.name
    }

    /// Bundle version.
    pub fn version(&self) -> &semver::Version {
        &self.manifest.bundle.version
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The policies, in manifest order.
    pub fn policies(&self) -> &[PolicySpec] {
        &self.manifest.policies
    }

    /// Where the bundle was loaded from (directory, archive, or `embedded:NAME`).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The same bundle, named by where it really came from (`oci://REF@DIGEST` for one
    /// pulled into the cache) in reports and messages.
    #[cfg_attr(not(feature = "oci"), allow(dead_code))]
    pub(crate) fn with_origin(mut self, origin: impl Into<PathBuf>) -> Bundle {
        self.origin = origin.into();
        self
    }

    /// The content digest: `sha256:` + hex sha256 over the sorted list of
    /// `path NUL sha256(file) LF` lines of every file.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// One file's bytes, by path relative to the bundle root.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(normalize(path)?.as_str()).map(|b| &b[..])
    }

    /// One file as UTF-8 text, with an error naming the file otherwise.
    pub fn text(&self, path: &str) -> Result<&str> {
        let bytes = self.file(path).ok_or_else(|| Error::Manifest {
            path: self.origin.join(path),
            message: "no such file in the bundle".into(),
        })?;
        std::str::from_utf8(bytes)
            .map_err(|_| Error::Manifest { path: self.origin.join(path), message: "not valid UTF-8".into() })
    }

    /// Every file path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The Rego library modules (`[bundle] libs`), as (path, source).
    pub fn rego_libs(&self) -> Result<Vec<(String, String)>> {
        self.libs_at(&self.manifest.bundle.libs)
    }

    /// The Rego library modules under the given files or directories.
    pub(crate) fn libs_at(&self, libs: &[String]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for lib in libs {
            let lib = normalize(lib).unwrap_or_default();
            let prefix = format!("{lib}/");
            for path in self.files.keys().filter(|p| **p == lib || (p.starts_with(&prefix) && p.ends_with(".rego"))) {
                out.push((path.clone(), self.text(path)?.to_string()));
            }
        }
        Ok(out)
    }

    /// Test files: `tests/*.yaml` and `tests/*.yml` (not in subdirectories, which hold
    /// the objects cases refer to).
    pub fn test_files(&self) -> impl Iterator<Item = &str> {
        self.paths().filter(|p| {
            p.strip_prefix("tests/")
                .is_some_and(|rest| !rest.contains('/') && (rest.ends_with(".yaml") || rest.ends_with(".yml")))
        })
    }
}

fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>, total: &mut u64) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot read directory", e))?;
    let mut entries: Vec<_> =
        entries.collect::<std::io::Result<_>>().map_err(|e| Error::io(dir, "cannot read directory", e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
        if meta.is_dir() {
            read_tree(root, &path, files, total)?;
        } else if meta.is_file() {
            *total += meta.len();
            if files.len() >= MAX_FILES || *total > MAX_TOTAL_BYTES {
                return Err(Error::Manifest {
                    path: root.to_path_buf(),
                    message: format!("bundle is larger than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes"),
                });
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            files.insert(rel.join("/"), bytes);
        }
    }
    Ok(())
}

/// Normalises a bundle-relative path (`./a//b` → `a/b`); `None` for absolute paths or `..`.
pub(crate) fn normalize(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn digest_of(files: &BTreeMap<String, Arc<[u8]>>) -> String {
    let mut h = Sha256::new();
    for (path, bytes) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(hex::encode(Sha256::digest(bytes)).as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Compresses a TOML error to one line: `line L, column C: message`.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

fn validate(path: &Path, m: &Manifest, files: &BTreeMap<String, Arc<[u8]>>) -> Result<()> {
    let manifest_err = |message: String| Error::Manifest { path: path.to_path_buf(), message };
    let b = &m.bundle;
    if !valid_id(&b.name) {
        return Err(manifest_err(format!(
            "[bundle] name {:?}: expected lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit",
            b.name
        )));
    }
    let engine = semver::Version::parse(ENGINE_VERSION).map_err(|e| manifest_err(e.to_string()))?;
    if !b.engine.matches(&engine) {
        return Err(Error::EngineVersion {
            path: path.to_path_buf(),
            bundle: b.name.clone(),
            version: b.version.to_string(),
            requirement: b.engine.to_string(),
            engine: ENGINE_VERSION.to_string(),
        });
    }
    for lib in &b.libs {
        let found = normalize(lib).is_some_and(|l| files.keys().any(|p| *p == l || p.starts_with(&format!("{l}/"))));
        if !found {
            return Err(manifest_err(format!("[bundle] libs: {lib:?} does not exist in the bundle")));
        }
    }
    let mut seen = BTreeSet::new();
    let mut schemas: BTreeMap<String, schema::ParameterSchema> = BTreeMap::new();
    for p in &m.policies {
        let err = |key: &str, message: String| Error::Policy {
            path: path.to_path_buf(),
            policy: p.id.clone(),
            key: key.to_string(),
            message,
        };
        if !valid_id(&p.id) {
            return Err(err("id", "expected lowercase letters, digits, `-`, `_` or `.`".into()));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(err("id", "duplicate policy id: ids must be unique within a bundle".into()));
        }
        if p.title.trim().is_empty() {
            return Err(err("title", "must not be empty".into()));
        }
        let implementations = [&p.rego, &p.wasm, &p.cel].iter().filter(|i| i.is_some()).count();
        if implementations == 0 && p.unsupported.is_none() {
            return Err(err(
                "rego",
                "a policy needs `rego = \"file.rego\"`, `wasm = \"file.wasm\"` or `cel = \"file.yaml\"`".into(),
            ));
        }
        if let Some(b) = p.backend {
            let has = match b {
                BackendKind::Rego => p.rego.is_some(),
                BackendKind::Wasm => p.wasm.is_some(),
                BackendKind::Cel => p.cel.is_some(),
            };
            if implementations < 2 || !has {
                return Err(err(
                    "backend",
                    format!("chooses between implementations, so the policy needs `{b}` and another"),
                ));
            }
        }
        for (key, file) in [("rego", &p.rego), ("wasm", &p.wasm), ("cel", &p.cel), ("schema", &p.schema)] {
            if let Some(file) = file {
                let norm = normalize(file)
                    .ok_or_else(|| err(key, format!("{file:?} must be a relative path inside the bundle")))?;
                if !files.contains_key(&norm) {
                    return Err(err(key, format!("file {file} does not exist in the bundle")));
                }
            }
        }
        match (&p.wasm, &p.sha256) {
            (Some(_), None) => return Err(err("sha256", "required with `wasm`: the plugin's sha256 in hex".into())),
            (_, Some(h)) if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) => {
                return Err(err("sha256", format!("expected 64 hex digits, got {h:?}")));
            }
            _ => {}
        }
        if !p.parameters.is_object() {
            return Err(err("parameters", "expected a table".into()));
        }
        if let Some(key) = p.enabled_by.as_ref().filter(|k| p.parameters.get(k.as_str()).is_none()) {
            return Err(err("enabled_by", format!("names {key:?}, which is not one of the policy's parameters")));
        }
        if let Some(file) = &p.schema {
            // Compiled once per file: many policies share one schema (52 in pci-dss).
            if !schemas.contains_key(file) {
                let text = normalize(file)
                    .and_then(|f| files.get(&f))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .ok_or_else(|| err("schema", format!("{file} is not a UTF-8 text file")))?;
                let compiled =
                    schema::ParameterSchema::parse(text).map_err(|e| err("schema", format!("{file} {e}")))?;
                schemas.insert(file.clone(), compiled);
            }
            let Some(schema) = schemas.get(file) else { continue };
            if let Some(first) = schema.violations(&p.parameters).first() {
                return Err(err("parameters", format!("do not match {file}: {first}")));
            }
        }
        if p.memory_mb == Some(0) {
            return Err(err("memory_mb", "must be greater than 0".into()));
        }
        if p.wasm.is_none() && (p.memory_mb.is_some() || !p.grants.is_empty()) {
            return Err(err("memory_mb", "`memory_mb` and `grants` apply to `wasm` policies only".into()));
        }
        if p.timeout_ms == Some(0) {
            return Err(err("timeout_ms", "must be greater than 0".into()));
        }
        if p.requirements.iter().any(|r| r.trim().is_empty()) {
            return Err(err("requirements", "requirement ids must not be empty".into()));
        }
    }
    Ok(())
}

/// The bundle name of sources read from outside a bundle (Gatekeeper, VAP manifests):
/// the file or directory name, lowercased, other characters as `-`; else `fallback`.
pub(crate) fn name_from_path(origin: &Path, fallback: &str) -> String {
    let name = if origin.is_file() { origin.file_stem() } else { origin.file_name() };
    name.map(|n| n.to_string_lossy().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-"))
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| fallback.to_string())
}

/// The requirement ids of an object's `palisade.dev/requirements` annotation
/// (comma-separated), for policies read from Kubernetes objects.
pub(crate) fn requirements_annotation(object: &serde_json::Value) -> Vec<String> {
    object["metadata"]["annotations"]
        .get("palisade.dev/requirements")
        .and_then(serde_json::Value::as_str)
        .map(|r| r.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

pub(crate) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(manifest: &str, extra: &[(&str, &str)]) -> Result<Bundle> {
        let mut files = BTreeMap::new();
        files.insert("bundle.toml".to_string(), manifest.as_bytes().to_vec());
        for (p, c) in extra {
            files.insert(p.to_string(), c.as_bytes().to_vec());
        }
        Bundle::from_files("b", files)
    }

    const HEAD: &str = "[bundle]\nname = \"b\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n";

    #[test]
    fn loads_and_digests() {
        let b = bundle(
            &format!("{HEAD}[[policy]]\nid = \"p\"\ntitle = \"T\"\nrego = \"./r/p.rego\"\n"),
            &[("r/p.rego", "package p")],
        )
        .unwrap();
        assert_eq!(b.policies()[0].id, "p");
        assert!(b.digest().starts_with("sha256:"));
        assert_eq!(b.file("r/p.rego"), Some(&b"package p"[..]));
        let b2 = bundle(
            &format!("{HEAD}[[policy]]\nid = \"p\"\ntitle = \"T\"\nrego = \"./r/p.rego\"\n"),
            &[("r/p.rego", "package q")],
        )
        .unwrap();
        assert_ne!(b.digest(), b2.digest());
    }

    #[test]
    fn errors_name_the_place() {
        let e = bundle(&format!("{HEAD}colour = 1\n"), &[]).unwrap_err().to_string();
        assert!(e.starts_with("b/bundle.toml: line 5, column 1: unknown field `colour`"), "{e}");
        let e = bundle(&format!("{HEAD}[[policy]]\nid = \"p\"\ntitle = \"T\"\nrego = \"x.rego\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "b/bundle.toml: policy `p`: `rego`: file x.rego does not exist in the bundle");
        let two = format!(
            "{HEAD}[[policy]]\nid = \"p\"\ntitle = \"T\"\nrego = \"x.rego\"\n[[policy]]\nid = \"p\"\ntitle = \"U\"\nrego = \"x.rego\"\n"
        );
        let e = bundle(&two, &[("x.rego", "")]).unwrap_err().to_string();
        assert!(e.contains("policy `p`: `id`: duplicate policy id"), "{e}");
        let e = bundle("[bundle]\nname = \"b\"\nversion = \"1.0.0\"\nengine = \">=9\"\n", &[]).unwrap_err();
        assert_eq!(e.code(), "bundle_engine_version_error");
        assert!(e.to_string().contains("requires palisade >=9, but this is palisade 0."), "{e}");
        let e = bundle("[bundle]\nname = \"b\"\nversion = \"one\"\nengine = \"^0.1\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = bundle(&format!("{HEAD}[[policy]]\nid = \"p\"\ntitle = \"T\"\nrego = \"../x.rego\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a relative path inside the bundle"), "{e}");
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("./a//b").as_deref(), Some("a/b"));
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize("a/../../b"), None);
    }
}
