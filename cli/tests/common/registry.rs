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
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let tls = tls
            .map(|(c, k)| format!("  tls:\n    certificate: {}\n    key: {}\n", c.display(), k.display()))
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}",
            dir.path().join("data").display()
        );
        let file = dir.path().join("config.yml");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(binary())
            .arg("serve")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, addr, dir };
        let start = Instant::now();
        while TcpStream::connect(&registry.addr).is_err() {
            let log = std::fs::read_to_string(registry.dir.path().join("registry.log")).unwrap_or_default();
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not start on {}:\n{log}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Stops the registry (and waits for it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
