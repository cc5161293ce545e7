//! HTTP routes: `POST /validate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use http_body_util::BodyExt;
use serde_json::Value;

use super::metrics::{Metrics, PolicyErrorLabel, PolicyLabel};
use super::{Loaded, State};
use crate::admission::{Review, failure_review, malformed_review};
use crate::decision::{Decision, FailureMode};
use crate::decision_log::Record;

/// How much of an oversized body is still read (and discarded) before answering
/// 413: the client, over HTTP/1.1 or HTTP/2, can then finish sending and read the
/// answer instead of seeing its connection or stream reset. Past it, the answer is
/// sent at once and the rest refused.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // `validate` reads its body itself, against `body_limit` (see `read_body`).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the response: {e}\n")).into_response(),
    }
}

/// A Kubernetes `Status`: what kube-apiserver's client decodes from a non-2xx answer
/// and quotes in its "failed calling webhook" error.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge(usize),
    Read(String),
    Timeout,
}

/// Reads the body up to `limit` bytes; past it, keeps reading and discarding up to
/// [`DRAIN_LIMIT`] more so that the 413 reaches the client.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit.saturating_add(DRAIN_LIMIT)) {
        return Err(BodyError::TooLarge(n));
    }
    let read = async {
        let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            received = received.saturating_add(data.len());
            if received <= limit {
                buf.extend_from_slice(&data);
            } else if received > limit.saturating_add(DRAIN_LIMIT) {
                return Err(BodyError::TooLarge(received));
            } else {
                buf = Vec::new();
            }
        }
        if received > limit { Err(BodyError::TooLarge(received)) } else { Ok(Bytes::from(buf)) }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(BodyError::Timeout))
}

/// A request that never reached evaluation: counted, logged with what was wrong,
/// and recorded in the decision log.
async fn refuse(state: &State, start: Instant, uid: &str, message: &str) {
    Metrics::count(&state.metrics.requests, "bad_request");
    tracing::warn!(uid, "rejected a malformed admission request: {message}");
    log(state, start, error_record(uid, message)).await;
}

async fn validate(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    let limit = state.config.body_limit;
    let timeout = state.config.limits.body_timeout;
    let bytes = match read_body(&headers, body, limit, timeout).await {
        Ok(b) => b,
        Err(e) => {
            let (code, reason, message) = match e {
                BodyError::TooLarge(n) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!("palisade: the request body ({n} bytes) is larger than the {limit}-byte limit"),
                ),
                BodyError::Read(e) => {
                    (StatusCode::BAD_REQUEST, "BadRequest", format!("palisade: cannot read the request body: {e}"))
                }
                BodyError::Timeout => (
                    StatusCode::REQUEST_TIMEOUT,
                    "Timeout",
                    format!("palisade: the request body did not arrive within {timeout:?}"),
                ),
            };
            refuse(&state, start, "", &message).await;
            return status(code, reason, &message);
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let message =
                format!("palisade: AdmissionReview: invalid JSON at line {} column {}: {e}", e.line(), e.column());
            refuse(&state, start, "", &message).await;
            return status(StatusCode::BAD_REQUEST, "BadRequest", &message);
        }
    };
    // Valid JSON of the wrong shape: answered as an AdmissionReview the API server
    // can match (its version and uid echoed where present), per the failure mode.
    let version = value.get("apiVersion").and_then(Value::as_str).map(str::to_owned);
    let echo_uid = value.pointer("/request/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let review = match Review::from_value(value, false) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("palisade: malformed AdmissionReview: {e}");
            refuse(&state, start, &echo_uid, &message).await;
            let allowed = state.config.failure_mode == FailureMode::Ignore;
            return json(&malformed_review(version.as_deref(), &echo_uid, &message, allowed));
        }
    };
    evaluate(&state, start, review).await
}

/// Evaluates a parsed review within the deadline and answers it.
async fn evaluate(state: &Arc<State>, start: Instant, review: Review) -> Response {
    let uid = review.request.uid.clone();
    let Some(loaded) = state.engine.load_full() else {
        return failed(state, start, &review, "policy bundles are not loaded yet").await;
    };
    let deadline = state.config.evaluation_deadline;
    let engine = loaded.engine.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut review = review;
        // With an inventory, the request's Namespace is known (labels for namespace selectors).
        if let Some(ns) = review.input.namespace().filter(|_| review.input.gvk().kind != "Namespace")
            && let Some(obj) = engine.inventory().and_then(|i| i.namespace(ns))
        {
            review.input = review.input.clone().with_namespace_object(obj.clone());
        }
        let decision = engine.evaluate(&review.input);
        (review, decision)
    });
    let (review, decision) = match tokio::time::timeout(deadline, task).await {
        Ok(Ok(done)) => done,
        Ok(Err(_)) => {
            tracing::error!(uid, "evaluation failed with an internal error");
            return failed_uid(state, start, &uid, "evaluation failed with an internal error").await;
        }
        Err(_) => {
            let message = format!("evaluation exceeded the {} ms deadline", deadline.as_millis());
            return failed_uid(state, start, &uid, &message).await;
        }
    };
    let latency = start.elapsed();
    observe(state, &decision);
    Metrics::count(&state.metrics.requests, if decision.allowed { "allowed" } else { "denied" });
    state.metrics.request_seconds.observe(latency.as_secs_f64());
    let response = review.respond(&decision);
    let record = decision_record(&loaded, &review, &decision, latency);
    if decision.allowed {
        tracing::debug!(
            uid,
            user = record.user,
            operation = record.operation,
            object = record.object,
            result = "allowed",
            latency_us = record.latency_us,
            "admission decision"
        );
    } else {
        tracing::info!(uid, user = record.user, operation = record.operation, object = record.object,
            result = "denied", denied_by = ?record.denied_by, latency_us = record.latency_us, "admission decision");
    }
    log(state, start, record).await;
    json(&response)
}

/// Answers a parsed request that could not be evaluated, per the server's failure mode.
async fn failed(state: &State, start: Instant, review: &Review, message: &str) -> Response {
    Metrics::count(&state.metrics.requests, "error");
    tracing::error!(uid = review.request.uid, "{message}");
    let message = format!("palisade: {message}");
    log(state, start, error_record(&review.request.uid, &message)).await;
    json(&review.failure(&message, state.config.failure_mode == FailureMode::Ignore))
}

/// [`failed`] once the review has moved into the evaluation task: answered in v1.
async fn failed_uid(state: &State, start: Instant, uid: &str, message: &str) -> Response {
    Metrics::count(&state.metrics.requests, "error");
    tracing::error!(uid, "{message}");
    let message = format!("palisade: {message}");
    log(state, start, error_record(uid, &message)).await;
    json(&failure_review(None, uid, &message, state.config.failure_mode == FailureMode::Ignore))
}

fn decision_record(loaded: &Loaded, review: &Review, decision: &Decision, latency: Duration) -> Record {
    Record {
        time: jiff::Timestamp::now().to_string(),
        uid: review.request.uid.clone(),
        user: review.request.user_info.username.clone().unwrap_or_default(),
        operation: format!("{:?}", review.request.operation).to_uppercase(),
        object: review.input.object_ref().to_string(),
        bundles: loaded.engine.bundle_refs().to_vec(),
        policies: decision.evaluated.iter().map(|e| format!("{}/{}", e.bundle, e.policy)).collect(),
        result: if decision.allowed { "allowed" } else { "denied" }.into(),
        denied_by: decision
            .denials()
            .map(|v| v.policy.clone())
            .chain(decision.failing_errors().map(|e| e.policy.clone()))
            .collect(),
        warned_by: decision.warnings.iter().map(|w| w.policy.clone()).collect(),
        skipped: decision.skipped.iter().map(|s| format!("{}/{}: {}", s.bundle, s.policy, s.reason)).collect(),
        waived: decision.waived.iter().map(|w| format!("{}: {}", w.violation.policy, w.exception.name)).collect(),
        expired_exceptions: decision
            .violations
            .iter()
            .chain(&decision.warnings)
            .filter_map(|v| {
                v.expired_exception.as_ref().map(|e| format!("{}: {} (expired {})", v.policy, e.name, e.expires))
            })
            .collect(),
        latency_us: latency.as_micros() as u64,
        error: None,
        lost: 0,
    }
}

fn error_record(uid: &str, message: &str) -> Record {
    Record {
        time: jiff::Timestamp::now().to_string(),
        uid: uid.to_string(),
        user: String::new(),
        operation: String::new(),
        object: String::new(),
        bundles: Vec::new(),
        policies: Vec::new(),
        result: "error".into(),
        denied_by: Vec::new(),
        warned_by: Vec::new(),
        skipped: Vec::new(),
        waived: Vec::new(),
        expired_exceptions: Vec::new(),
        latency_us: 0,
        error: Some(message.to_string()),
        lost: 0,
    }
}

/// Queues a record for the decision log, waiting for room at most until the
/// request's deadline.
async fn log(state: &State, start: Instant, record: Record) {
    let Some(log) = state.log.load_full() else { return };
    let budget = state.config.evaluation_deadline.saturating_sub(start.elapsed());
    if log.send_timeout(record, budget).await.is_err() {
        state.metrics.decision_log_dropped.inc();
        tracing::error!("decision log queue full past the deadline; a decision was not logged");
    }
}

fn observe(state: &State, decision: &Decision) {
    for e in &decision.evaluated {
        state
            .metrics
            .policy_seconds
            .get_or_create(&PolicyLabel { bundle: e.bundle.clone(), policy: e.policy.clone() })
            .observe(e.duration_us as f64 / 1e6);
    }
    for s in &decision.skipped {
        state
            .metrics
            .policy_skipped
            .get_or_create(&PolicyLabel { bundle: s.bundle.clone(), policy: s.policy.clone() })
            .inc();
    }
    for e in &decision.errors {
        let kind = serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        state
            .metrics
            .policy_errors
            .get_or_create(&PolicyErrorLabel { bundle: e.bundle.clone(), policy: e.policy.clone(), kind })
            .inc();
    }
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    let last_error = state.last_reload_error.lock().ok().and_then(|e| e.clone());
    #[cfg(feature = "cluster")]
    let inventory = match state.live.as_ref().map(|l| l.readiness()) {
        Some(Err(why)) => return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
        Some(Ok(detail)) => Some(detail),
        None => None,
    };
    #[cfg(not(feature = "cluster"))]
    let inventory: Option<String> = None;
    match state.engine.load_full() {
        Some(loaded) => {
            let mut body = format!("ready: revision {}: {}\n", loaded.revision, loaded.engine.bundle_refs().join(", "));
            if let Some(i) = inventory {
                body.push_str(&format!("{i}\n"));
            }
            if let Some(e) = last_error {
                body.push_str(&format!("last reload failed (still serving revision {}): {e}\n", loaded.revision));
            }
            (StatusCode::OK, body).into_response()
        }
        None => {
            let detail = last_error.map(|e| format!(": {e}")).unwrap_or_else(|| ": loading".into());
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: no bundle set loaded{detail}\n")).into_response()
        }
    }
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    let (active, expired) =
        state.engine.load().as_ref().and_then(|l| l.engine.exceptions().map(|e| e.counts())).unwrap_or((0, 0));
    state.metrics.exceptions_active.set(active as i64);
    state.metrics.exceptions_expired.set(expired as i64);
    #[cfg(feature = "cluster")]
    if let Some(live) = &state.live {
        live.observe(&state.metrics);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}
