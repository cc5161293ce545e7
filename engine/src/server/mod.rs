//! `palisade serve`: the validating admission webhook.
//!
//! HTTPS only (rustls, TLS 1.2+), `POST /validate` for AdmissionReview v1 and v1beta1, `GET
//! /healthz`, `/readyz` and `/metrics`. Bundles are loaded and compiled off the
//! request path and swapped atomically; requests in flight finish on the set they
//! started with, and a set that fails to load is refused while the last good one
//! keeps serving. The certificate and key are re-read when their files change.
//! Every decision goes to the hash-chained decision log through a bounded queue
//! that never holds a request past its deadline; a log that cannot be written never
//! stops admission, and what it missed is recorded as a gap (`log_writer`). Slow or
//! abusive clients meet [`ConnectionLimits`] (`conn`). SIGTERM stops accepting and
//! drains the connections in flight.

mod conn;
mod handlers;
#[cfg(feature = "cluster")]
mod live;
mod log_writer;
mod metrics;
mod reload;
mod tls;

pub use conn::ConnectionLimits;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_rustls::TlsAcceptor;

use crate::decision::FailureMode;
use crate::decision_log::Record;
use crate::engine::Engine;
use crate::error::{Error, Result};
#[cfg(feature = "cluster")]
pub use live::LiveConfig;

/// Loads (or reloads) the engine the server evaluates with.
pub type EngineLoader = Arc<dyn Fn() -> Result<Engine> + Send + Sync>;

/// The loader `palisade serve` uses: the bundles of `sources` compiled for admission
/// with `settings`, seeing the objects of `inventory` (files, re-read at every load)
/// when any are given.
pub fn loader(
    sources: crate::sources::Sources,
    settings: crate::sources::EngineSettings,
    inventory: Vec<String>,
) -> EngineLoader {
    Arc::new(move || {
        let engine = sources.engine(&settings, crate::Mode::Admission)?;
        if inventory.is_empty() {
            return Ok(engine);
        }
        engine.with_inventory(Arc::new(crate::sources::inventory_from_paths(&inventory)?))
    })
}

/// What a [`BundlePoll`] asks: a fingerprint of what a load would load now.
pub type Fingerprint = Arc<dyn Fn() -> Result<String> + Send + Sync>;

/// Reload when the fingerprint changes (checked every `every`); a failed check or
/// load keeps the serving set.
#[derive(Clone)]
#[non_exhaustive]
pub struct BundlePoll {
    /// Time between checks.
    pub every: Duration,
    /// For registry bundles: the digests the tags name now.
    pub fingerprint: Fingerprint,
}

impl BundlePoll {
    /// Checks `fingerprint` every `every`.
    pub fn new(every: Duration, fingerprint: Fingerprint) -> BundlePoll {
        BundlePoll { every, fingerprint }
    }
}

impl std::fmt::Debug for BundlePoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundlePoll").field("every", &self.every).finish_non_exhaustive()
    }
}

/// The decision log's file and rotation.
#[derive(Debug, Clone)]
pub struct DecisionLogConfig {
    /// The file to append to.
    pub path: PathBuf,
    /// Rotate when the file reaches this size (bytes).
    pub max_size: u64,
    /// Rotated files kept (`FILE.1` … `FILE.N`).
    pub keep: usize,
}

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// Largest request body accepted (bytes).
    pub body_limit: usize,
    /// Deadline of one evaluation; kept below the API server's webhook timeout.
    pub evaluation_deadline: Duration,
    /// What to answer when a request cannot be evaluated in time (or at all).
    pub failure_mode: FailureMode,
    /// The decision log; `None` turns it off.
    pub decision_log: Option<DecisionLogConfig>,
    /// Bundle directories watched for hot reload (empty: no reload).
    pub watch: Vec<PathBuf>,
    /// Quiet time before a burst of file events triggers a reload.
    pub reload_debounce: Duration,
    /// A periodic check for new bundles that file watches cannot see (registry tags).
    pub poll: Option<BundlePoll>,
    /// Longest wait for in-flight connections at shutdown.
    pub drain_timeout: Duration,
    /// What one client may hold on to (connections, handshake and header time, header
    /// size, HTTP/2 streams).
    pub limits: ConnectionLimits,
    /// A live inventory of the cluster for referential policies, and the background
    /// audit (`None`: inventory from the loader only).
    #[cfg(feature = "cluster")]
    pub live: Option<LiveConfig>,
}

impl ServerConfig {
    /// Defaults for everything but the address and the key pair.
    pub fn new(addr: SocketAddr, tls_cert: PathBuf, tls_key: PathBuf) -> ServerConfig {
        ServerConfig {
            addr,
            tls_cert,
            tls_key,
            body_limit: 3 * 1024 * 1024,
            evaluation_deadline: Duration::from_secs(2),
            failure_mode: FailureMode::Fail,
            decision_log: None,
            watch: Vec::new(),
            reload_debounce: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(30),
            limits: ConnectionLimits::default(),
            poll: None,
            #[cfg(feature = "cluster")]
            live: None,
        }
    }
}

/// The bundle set serving requests.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub engine: Engine,
    pub revision: u64,
}

/// State shared by the handlers and the reloaders.
pub(crate) struct State {
    pub config: ServerConfig,
    pub engine: ArcSwapOption<Loaded>,
    pub metrics: metrics::Metrics,
    /// The decision log queue; emptied at shutdown so the writer drains and stops.
    pub log: ArcSwapOption<mpsc::Sender<Record>>,
    pub last_reload_error: Mutex<Option<String>>,
    pub loader: EngineLoader,
    #[cfg(feature = "cluster")]
    pub live: Option<Arc<live::Live>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    log_thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<State>,
    watchers: Option<reload::Watchers>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds the listener, loads the key pair, and starts serving. Bundles load in
    /// the background: `/readyz` answers 503 until they have.
    pub async fn start(config: ServerConfig, loader: EngineLoader) -> Result<Server> {
        let certs = tls::CertStore::load(&config.tls_cert, &config.tls_key)?;
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(certs.clone())?));
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::io(config.addr.to_string(), "cannot listen on", e))?;
        let local_addr =
            listener.local_addr().map_err(|e| Error::io(config.addr.to_string(), "cannot listen on", e))?;

        #[cfg(feature = "cluster")]
        let live = match &config.live {
            Some(c) => Some(Arc::new(live::Live::start(c.clone()).await?)),
            None => None,
        };
        #[cfg(feature = "cluster")]
        let with_live = live.is_some();
        #[cfg(not(feature = "cluster"))]
        let with_live = false;
        let metrics = metrics::Metrics::new(with_live);
        let (log, log_thread) = match &config.decision_log {
            Some(c) => {
                let (tx, handle) = log_writer::start(c, &metrics)?;
                (Some(Arc::new(tx)), Some(handle))
            }
            None => (None, None),
        };
        let state = Arc::new(State {
            config: config.clone(),
            engine: ArcSwapOption::empty(),
            metrics,
            log: ArcSwapOption::new(log),
            last_reload_error: Mutex::new(None),
            loader,
            #[cfg(feature = "cluster")]
            live,
        });
        // First load off the request path; later ones on file changes.
        {
            let state = state.clone();
            std::thread::Builder::new()
                .name("palisade-initial-load".into())
                .spawn(move || reload::reload(&state))
                .map_err(|e| Error::io("bundles", "cannot start the loader thread", e))?;
        }
        let watchers = reload::watch(&state, certs)?;
        #[cfg(feature = "cluster")]
        let mut background = state.live.as_ref().map(|l| live::spawn(&state, l)).unwrap_or_default();
        #[cfg(not(feature = "cluster"))]
        let mut background = Vec::new();
        background.extend(state.config.poll.clone().map(|p| reload::spawn_poll(&state, p)));

        let shutdown = Arc::new(Notify::new());
        let router = handlers::router(state.clone());
        let counters = (state.metrics.connections.clone(), state.metrics.connections_closed.clone());
        let limits = config.limits.clone();
        let task = tokio::spawn(conn::accept_loop(
            listener,
            acceptor,
            router,
            limits,
            counters,
            shutdown.clone(),
            config.drain_timeout,
        ));
        tracing::info!(addr = %local_addr, "palisade webhook listening (HTTPS)");
        Ok(Server { local_addr, shutdown, task, log_thread, state, watchers: Some(watchers), background })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and drains the ones in flight.
    pub fn shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Waits until the server has stopped and the decision log is flushed.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
        self.watchers = None;
        self.background.iter().for_each(|t| t.abort());
        // Closing the queue lets the writer drain what is queued and stop.
        self.state.log.store(None);
        if let Some(t) = self.log_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The tokio runtime to serve on (`palisade serve` uses it; so do the chaos tests).
///
/// Evaluations run on tokio's blocking pool, one thread per core (at least 2): they
/// are CPU-bound, so more threads add no throughput, only memory (each keeps its own
/// allocator heap) and queueing on the cores. Under benches/load (16 connections, 2
/// cores) tokio's default pool grew to 48 threads and 131 MB RSS; with 2 threads RSS
/// was 64 MB and throughput 14 % higher (benches/README.md). Every evaluation is
/// bounded by the policies' own limits, and a request that waits for a thread still
/// has its deadline.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from).max(2);
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores)
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", "cannot start the async runtime", e))
}

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run_until_signal(config: ServerConfig, loader: EngineLoader) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Past a file-size limit (RLIMIT_FSIZE) a write raises SIGXFSZ, which would kill the
    // process; handled, the write fails with EFBIG and the decision log records a gap.
    let _xfsz = signal(SignalKind::from_raw(libc::SIGXFSZ))
        .map_err(|e| Error::io("signals", "cannot install the SIGXFSZ handler", e))?;
    let server = Server::start(config, loader).await?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("signals", "cannot install the SIGTERM handler", e))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    server.shutdown();
    server.wait().await;
    Ok(())
}
