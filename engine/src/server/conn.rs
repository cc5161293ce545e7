//! Connections: accepting them, the TLS handshake and the HTTP/1.1 and HTTP/2 protocol
//! limits that keep slow or abusive clients (slowloris, idle HTTP/2 streams, huge header
//! sets, connection floods) from starving the API server's requests. Each limit is a
//! field of [`ConnectionLimits`]; a client past one is cut off, not waited for, counted
//! in `palisade_connections_closed_total{reason}` and logged.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::metrics::ReasonLabel;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Limits on what one client may hold on to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time an HTTP/1.1 client has to send a request's headers, counted from when the
    /// connection is ready for the next request (so a keep-alive connection idle this
    /// long is closed too). HTTP/2 streams are bounded by the body timeout instead.
    pub header_read_timeout: Duration,
    /// Largest request header block (HTTP/1.1 read buffer, at least 8192; HTTP/2
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`). A larger one closes the connection (HTTP/1.1)
    /// or resets the stream (HTTP/2).
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1.1 request.
    pub max_headers: usize,
    /// Concurrent HTTP/2 streams per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub http2_max_streams: u32,
    /// Time a request's body has to arrive once its headers did (both protocols);
    /// past it the request is answered 408.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            http2_max_streams: 100,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// Accepts connections until `shutdown`, then drains them for at most `drain`.
pub(super) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    limits: ConnectionLimits,
    (open, closed): (Gauge, Family<ReasonLabel, Counter>),
    shutdown: Arc<Notify>,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let builders = Arc::new(Builders::new(&limits));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = shutdown.notified() => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, builders, open) = (acceptor.clone(), builders.clone(), Open::new(open.clone()));
                let closed = closed.clone();
                let service = TowerToHyperService::new(router.clone());
                let watcher = graceful.watcher();
                let handshake_timeout = limits.handshake_timeout;
                tokio::spawn(async move {
                    let _held = (slot, open);
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => Some(s),
                        Ok(Err(e)) => {
                            closed.get_or_create(&ReasonLabel { reason: "tls_handshake_failed" }).inc();
                            tracing::info!(%peer, "connection closed: TLS handshake failed: {e}");
                            None
                        }
                        Err(_) => {
                            closed.get_or_create(&ReasonLabel { reason: "tls_handshake_timeout" }).inc();
                            tracing::info!(%peer, "connection closed: TLS handshake timed out");
                            None
                        }
                    };
                    if let Some(stream) = stream {
                        // The protocol is the one ALPN chose: no wait for the client's
                        // first bytes to guess it (a client that sends nothing meets
                        // the HTTP/1.1 header timeout).
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let builder = if h2 { &builders.h2 } else { &builders.h1 };
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            match limit_hit(e.as_ref()) {
                                Some(reason) => {
                                    closed.get_or_create(&ReasonLabel { reason }).inc();
                                    tracing::info!(%peer, "connection closed ({reason}): {e}");
                                }
                                None => tracing::debug!(%peer, "connection ended: {e}"),
                            }
                        }
                    }
                });
            }
            _ = shutdown.notified() => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining connections in flight");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Which limit, if any, ended a connection with `error`: the HTTP/1.1 header timeout,
/// or a request head too large (bytes or fields). A client that just went away is none.
fn limit_hit(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<&'static str> {
    let e = error.downcast_ref::<hyper::Error>()?;
    if e.is_timeout() {
        Some("header_timeout")
    } else if e.is_parse_too_large() {
        Some("header_too_large")
    } else {
        None
    }
}

/// One open connection in the `connections` gauge, for as long as it lives.
struct Open(Gauge);

impl Open {
    fn new(gauge: Gauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The HTTP/1.1-only and HTTP/2-only connection builders, with the limits applied.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ConnectionLimits) -> Builders {
        Builders { h1: http_builder(limits).http1_only(), h2: http_builder(limits).http2_only() }
    }
}

fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A peer that stops answering pings is gone: free its streams.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}
