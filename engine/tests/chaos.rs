//! The webhook under load while its parts are pulled away: bundle reloads (good,
//! broken, good), certificate rotations, a plugin that starts trapping and looping, and
//! slow or abusive clients. Every request of the steady load (HTTP/1.1 and HTTP/2
//! clients) must be answered with a well-formed decision, and every fault must show in
//! the metrics. Bounded: a fixed number of faults, no wall-clock assertions.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/server.rs"]
mod fixture;
#[path = "common/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fixture::Fixture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tls::{connect, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the load saw: answers by kind, and every failure in full.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    failures: Vec<String>,
    messages: Vec<String>,
}

/// Clients sending `review(uid, image)` back to back until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Tally {
    /// Prints one line for RELIABILITY.md (`cargo test --test chaos -- --nocapture`),
    /// then fails the test on any failed request.
    fn report(&self, what: &str) {
        eprintln!("chaos: {what}: {} requests answered, {} failed", self.answered, self.failures.len());
        let first = &self.failures[..5.min(self.failures.len())];
        assert!(self.failures.is_empty(), "{what}: {} failed: {first:?}", self.failures.len());
    }
}

impl Load {
    /// `clients` connections (alternately HTTP/1.1 and HTTP/2); with `reconnect`, one
    /// more that opens a new connection (a full TLS handshake) for every request.
    fn start(f: &Fixture, clients: usize, reconnect: bool, image: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = f.server.local_addr();
        let mut tasks = Vec::new();
        for i in 0..clients + usize::from(reconnect) {
            let client = if i % 2 == 0 { f.client.clone() } else { f.ca.client_h2() };
            let fresh = i == clients;
            tasks.push(tokio::spawn(drive(client, addr, stop.clone(), fresh, image, i)));
        }
        Load { stop, tasks }
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Tally::default();
        for t in self.tasks {
            let t = t.await.unwrap();
            total.answered += t.answered;
            total.failures.extend(t.failures);
            total.messages.extend(t.messages);
        }
        total
    }
}

async fn drive(
    client: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    fresh: bool,
    image: &str,
    id: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        if conn.is_none() || fresh {
            match connect(&client, addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tally.failures.push(format!("client {id}: connect: {e}"));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let body = review(&format!("load-{id}-{n}"), image).to_string().into_bytes();
        match c.try_request("POST", "/validate", body).await {
            Ok((200, body)) => match serde_json::from_str::<Value>(&body) {
                Ok(v) if v["response"]["uid"] == format!("load-{id}-{n}") => {
                    tally.answered += 1;
                    let message = v["response"]["status"]["message"].as_str().unwrap_or("allowed");
                    tally.messages.push(format!("{}: {message}", v["response"]["allowed"]));
                }
                _ => tally.failures.push(format!("client {id}: not an answer to request {n}: {body}")),
            },
            Ok((status, body)) => tally.failures.push(format!("client {id}: HTTP {status}: {body}")),
            Err(e) => {
                tally.failures.push(format!("client {id}: request {n}: {e}"));
                conn = None;
            }
        }
    }
    tally
}

/// Waits until `sample` of /metrics reaches `at_least`.
async fn wait_metric(f: &Fixture, sample: &str, at_least: f64) {
    for _ in 0..600 {
        if f.metric(sample).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{sample} never reached {at_least}; now {}", f.metric(sample).await);
}

/// Replaces `path` (inside the watched bundle) in one step: written beside the bundle,
/// then renamed in, so a reload never sees it half-written.
fn replace(f: &Fixture, path: &Path, content: &str) {
    let staged = f.root.join("staged");
    std::fs::write(&staged, content).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// Runs a test on the runtime `palisade serve` uses (one blocking thread per core), so
/// that what these tests show holds for the shipped configuration.
fn on_serve_runtime(test: impl std::future::Future<Output = ()>) {
    palisade::server::runtime().unwrap().block_on(test)
}

const SUCCESS: &str = "palisade_bundle_reloads_total{result=\"success\"}";
const FAILURE: &str = "palisade_bundle_reloads_total{result=\"failure\"}";

#[test]
fn a_hundred_reloads_good_and_broken_under_load_fail_no_request() {
    on_serve_runtime(async {
        let f = Fixture::start("tests/bundles/basic", |c, root| {
            c.watch = vec![root.join("bundle")];
            c.reload_debounce = Duration::from_millis(20);
        })
        .await;
        let rule = f.root.join("bundle/rules/no_latest_tag.rego");
        let good = std::fs::read_to_string(&rule).unwrap();
        let load = Load::start(&f, 4, false, "nginx:latest");
        let (mut successes, mut failures) = (f.metric(SUCCESS).await, f.metric(FAILURE).await);
        for i in 0..50 {
            replace(&f, &rule, "package broken\ndeny contains x if {");
            failures += 1.0;
            wait_metric(&f, FAILURE, failures).await;
            replace(&f, &rule, &format!("{good}\n# revision {i}\n"));
            successes += 1.0;
            wait_metric(&f, SUCCESS, successes).await;
        }
        let tally = load.finish().await;
        tally.report("100 reloads");
        assert!(tally.answered > 100, "{tally:?}");
        // Every answer came from a good set: the broken one never served.
        assert!(
            tally.messages.iter().all(|m| m.starts_with("false: ") && m.contains("latest")),
            "{:?}",
            tally.messages
        );
        assert!(f.metric(FAILURE).await >= failures);
        f.wait_for("/readyz", "ready: revision").await;
        f.server.shutdown();
        f.server.wait().await;
    });
}

#[test]
fn twenty_certificate_rotations_under_load_fail_no_request() {
    on_serve_runtime(async {
        let f = Fixture::start("tests/bundles/basic", |_, _| {}).await;
        let load = Load::start(&f, 2, true, "nginx:1.27");
        let (cert, key) = (f.root.join("tls/tls.crt"), f.root.join("tls/tls.key"));
        let mut seen = Vec::new();
        for i in 0..20 {
            let der = f.ca.issue(&cert, &key, &format!("rotation-{i}"));
            // Until a new connection is shown the new certificate.
            for attempt in 0.. {
                assert!(attempt < 400, "rotation {i} was never served");
                if f.conn().await.peer == der {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            seen.push(der);
        }
        let tally = load.finish().await;
        tally.report("20 certificate rotations");
        assert!(tally.answered > 20, "{tally:?}");
        assert!(f.metric("palisade_tls_reloads_total{result=\"success\"}").await >= 20.0);
        f.server.shutdown();
        f.server.wait().await;
    });
}

/// The manifest of a bundle with one policy run by the hostile test plugin in `mode`.
fn hostile_manifest(mode: &str) -> String {
    let sha = hex::encode(Sha256::digest(common::plugin("hostile.wasm")));
    format!(
        "[bundle]\nname = \"hostile\"\nversion = \"1.0.0\"\nengine = \"^0.1\"\n\n[[policy]]\nid = \"third-party\"\n\
         title = \"a third-party plugin\"\nwasm = \"plugins/hostile.wasm\"\nsha256 = \"{sha}\"\ntimeout_ms = 100\n\
         match = {{ kinds = [\"Pod\"] }}\nparameters = {{ mode = \"{mode}\" }}\n"
    )
}

#[test]
fn a_plugin_that_starts_trapping_then_looping_is_contained() {
    on_serve_runtime(async {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("plugins")).unwrap();
        std::fs::write(source.path().join("plugins/hostile.wasm"), common::plugin("hostile.wasm")).unwrap();
        std::fs::write(source.path().join("bundle.toml"), hostile_manifest("ok")).unwrap();
        let f = Fixture::start(source.path().to_str().unwrap(), |c, root| {
            c.watch = vec![root.join("bundle")];
            c.reload_debounce = Duration::from_millis(20);
        })
        .await;
        let manifest = f.root.join("bundle/bundle.toml");
        let errors = "palisade_policy_errors_total{bundle=\"hostile\",policy=\"third-party\"";
        let load = Load::start(&f, 2, false, "nginx:1.27");
        let mut reloads = f.metric(SUCCESS).await;
        for mode in ["trap", "loop", "ok"] {
            let before = f.metric(errors).await;
            replace(&f, &manifest, &hostile_manifest(mode));
            reloads += 1.0;
            wait_metric(&f, SUCCESS, reloads).await;
            if mode != "ok" {
                // The load meets the misbehaving plugin a few times.
                wait_metric(&f, errors, before + 3.0).await;
            }
        }
        // Behaving again, it admits again.
        for attempt in 0.. {
            let r = f.conn().await.review(&review("after", "nginx:1.27")).await;
            if r["response"]["allowed"] == true {
                break;
            }
            assert!(attempt < 200, "never admitted again: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tally = load.finish().await;
        tally.report("trapping and looping plugin");
        // Failure mode `fail`: while the plugin misbehaved its requests were denied, naming it.
        let denied: Vec<_> = tally.messages.iter().filter(|m| m.starts_with("false")).collect();
        assert!(denied.iter().any(|m| m.contains("third-party") && m.contains("trap")), "{denied:?}");
        assert!(denied.iter().any(|m| m.contains("third-party") && m.contains("deadline")), "{denied:?}");
        f.server.shutdown();
        f.server.wait().await;
    });
}

/// Opens a TLS connection and starts an HTTP/1.1 request whose headers never end.
async fn slowloris(f: &Fixture) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(f.server.local_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(f.client.clone()).connect(name, tcp).await.unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\n").await.unwrap();
    tls
}

/// A request body that never arrives.
struct Never;

impl hyper::body::Body for Never {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

/// One HTTP/2 connection with `n` streams open whose request bodies never come; abort
/// the tasks to let go.
async fn hold_streams(f: &Fixture, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let tcp = tokio::net::TcpStream::connect(f.server.local_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(f.ca.client_h2()).connect(name, tcp).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(tls);
    let (sender, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    let mut tasks = vec![tokio::spawn(async move {
        let _ = conn.await;
    })];
    for _ in 0..n {
        let mut sender = sender.clone();
        let req = hyper::Request::post("https://localhost/validate").body(Never).unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = sender.send_request(req).await;
        }));
    }
    tasks
}

#[test]
fn slow_and_abusive_clients_do_not_starve_the_others() {
    on_serve_runtime(async {
        let f = Fixture::start("tests/bundles/basic", |c, _| {
            c.limits.header_read_timeout = Duration::from_secs(3);
            c.limits.max_header_bytes = 16 * 1024;
        })
        .await;
        // 100 connections that trickle header lines, one HTTP/2 connection holding its
        // streams open with bodies that never come, and huge header sets on both protocols.
        let mut slow = Vec::new();
        for _ in 0..100 {
            slow.push(slowloris(&f).await);
        }
        // And one that completes the handshake and never sends a byte.
        let tcp = tokio::net::TcpStream::connect(f.server.local_addr()).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        slow.push(tokio_rustls::TlsConnector::from(f.client.clone()).connect(name, tcp).await.unwrap());
        let held = hold_streams(&f, 50).await;
        let load = Load::start(&f, 2, true, "nginx:1.27");
        for round in 0..4 {
            for s in &mut slow {
                let _ = s.write_all(format!("x-slow-{round}: 1\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let huge: Vec<(String, String)> = (0..64).map(|i| (format!("x-huge-{i}"), "v".repeat(1024))).collect();
        let mut answers = Vec::new();
        for client in [f.client.clone(), f.ca.client_h2()] {
            let mut c = connect(&client, f.server.local_addr()).await.unwrap();
            answers.push(c.try_request_with_headers("POST", "/validate", &huge, Vec::new()).await);
        }
        // HTTP/1.1 answers 431 and closes; HTTP/2 refuses the stream (a reset or a 431).
        assert!(matches!(answers[0], Ok((431, _))), "HTTP/1.1, 64 KiB of headers: {:?}", answers[0]);
        assert!(!matches!(answers[1], Ok((200, _))), "HTTP/2, 64 KiB of headers was served: {:?}", answers[1]);
        let tally = load.finish().await;
        tally.report("slow and abusive clients");
        assert!(tally.answered > 10, "{tally:?}");
        // Past the header timeout the server has hung up on every slow connection.
        for mut s in slow {
            let mut buf = [0u8; 256];
            // EOF, a reset, or a 408 before the close: anything but silence.
            let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
            assert!(closed.is_ok(), "a slowloris connection is still open");
        }
        // Each cut-off is counted by its reason (and logged); the silent connection is
        // closed at the same timeout, but as a clean end (hyper reports no error).
        let mut c = connect(&f.client, f.server.local_addr()).await.unwrap();
        let metrics = c.request("GET", "/metrics", vec![]).await.1;
        let count = |reason: &str| -> u64 {
            let prefix = format!("palisade_connections_closed_total{{reason=\"{reason}\"}} ");
            metrics.lines().find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok()).unwrap_or(0)
        };
        assert!(count("header_timeout") >= 100, "{metrics}");
        assert!(count("header_too_large") >= 1, "{metrics}");
        held.iter().for_each(|t| t.abort());
        f.server.shutdown();
        f.server.wait().await;
    });
}
