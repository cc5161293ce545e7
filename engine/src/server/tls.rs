//! TLS for the webhook: rustls (TLS 1.2 and 1.3, rustls's modern cipher suites
//! only) with a certificate resolver whose key pair can be swapped while the
//! server runs. cert-manager rewrites the mounted files in place; the watcher
//! reloads them, new connections get the new pair, existing ones finish, and a
//! pair that does not load (unreadable, mismatched key) is logged and refused
//! while the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The current certificate and key.
#[derive(Debug)]
pub(crate) struct CertStore {
    current: ArcSwap<CertifiedKey>,
    cert: PathBuf,
    key: PathBuf,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain and private key, checking that they belong together.
pub(crate) fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let bad = |path: &Path, message: String| Error::Input { context: path.display().to_string(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, format!("cannot read the certificate: {e}")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| bad(key, format!("the key does not match the certificate or is unusable: {e}")))
}

impl CertStore {
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<CertStore>> {
        let pair = load_pair(cert, key)?;
        // Absolute, so that file events (which carry absolute paths) can be matched.
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(Arc::new(CertStore { current: ArcSwap::from_pointee(pair), cert: abs(cert), key: abs(key) }))
    }

    /// Re-reads the files; keeps the current pair when the new one does not load.
    /// Returns whether the pair changed.
    pub(crate) fn reload(&self) -> Result<bool> {
        let pair = load_pair(&self.cert, &self.key)?;
        if pair.cert == self.current.load().cert {
            return Ok(false);
        }
        self.current.store(Arc::new(pair));
        Ok(true)
    }

    /// The certificate and key paths.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        vec![self.cert.clone(), self.key.clone()]
    }

    /// The directories to watch (cert-manager and the kubelet swap a symlink in them).
    pub(crate) fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [&self.cert, &self.key]
            .iter()
            .map(|p| p.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into()))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// A rustls server configuration serving whatever `store` holds, with HTTP/2 and
/// HTTP/1.1 offered through ALPN.
pub(crate) fn server_config(store: Arc<CertStore>) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::input("TLS", e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
