//! A real OCI registry for the tests: Debian's `docker-registry` (fetched once by
//! `scripts/test-registry.sh`), started on a free loopback port with its storage in a
//! temporary directory, plain HTTP or TLS, and killed when dropped. A registry that
//! does not start fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::root;

/// The registry binary (fetched on first use).
fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(root().join("scripts/test-registry.sh")).output().expect("run scripts/test-registry.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/test-registry.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(stdout.lines().last().expect("a path on the last line").trim())
    })
}

/// sigstore's cosign (built once from the Go module proxy by `scripts/test-cosign.sh`).
pub fn cosign() -> Command {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let out = Command::new(root().join("scripts/test-cosign.sh")).output().expect("run scripts/test-cosign.sh");
        assert!(out.status.success(), "scripts/test-cosign.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().expect("a path on the last line").trim())
    });
    let mut cmd = Command::new(bin);
    // Keys without a password; no transparency log or Fulcio (offline, key-based).
    cmd.env("COSIGN_PASSWORD", "").env("COSIGN_YES", "true");
    cmd
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry speaking plain HTTP, or TLS with this certificate and key.
    pub fn start(tls: Option<(&Path, &Path)>) -> Registry {
        Registry::start_with(tls, None)
    }

    /// [`Registry::start`], with htpasswd basic auth when given a file (bcrypt lines).
    pub fn start_with(tls: Option<(&Path, &Path)>, htpasswd: Option<&Path>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let tls = tls
            .map(|(c, k)| format!("  tls:\n    certificate: {}\n    key: {}\n", c.display(), k.display()))
            .unwrap_or_default();
        let auth = htpasswd
            .map(|p| format!("auth:\n  htpasswd:\n    realm: palisade-test\n    path: {}\n", p.display()))
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}{auth}",
            dir.path().join("data").display()
        );
        let file = dir.path().join("config.yml");
        std::fs::write(&file, config).unwrap();
        let child = launch(dir.path());
        wait_up(&addr, dir.path());
        Registry { child, addr, dir }
    }

    /// Starts it again (after [`Registry::stop`]) on the same address and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.child = launch(self.dir.path());
        wait_up(&self.addr, self.dir.path());
    }

    /// Stops the registry (and waits for it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    Command::new(binary())
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start docker-registry")
}

fn wait_up(addr: &str, dir: &Path) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(30), "docker-registry did not start on {addr}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pushes a minimal image (an empty config and one layer of `content`) to
/// `addr/repo:tag` over plain HTTP; returns its manifest digest.
pub fn push_image(addr: &str, repo: &str, tag: &str, content: &[u8]) -> String {
    push_image_with(&Access::default(), addr, repo, tag, content)
}

/// How the helpers reach a registry: plain HTTP by default; HTTPS trusting `ca` (PEM)
/// when given, with basic auth when given.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub ca: Option<Vec<u8>>,
    pub basic: Option<(String, String)>,
}

/// [`push_image`] through `access`.
pub fn push_image_with(access: &Access, addr: &str, repo: &str, tag: &str, content: &[u8]) -> String {
    use oci_client::client::{Config, ImageLayer};
    let reference = oci_client::Reference::with_tag(addr.into(), repo.into(), tag.into());
    let layers = [ImageLayer::oci_v1_gzip(content.to_vec(), None)];
    let config = Config::oci_v1(b"{}".to_vec(), None);
    push(access, &reference, &layers, config)
}

/// Signs `addr/repo@digest` the way `cosign sign --key` does: a simple-signing payload
/// naming the digest, in a layer of the tag `sha256-<hex>.sig`, with the base64 DER
/// ECDSA P-256 signature as the layer's `dev.cosignproject.cosign/signature` annotation.
/// `payload_digest` lets a test sign a payload that names another digest.
pub fn cosign_sign(addr: &str, repo: &str, digest: &str, payload_digest: &str, key: &p256::ecdsa::SigningKey) {
    cosign_sign_with(&Access::default(), addr, repo, digest, payload_digest, key)
}

/// [`cosign_sign`] through `access`.
pub fn cosign_sign_with(
    access: &Access,
    addr: &str,
    repo: &str,
    digest: &str,
    payload_digest: &str,
    key: &p256::ecdsa::SigningKey,
) {
    use oci_client::client::{Config, ImageLayer};
    use p256::ecdsa::signature::Signer;
    let payload = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": format!("{addr}/{repo}")},
            "image": {"docker-manifest-digest": payload_digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string();
    let signature: p256::ecdsa::Signature = key.sign(payload.as_bytes());
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, signature.to_der().as_bytes());
    let annotations = std::collections::BTreeMap::from([("dev.cosignproject.cosign/signature".to_string(), b64)]);
    let layer = ImageLayer::new(
        payload.into_bytes(),
        "application/vnd.dev.cosign.simplesigning.v1+json".into(),
        Some(annotations),
    );
    let tag = format!("{}.sig", digest.replace(':', "-"));
    let reference = oci_client::Reference::with_tag(addr.into(), repo.into(), tag);
    push(access, &reference, &[layer], Config::oci_v1(b"{}".to_vec(), None));
}

/// A cosign-style key pair from a seed: the signing key, and the public key's PEM.
pub fn cosign_key(seed: u8) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let key = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    (key, pem)
}

fn push(
    access: &Access,
    reference: &oci_client::Reference,
    layers: &[oci_client::client::ImageLayer],
    config: oci_client::client::Config,
) -> String {
    use oci_client::client::{Certificate, CertificateEncoding, ClientProtocol};
    use oci_client::secrets::RegistryAuth;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: if access.ca.is_some() { ClientProtocol::Https } else { ClientProtocol::Http },
        extra_root_certificates: access
            .ca
            .iter()
            .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
            .collect(),
        ..Default::default()
    });
    let auth = match &access.basic {
        Some((user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
        None => RegistryAuth::Anonymous,
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        client.push(reference, layers, config, &auth, None).await.unwrap();
        client.fetch_manifest_digest(reference, &auth).await.unwrap()
    })
}
