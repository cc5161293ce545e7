//! `palisade serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use palisade::FailureMode;
use palisade::server::{ConnectionLimits, DecisionLogConfig, LiveConfig, ServerConfig, run_until_signal};

use crate::Outcome;
use crate::bundles::BundleArgs;
use crate::cluster::{ClusterArgs, ReportArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    bundles: BundleArgs,
    /// Address to listen on (HTTPS).
    #[arg(long, default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// PEM certificate chain (re-read when it changes).
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf,
    /// PEM private key (re-read when it changes).
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf,
    /// Hash-chained decision log file, or `off`.
    #[arg(long, value_name = "FILE|off", default_value = "off")]
    decision_log: String,
    /// Rotate the decision log at this size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100 * 1024 * 1024)]
    decision_log_max_size: u64,
    /// Rotated decision log files kept.
    #[arg(long, value_name = "N", default_value_t = 10)]
    decision_log_keep: usize,
    /// Deadline of one admission evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    evaluation_deadline_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 3 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Answer when a request cannot be evaluated in time: deny (`fail`) or allow (`ignore`).
    #[arg(long, value_enum, default_value_t = Mode::Fail)]
    failure_mode: Mode,
    /// Objects the server keeps as its inventory (data.inventory and Namespace labels
    /// at admission): a cluster snapshot, `kubectl get -o yaml` output; re-read on reload.
    /// Without it, referential policies are skipped at admission and namespace
    /// selectors see no Namespace.
    #[arg(long, value_name = "PATH", conflicts_with = "cluster")]
    inventory: Vec<String>,
    /// Keep a live inventory of the cluster (watches of Namespaces and the kinds the
    /// referential policies name) for referential policies and namespace selectors;
    /// /readyz answers 503 until it has synced. On by default when running in a
    /// cluster (KUBERNETES_SERVICE_HOST set) and no --inventory is given.
    #[arg(long, conflicts_with = "no_cluster")]
    cluster: bool,
    /// No live inventory, even in a cluster.
    #[arg(long)]
    no_cluster: bool,
    #[command(flatten)]
    connection: ClusterArgs,
    /// Check the tags of `-b oci://` bundles this often (`60s`, `5m`) and reload when one
    /// names a new digest; a failed pull or load keeps the serving set.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub bundle_poll: Option<Duration>,
    /// With --cluster: report not ready once the inventory has been stale (watches
    /// failing) this long. Default: stay ready and serve the last synced state.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    inventory_max_age: Option<Duration>,
    /// With --cluster: audit the cluster this often (e.g. `10m`, `1h`) and write the
    /// aggregated reports, like `palisade audit --write-reports`.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    audit_interval: Option<Duration>,
    #[command(flatten)]
    reports: ReportArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
}

/// Limits on slow or abusive clients (see palisade::server::ConnectionLimits).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Time a client has to complete the TLS handshake.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10s")]
    tls_handshake_timeout: Duration,
    /// Time an HTTP/1.1 client has to send a request's headers (keep-alive connections
    /// idle this long are closed too).
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
    header_read_timeout: Duration,
    /// Largest request header block, in bytes (HTTP/1.1 and HTTP/2).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Most header fields in an HTTP/1.1 request.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_headers: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, value_name = "N", default_value_t = 100)]
    http2_max_streams: u32,
    /// Time a client has to send a request's body once its headers arrived (HTTP/1.1
    /// and HTTP/2); past it the request gets 408.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "10s")]
    body_timeout: Duration,
}

impl LimitArgs {
    fn apply(&self, limits: &mut ConnectionLimits) {
        limits.max_connections = self.max_connections;
        limits.handshake_timeout = self.tls_handshake_timeout;
        limits.header_read_timeout = self.header_read_timeout;
        limits.max_header_bytes = self.max_header_bytes;
        limits.http2_max_streams = self.http2_max_streams;
        limits.max_headers = self.max_headers;
        limits.body_timeout = self.body_timeout;
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Fail,
    Ignore,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

pub fn run(args: Args) -> Result<Outcome> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // stderr may be a file on a full disk: the subscriber must not report that with
    // eprint! (which panics when stderr fails, killing the request's task).
    let subscriber =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    let _ = match args.log_format {
        LogFormat::Json => subscriber.json().flatten_event(true).try_init(),
        LogFormat::Text => subscriber.try_init(),
    };
    let mut config = ServerConfig::new(args.addr, args.tls_cert.clone(), args.tls_key.clone());
    config.body_limit = args.max_body_bytes;
    args.limits.apply(&mut config.limits);
    config.evaluation_deadline = Duration::from_millis(args.evaluation_deadline_ms);
    config.failure_mode = match args.failure_mode {
        Mode::Fail => FailureMode::Fail,
        Mode::Ignore => FailureMode::Ignore,
    };
    config.decision_log = (args.decision_log != "off").then(|| DecisionLogConfig {
        path: PathBuf::from(&args.decision_log),
        max_size: args.decision_log_max_size,
        keep: args.decision_log_keep,
    });
    if config.decision_log.is_none() {
        tracing::warn!("the decision log is off (--decision-log FILE turns it on)");
    }
    config.watch = args.bundles.watch_paths();
    config.watch.extend(args.inventory.iter().map(PathBuf::from));
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && args.inventory.is_empty();
    if args.cluster || (in_cluster && !args.no_cluster) {
        let mut live = LiveConfig::new(args.connection.options());
        live.max_age = args.inventory_max_age;
        live.audit_interval = args.audit_interval;
        live.report_flavor = args.reports.flavor();
        live.report_cap = args.reports.report_results_cap;
        live.page_size = args.connection.page_size;
        config.live = Some(live);
    } else if args.audit_interval.is_some() {
        anyhow::bail!("--audit-interval needs the live inventory (--cluster)");
    }
    if let Some(every) = args.bundle_poll {
        let sources = args.bundles.sources();
        if !sources.bundles.iter().any(|b| b.starts_with("oci://")) {
            anyhow::bail!("--bundle-poll needs a registry bundle (-b oci://REF)");
        }
        let fingerprint = std::sync::Arc::new(move || sources.registry_digests().map(|d| d.join(" ")));
        config.poll = Some(palisade::server::BundlePoll::new(every, fingerprint));
    }
    let loader = palisade::server::loader(args.bundles.sources(), args.bundles.settings()?, args.inventory.clone());
    let runtime = palisade::server::runtime()?;
    runtime.block_on(run_until_signal(config, loader))?;
    Ok(Outcome::Ok)
}

/// `90s`, `10m`, `1h 30m` or ISO 8601 (`PT10M`).
fn duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.parse().map_err(|e| format!("not a duration (like 90s, 10m, 1h): {e}"))?;
    Duration::try_from(d).map_err(|_| "a duration must not be negative".to_string())
}
