//! Prometheus metrics of the webhook (`GET /metrics`, text exposition format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyLabel {
    pub bundle: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyErrorLabel {
    pub bundle: String,
    pub policy: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BundleLabel {
    pub name: String,
    pub version: String,
    pub digest: String,
}

/// Every metric the server exports.
#[derive(Debug)]
// The inventory and audit metrics are only set with feature `cluster`.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<ResultLabel, Counter>,
    pub request_seconds: Histogram,
    pub policy_seconds: Family<PolicyLabel, Histogram, fn() -> Histogram>,
    pub policy_errors: Family<PolicyErrorLabel, Counter>,
    pub policy_skipped: Family<PolicyLabel, Counter>,
    pub reloads: Family<ResultLabel, Counter>,
    pub tls_reloads: Family<ResultLabel, Counter>,
    pub bundle_info: Family<BundleLabel, Gauge>,
    pub revision: Gauge,
    pub exceptions_active: Gauge,
    pub exceptions_expired: Gauge,
    pub decision_log_dropped: Counter,
    pub connections: Gauge,
    pub connections_closed: Family<ReasonLabel, Counter>,
    pub decision_log_write_errors: Counter,
    pub decision_log_unlogged: Gauge,
    pub inventory_age: Gauge<f64, AtomicU64>,
    pub inventory_objects: Gauge,
    pub inventory_synced: Gauge,
    pub audits: Family<ResultLabel, Counter>,
}

fn policy_histogram() -> Histogram {
    // 5 µs … ~80 ms
    Histogram::new(exponential_buckets(0.000_005, 2.0, 15))
}

impl Metrics {
    /// The metrics; those of the live inventory and background audit only `with_live`.
    pub(crate) fn new(with_live: bool) -> Metrics {
        let mut registry = Registry::with_prefix("palisade");
        let requests = Family::<ResultLabel, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests by result (allowed, denied, error)",
            requests.clone(),
        );
        let request_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "admission_request_duration_seconds",
            "Time to answer an admission request",
            request_seconds.clone(),
        );
        let policy_seconds =
            Family::<PolicyLabel, Histogram, fn() -> Histogram>::new_with_constructor(policy_histogram);
        registry.register("policy_evaluation_duration_seconds", "Evaluation time per policy", policy_seconds.clone());
        let policy_errors = Family::<PolicyErrorLabel, Counter>::default();
        registry.register("policy_errors", "Policies that failed to evaluate, by kind", policy_errors.clone());
        let policy_skipped = Family::<PolicyLabel, Counter>::default();
        registry.register(
            "policy_skipped",
            "Policies that matched but were not evaluated (referential policies at admission without an inventory)",
            policy_skipped.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "bundle_reloads",
            "Bundle reloads by outcome (success, failure; poll_failure: a registry tag could not be checked)",
            reloads.clone(),
        );
        let tls_reloads = Family::<ResultLabel, Counter>::default();
        registry.register("tls_reloads", "Certificate reloads by outcome (success, failure)", tls_reloads.clone());
        let bundle_info = Family::<BundleLabel, Gauge>::default();
        registry.register("bundle_info", "Bundles serving requests (value 1)", bundle_info.clone());
        let revision = Gauge::default();
        registry.register(
            "bundle_revision",
            "Revision of the serving bundle set (increments on each successful load)",
            revision.clone(),
        );
        let exceptions_active = Gauge::default();
        registry.register("exceptions_active", "PolicyExceptions loaded and not expired", exceptions_active.clone());
        let exceptions_expired = Gauge::default();
        registry.register(
            "exceptions_expired",
            "PolicyExceptions loaded but expired (they waive nothing)",
            exceptions_expired.clone(),
        );
        let decision_log_dropped = Counter::default();
        registry.register(
            "decision_log_dropped",
            "Decisions not logged because the log could not keep up",
            decision_log_dropped.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Client connections open (TLS handshake included); at --max-connections new ones wait",
            connections.clone(),
        );
        let connections_closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the server closed at a limit, by reason (tls_handshake_timeout, tls_handshake_failed, header_timeout, header_too_large)",
            connections_closed.clone(),
        );
        let decision_log_write_errors = Counter::default();
        registry.register(
            "decision_log_write_errors",
            "Decisions the log file did not take (disk full, file-size limit); a gap entry records them once writing works again",
            decision_log_write_errors.clone(),
        );
        let decision_log_unlogged = Gauge::default();
        registry.register(
            "decision_log_unlogged",
            "Decisions missing from the log and not yet recorded by a gap entry (above 0: the log is failing now)",
            decision_log_unlogged.clone(),
        );
        let inventory_age = Gauge::<f64, AtomicU64>::default();
        let inventory_objects = Gauge::default();
        let inventory_synced = Gauge::default();
        let audits = Family::<ResultLabel, Counter>::default();
        if with_live {
            registry.register(
                "inventory_age_seconds",
                "How long the live inventory may have been missing changes (0 while every watch is healthy)",
                inventory_age.clone(),
            );
            registry.register("inventory_objects", "Objects in the live inventory", inventory_objects.clone());
            registry.register(
                "inventory_synced",
                "1 once every watched kind has completed its initial list",
                inventory_synced.clone(),
            );
            registry.register("audits", "Background audits by outcome (success, failure)", audits.clone());
        }
        Metrics {
            registry,
            inventory_age,
            inventory_objects,
            inventory_synced,
            audits,
            requests,
            request_seconds,
            policy_seconds,
            policy_errors,
            policy_skipped,
            reloads,
            tls_reloads,
            bundle_info,
            revision,
            exceptions_active,
            exceptions_expired,
            decision_log_dropped,
            connections,
            connections_closed,
            decision_log_write_errors,
            decision_log_unlogged,
        }
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub(crate) fn count(family: &Family<ResultLabel, Counter>, result: &str) {
        family.get_or_create(&ResultLabel { result: result.to_string() }).inc();
    }
}
