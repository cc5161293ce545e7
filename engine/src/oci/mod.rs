//! Bundles in OCI registries: `palisade bundle push|pull` and `-b oci://REF`.
//!
//! A bundle travels as an OCI artifact whose manifest has
//! - a config blob of type [`CONFIG_MEDIA_TYPE`]: `{"name", "version", "digest"}`;
//! - one layer of type [`BUNDLE_MEDIA_TYPE`]: the archive `palisade bundle pack` writes;
//! - when the archive was signed, a second layer of type [`SIGNATURE_MEDIA_TYPE`]: its
//!   `.sig` file (the ed25519 scheme of [`crate::bundle::sign`]);
//! - annotations `org.opencontainers.image.title` (bundle name),
//!   `org.opencontainers.image.version` and `dev.palisade.bundle.digest`.
//!
//! A pull lands in a content-addressed cache, `CACHE/sha256/<manifest digest>/` holding
//! `NAME-VERSION.tar.gz` (and `.sig`), written only after every blob's sha256 matched its
//! descriptor; a reference by digest that is cached is not fetched again. The archive then
//! loads like any other (`Bundle::from_archive`), so `--trusted-key` checks the signature
//! and the digest manifest before anything compiles.
//!
//! Transport: HTTPS (with `--registry-ca` for a private CA); plain HTTP only for a
//! loopback registry and only when asked (`--plain-http`). Credentials come from the
//! Docker config file (`REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`: `auths.<registry>.auth`, or `identitytoken` as a bearer token).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, LoadOptions, pack, sign};

pub mod builtin;
pub mod signature;
use crate::error::{Error, Result};

/// Media type of the packed bundle layer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.palisade.bundle.v1.tar+gzip";
/// Media type of the signature layer (the archive's `.sig` JSON file).
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.palisade.bundle.signature.v1+json";
/// Media type of the artifact's config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.palisade.bundle.config.v1+json";
/// The `-b` prefix of a registry reference.
pub const SCHEME: &str = "oci://";

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Plain HTTP, allowed for loopback registries only.
    pub plain_http: bool,
    /// A PEM file of CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Where pulled bundles are kept (default `$XDG_CACHE_HOME/palisade/oci`).
    pub cache_dir: Option<PathBuf>,
    /// Longest time a registry call may take (none: the client's own timeouts).
    pub timeout: Option<std::time::Duration>,
}

impl RegistryOptions {
    /// Options with plain HTTP (loopback only) and a CA file as given.
    pub fn new(plain_http: bool, ca_file: Option<PathBuf>) -> RegistryOptions {
        RegistryOptions { plain_http, ca_file, cache_dir: None, timeout: None }
    }

    fn cache(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| crate::sources::cache_home().map(|c| c.join("oci")))
            .unwrap_or_else(|| std::env::temp_dir().join("palisade-oci"))
    }
}

/// A pushed bundle.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pushed {
    /// The manifest digest (`sha256:…`): pull `REPO@DIGEST` for exactly this artifact.
    pub digest: String,
    /// Whether a signature layer went with it.
    pub signed: bool,
}

/// A pulled bundle.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pulled {
    /// The archive in the cache (its `.sig` next to it when signed).
    pub archive: PathBuf,
    /// The manifest digest the reference resolved to.
    pub digest: String,
}

/// Pushes a bundle directory (packed on the way, unsigned) or a packed archive (with
/// its `.sig` file when there is one) to `reference` (`host[:port]/repo:tag`).
pub fn push(bundle: &Path, reference: &str, options: &RegistryOptions) -> Result<Pushed> {
    let target = parse(reference, options)?;
    let (loaded, bytes, signature) = if bundle.is_dir() {
        let b = Bundle::from_dir(bundle)?;
        let bytes = pack::pack(&b)?;
        (b, bytes, None)
    } else {
        let b = Bundle::from_archive(bundle, &LoadOptions::default())?;
        let bytes = std::fs::read(bundle).map_err(|e| Error::io(bundle, "cannot read bundle", e))?;
        let sig = sign::sig_path(bundle);
        let signature = match std::fs::read(&sig) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(sig, "cannot read", e)),
        };
        (b, bytes, signature)
    };
    let mut layers = vec![ImageLayer::new(bytes, BUNDLE_MEDIA_TYPE.into(), Some(title(&pack::file_name(&loaded))))];
    let signed = signature.is_some();
    if let Some(s) = signature {
        layers.push(ImageLayer::new(s, SIGNATURE_MEDIA_TYPE.into(), None));
    }
    let about =
        serde_json::json!({"name": loaded.name(), "version": loaded.version().to_string(), "digest": loaded.digest()});
    let config = Config::new(about.to_string().into_bytes(), CONFIG_MEDIA_TYPE.into(), None);
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), loaded.name().to_string()),
        ("org.opencontainers.image.version".to_string(), loaded.version().to_string()),
        ("dev.palisade.bundle.digest".to_string(), loaded.digest().to_string()),
    ]);
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    let client = client(options)?;
    let auth = auth_for(&target)?;
    let fail = |what: &str, e: &oci_client::errors::OciDistributionError| client_error(reference, what, e);
    block_on(async {
        client.push(&target, &layers, config, &auth, Some(manifest)).await.map_err(|e| fail("push", &e))?;
        client.fetch_manifest_digest(&target, &auth).await.map_err(|e| fail("read back the manifest digest", &e))
    })?
    .map(|digest| Pushed { digest, signed })
}

/// Pulls `reference` (a tag or `@sha256:…`) into the cache and returns the archive.
pub fn pull(reference: &str, options: &RegistryOptions) -> Result<Pulled> {
    let target = parse(reference, options)?;
    if let Some(digest) = target.digest()
        && let Some(archive) = cached(&options.cache(), digest)
    {
        return Ok(Pulled { archive, digest: digest.to_string() });
    }
    let client = client(options)?;
    let auth = auth_for(&target)?;
    let accepted = vec![BUNDLE_MEDIA_TYPE, SIGNATURE_MEDIA_TYPE];
    let image = block_on(async { client.pull(&target, &auth, accepted).await })?
        .map_err(|e| client_error(reference, "pull", &e))?;
    let digest = image.digest.clone().ok_or_else(|| registry_error(reference, "pull", &"no manifest digest"))?;
    if let Some(want) = target.digest().filter(|d| *d != digest) {
        return Err(registry_error(reference, "pull", &format!("the registry served manifest {digest}, not {want}")));
    }
    let manifest = image.manifest.as_ref().ok_or_else(|| registry_error(reference, "pull", &"no manifest"))?;
    let mut archive = None;
    let mut signature = None;
    // The client fetches layers concurrently: match them to the manifest by digest.
    for layer in &image.layers {
        let got = sha256(&layer.data);
        if !manifest.layers.iter().any(|d| d.digest == got && d.media_type == layer.media_type) {
            let why = format!("a {} layer has digest {got}, which the manifest does not list", layer.media_type);
            return Err(registry_error(reference, "pull", &why));
        }
        match layer.media_type.as_str() {
            BUNDLE_MEDIA_TYPE if archive.is_none() => archive = Some(layer),
            SIGNATURE_MEDIA_TYPE if signature.is_none() => signature = Some(layer),
            other => return Err(registry_error(reference, "pull", &format!("unexpected layer of type {other}"))),
        }
    }
    let archive = archive.ok_or_else(|| {
        registry_error(reference, "pull", &format!("not a palisade bundle: no layer of type {BUNDLE_MEDIA_TYPE}"))
    })?;
    let signature = signature.map(|s| s.data.as_ref());
    let path = store(&options.cache(), &digest, &archive.data, signature, reference)?;
    Ok(Pulled { archive: path, digest })
}

/// The manifest digest `reference` resolves to now (one small request; nothing is
/// pulled). `serve --bundle-poll` compares it with the last one.
pub fn resolve(reference: &str, options: &RegistryOptions) -> Result<String> {
    let target = parse(reference, options)?;
    if let Some(d) = target.digest() {
        return Ok(d.to_string());
    }
    let client = client(options)?;
    let auth = auth_for(&target)?;
    let fetch = async {
        client.fetch_manifest_digest(&target, &auth).await.map_err(|e| client_error(reference, "resolve the tag", &e))
    };
    call(reference, "resolve the tag", options, fetch)
}

/// Whether a `-b` value names a registry reference; the reference without the scheme.
pub fn strip_scheme(b: &str) -> Option<&str> {
    b.strip_prefix(SCHEME)
}

pub(crate) fn parse(reference: &str, options: &RegistryOptions) -> Result<Reference> {
    let r: Reference = reference.parse().map_err(|e| {
        Error::input(
            format!("registry reference {reference:?}"),
            format!("expected HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]: {e}"),
        )
    })?;
    if options.plain_http && !is_loopback(r.registry()) {
        return Err(Error::input(
            format!("--plain-http {reference}"),
            format!(
                "plain HTTP is allowed only for loopback registries (127.0.0.1, [::1], localhost), not {}",
                r.registry()
            ),
        ));
    }
    Ok(r)
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn client(options: &RegistryOptions) -> Result<Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig {
        protocol: if options.plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
        ..Default::default()
    };
    if let Some(ca) = &options.ca_file {
        let data = std::fs::read(ca).map_err(|e| Error::io(ca, "cannot read --registry-ca", e))?;
        config.extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data });
    }
    Ok(Client::new(config))
}

/// Credentials for the registry from the Docker config file; anonymous when it has none.
fn auth_for(target: &Reference) -> Result<RegistryAuth> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let path = var("REGISTRY_AUTH_FILE")
        .or_else(|| var("DOCKER_CONFIG").map(|d| d.join("config.json")))
        .or_else(|| var("HOME").map(|h| h.join(".docker/config.json")));
    match path {
        Some(path) => auth_from(&path, target.resolve_registry()),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// The credentials a Docker config file holds for `registry`.
fn auth_from(path: &Path, registry: &str) -> Result<RegistryAuth> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(Error::io(path, "cannot read registry credentials", e)),
    };
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(path.display().to_string(), format!("not a Docker config file (JSON): {e}")))?;
    let entry = &doc["auths"][registry];
    if let Some(token) = entry["identitytoken"].as_str() {
        return Ok(RegistryAuth::Bearer(token.to_string()));
    }
    let Some(encoded) = entry["auth"].as_str() else { return Ok(RegistryAuth::Anonymous) };
    let context = || format!("{}: auths.{registry}.auth", path.display());
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Error::input(context(), "expected base64 of USER:PASSWORD"))?;
    let (user, password) =
        decoded.split_once(':').ok_or_else(|| Error::input(context(), "expected base64 of USER:PASSWORD"))?;
    Ok(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

fn title(file: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("org.opencontainers.image.title".to_string(), file.to_string())])
}

/// The archive cached for a manifest digest, if complete and still matching the layer
/// digest recorded with it (an altered entry is ignored, with a warning, and pulled again).
fn cached(cache: &Path, digest: &str) -> Option<PathBuf> {
    let dir = cache.join(digest.replace(':', "/"));
    let marker = std::fs::read_to_string(dir.join("archive")).ok()?;
    let (name, layer) = marker.trim().split_once(' ')?;
    let archive = dir.join(name);
    let bytes = std::fs::read(&archive).ok()?;
    if sha256(&bytes) != layer {
        tracing::warn!(path = %archive.display(), "cached bundle does not match its digest; pulling it again");
        return None;
    }
    Some(archive)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes a pulled artifact into the cache: a temporary directory renamed into place,
/// so a reader never sees half of one.
fn store(cache: &Path, digest: &str, archive: &[u8], signature: Option<&[u8]>, reference: &str) -> Result<PathBuf> {
    let dir = cache.join(digest.replace(':', "/"));
    if let Some(existing) = cached(cache, digest) {
        return Ok(existing);
    }
    let name = crate::bundle::pack::unpack(Path::new(reference), archive, pack::Limits::default())
        .map(|u| format!("{}-{}.tar.gz", u.manifest.name, u.manifest.version))?;
    let parent = dir.parent().unwrap_or(cache);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "cannot create", e))?;
    let tmp = parent.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, "cannot create", e))?;
    let write = |file: &str, bytes: &[u8]| {
        std::fs::write(tmp.join(file), bytes).map_err(|e| Error::io(tmp.join(file), "cannot write", e))
    };
    write(&name, archive)?;
    if let Some(s) = signature {
        write(&format!("{name}.sig"), s)?;
    }
    write("archive", format!("{name} {}\n", sha256(archive)).as_bytes())?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if cached(cache, digest).is_none() {
            return Err(Error::io(dir, "cannot move the pulled bundle into the cache", e));
        }
    }
    Ok(dir.join(name))
}

fn registry_error(reference: &str, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Registry { reference: reference.to_string(), what: what.to_string(), message: e.to_string() }
}

/// Whether the registry refused the credentials (or their absence).
fn unauthorized(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
    match e {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => true,
        E::ServerError { code, .. } => *code == 401 || *code == 403,
        E::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|x| matches!(x.code, C::Unauthorized | C::Denied))
        }
        _ => false,
    }
}

/// A client error with its causes ("error sending request …: connection refused").
fn client_error(reference: &str, what: &str, e: &oci_client::errors::OciDistributionError) -> Error {
    let mut message = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let c = cause.to_string();
        if !message.contains(&c) {
            message = format!("{message}: {c}");
        }
        next = cause.source();
    }
    if unauthorized(e) {
        message.push_str(
            " (check the credentials for this registry in REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
        );
    }
    registry_error(reference, what, &message)
}

/// Runs a registry call (see [`block_on`]), given up after `options.timeout` when set.
fn call<T: Send>(
    reference: &str,
    what: &str,
    options: &RegistryOptions,
    f: impl std::future::Future<Output = Result<T>> + Send,
) -> Result<T> {
    let Some(limit) = options.timeout else { return block_on(f)? };
    block_on(async { tokio::time::timeout(limit, f).await })?
        .unwrap_or_else(|_| Err(registry_error(reference, what, &format!("no answer within {limit:?}"))))
}

/// Runs a registry call on its own thread and runtime, so that it works from inside
/// an async caller (`serve` reloading) as well as from plain code.
fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(rt.block_on(f))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the registry client panicked")))
    })
    .map_err(|e: std::io::Error| Error::io("registry client runtime", "cannot start", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback() {
        let plain = RegistryOptions::new(true, None);
        assert!(parse("127.0.0.1:5000/p/b:1", &plain).is_ok());
        assert!(parse("localhost:5000/p/b:1", &plain).is_ok());
        assert!(is_loopback("[::1]:5000") && is_loopback("localhost") && !is_loopback("10.0.0.1:5000"));
        let e = parse("registry.example.com/p/b:1", &plain).unwrap_err().to_string();
        assert!(e.contains("only for loopback") && e.contains("registry.example.com"), "{e}");
        assert!(parse("registry.example.com/p/b:1", &RegistryOptions::default()).is_ok());
        let e = parse("Not A Reference", &RegistryOptions::default()).unwrap_err().to_string();
        assert!(e.contains("expected HOST[:PORT]/REPO"), "{e}");
    }

    #[test]
    fn credentials_from_the_docker_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"auths": {"r.example:5000": {"auth": "dXNlcjpwYXNz"}, "t.example": {"identitytoken": "tok"}, "bad.example": {"auth": "!!"}}}"#).unwrap();
        let basic = auth_from(&file, "r.example:5000").unwrap();
        assert!(matches!(basic, RegistryAuth::Basic(u, p) if u == "user" && p == "pass"));
        assert!(matches!(auth_from(&file, "t.example").unwrap(), RegistryAuth::Bearer(t) if t == "tok"));
        assert!(matches!(auth_from(&file, "other.example").unwrap(), RegistryAuth::Anonymous));
        let e = auth_from(&file, "bad.example").unwrap_err().to_string();
        assert!(e.contains("auths.bad.example.auth") && e.contains("USER:PASSWORD"), "{e}");
        assert!(matches!(auth_from(&dir.path().join("none.json"), "r").unwrap(), RegistryAuth::Anonymous));
    }

    #[test]
    fn a_half_written_cache_entry_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("sha256/abc");
        std::fs::create_dir_all(&entry).unwrap();
        assert_eq!(cached(dir.path(), "sha256:abc"), None, "no marker file");
        std::fs::write(entry.join("archive"), format!("b-1.0.0.tar.gz {}\n", sha256(b"x"))).unwrap();
        assert_eq!(cached(dir.path(), "sha256:abc"), None, "the marker names a missing file");
        std::fs::write(entry.join("b-1.0.0.tar.gz"), "x").unwrap();
        assert_eq!(cached(dir.path(), "sha256:abc"), Some(entry.join("b-1.0.0.tar.gz")));
        std::fs::write(entry.join("b-1.0.0.tar.gz"), "altered").unwrap();
        assert_eq!(cached(dir.path(), "sha256:abc"), None, "an altered archive is not used");
    }
}
