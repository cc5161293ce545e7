//! A server on a loopback port with a throwaway CA, serving a copy of a bundle that
//! the test may edit (hot reload), and the metrics it exposes. Used by `server.rs` and
//! `chaos.rs` (included with `#[path]`, next to `tls.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::server::{EngineLoader, Server, ServerConfig};
use palisade::{Bundle, Engine, Mode};

use super::common;
use super::tls::{Ca, Conn, connect};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

pub fn loader_for(dir: PathBuf, rego_timeout: Duration) -> EngineLoader {
    Arc::new(move || {
        Engine::builder().bundle(Bundle::from_dir(&dir)?).mode(Mode::Admission).rego_timeout(rego_timeout).build()
    })
}

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub ca: Ca,
    pub client: Arc<rustls::ClientConfig>,
    pub server: Server,
}

impl Fixture {
    pub async fn start(bundle: &str, tweak: impl FnOnce(&mut ServerConfig, &Path)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let ca = Ca::new();
        std::fs::create_dir_all(root.join("tls")).unwrap();
        ca.issue(&root.join("tls/tls.crt"), &root.join("tls/tls.key"), "serving-1");
        let bundle_dir = root.join("bundle");
        common::copy_dir(&Path::new(MANIFEST).join(bundle), &bundle_dir);
        let mut config =
            ServerConfig::new("127.0.0.1:0".parse().unwrap(), root.join("tls/tls.crt"), root.join("tls/tls.key"));
        config.reload_debounce = Duration::from_millis(150);
        tweak(&mut config, &root);
        let server = Server::start(config, loader_for(bundle_dir, Duration::from_secs(1))).await.unwrap();
        let client = ca.client();
        let f = Fixture { _dir: dir, root, ca, client, server };
        f.wait_ready().await;
        f
    }

    pub async fn conn(&self) -> Conn {
        connect(&self.client, self.server.local_addr()).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.conn().await.request("GET", path, Vec::new()).await
    }

    pub async fn wait_ready(&self) {
        let start = Instant::now();
        while self.get("/readyz").await.0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(30), "server never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for(&self, path: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let (_, body) = self.get(path).await;
            if body.contains(needle) {
                return body;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{path} never showed {needle:?}; last:\n{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of the `/metrics` samples whose `name{labels}` starts with `prefix` (a
    /// whole sample, or a name with its first labels to add up the rest), 0 when none.
    pub async fn metric(&self, prefix: &str) -> f64 {
        super::tls::metric_sum(&self.get("/metrics").await.1, prefix)
    }
}
