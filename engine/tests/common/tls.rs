//! The webhook's test client: a throwaway CA that issues `localhost` certificates,
//! and HTTPS connections speaking HTTP/1.1 or HTTP/2 (negotiated by ALPN, as
//! kube-apiserver does). Included by `engine/tests/server.rs` and the binary's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

/// Polls `GET /readyz` on `addr` until it answers 200; panics after `limit`.
pub async fn wait_ready(client: &Arc<rustls::ClientConfig>, addr: std::net::SocketAddr, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(mut c) = connect(client, addr).await
            && c.request("GET", "/readyz", vec![]).await.0 == 200
        {
            return;
        }
        assert!(start.elapsed() < limit, "server at {addr} did not become ready within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A throwaway CA that issues `localhost` certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "palisade test CA");
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// The CA certificate, PEM (a webhook configuration's `caBundle`, base64-encoded).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes a fresh certificate and key for localhost and 127.0.0.1; returns the certificate DER.
    pub fn issue(&self, cert: &Path, key: &Path, cn: &str) -> Vec<u8> {
        let k = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let c = params.signed_by(&k, &self.issuer).unwrap();
        // Replace atomically, as the kubelet does for Secret volumes.
        write_atomic(key, k.serialize_pem().as_bytes());
        write_atomic(cert, c.pem().as_bytes());
        c.der().to_vec()
    }

    /// A client that trusts this CA and offers HTTP/1.1 only.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        self.client_with_alpn(&[b"http/1.1"])
    }

    /// A client that trusts this CA and offers HTTP/2 only.
    pub fn client_h2(&self) -> Arc<rustls::ClientConfig> {
        self.client_with_alpn(&[b"h2"])
    }

    fn client_with_alpn(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Full handshakes only, so that each connection shows the certificate served now.
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One HTTPS connection (HTTP/1.1 keep-alive, or HTTP/2 when the client offers only
/// `h2`) and the certificate the server showed.
pub struct Conn {
    sender: Sender,
    pub peer: Vec<u8>,
}

pub async fn connect(client: &Arc<rustls::ClientConfig>, addr: std::net::SocketAddr) -> std::io::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(client.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c: &CertificateDer| c.to_vec())
        .unwrap_or_default();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let sender = if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Sender::Http2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Sender::Http1(sender)
    };
    Ok(Conn { sender, peer })
}

impl Conn {
    /// Whether the connection speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        matches!(self.sender, Sender::Http2(_))
    }

    /// Sends one request; a transport error (reset stream, closed connection) is `Err`.
    pub async fn try_request(&mut self, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, String), String> {
        self.try_request_with_headers(method, path, &[], body).await
    }

    /// [`Conn::try_request`] with extra header fields.
    pub async fn try_request_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        let resp = match &mut self.sender {
            Sender::Http1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                let (mut parts, body) = req.into_parts();
                parts.uri = path.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
                parts.headers.insert("host", "localhost".parse().map_err(|_| "host header")?);
                s.send_request(hyper::Request::from_parts(parts, body)).await
            }
            Sender::Http2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    pub async fn request(&mut self, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
        self.try_request(method, path, body).await.unwrap()
    }

    pub async fn review(&mut self, review: &Value) -> Value {
        let (status, body) = self.request("POST", "/validate", review.to_string().into_bytes()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// An AdmissionReview (v1) creating Pod `shop/web` with one container running `image`.
pub fn review(uid: &str, image: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "oidc:alice@example.com", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": [{"name": "web", "image": image, "resources": {"limits": {"memory": "64Mi"}}}]}},
        "oldObject": null, "dryRun": false
    }})
}

/// The sum of the samples in `metrics` (Prometheus text) whose `name{labels}` starts
/// with `prefix` (a whole sample, or a name with its first labels), 0 when none.
pub fn metric_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}
