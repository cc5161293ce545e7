//! HTTP routes: `POST /validate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::State;
use super::metrics::{Metrics, PolicyErrorLabel, PolicyLabel};
use crate::admission::{Review, failure_review};
use crate::decision::{Decision, FailureMode};
use crate::decision_log::Record;

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state)
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the response: {e}\n")).into_response(),
    }
}

/// An AdmissionReview answering a request that could not be evaluated, per the
/// server's failure mode.
fn failed(state: &State, uid: &str, message: &str) -> Response {
    Metrics::count(&state.metrics.requests, "error");
    tracing::error!(uid, "{message}");
    json(&failure_review(uid, &format!("palisade: {message}"), state.config.failure_mode == FailureMode::Ignore))
}

async fn validate(Extract(state): Extract<Arc<State>>, body: Bytes) -> Response {
    let start = Instant::now();
    let review = match Review::parse(&body, false) {
        Ok(r) => r,
        Err(e) => {
            Metrics::count(&state.metrics.requests, "bad_request");
            tracing::warn!("rejected a malformed admission request: {e}");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let uid = review.request.uid.clone();
    let Some(loaded) = state.engine.load_full() else {
        return failed(&state, &uid, "policy bundles are not loaded yet");
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
        Ok(Err(_)) => return failed(&state, &uid, "evaluation failed with an internal error"),
        Err(_) => {
            let message = format!("evaluation exceeded the {} ms deadline", deadline.as_millis());
            return failed(&state, &uid, &message);
        }
    };
    let latency = start.elapsed();
    observe(&state, &decision);
    Metrics::count(&state.metrics.requests, if decision.allowed { "allowed" } else { "denied" });
    state.metrics.request_seconds.observe(latency.as_secs_f64());
    let response = review.respond(&decision);
    let object = review.input.object_ref().to_string();
    let user = review.request.user_info.username.clone().unwrap_or_default();
    let operation = format!("{:?}", review.request.operation).to_uppercase();
    if decision.allowed {
        tracing::debug!(
            uid,
            user,
            operation,
            object,
            result = "allowed",
            latency_us = latency.as_micros() as u64,
            "admission decision"
        );
    } else {
        tracing::info!(uid, user, operation, object, result = "denied", denied_by = ?decision.denials().map(|v| &v.policy).collect::<Vec<_>>(), latency_us = latency.as_micros() as u64, "admission decision");
    }
    if let Some(log) = state.log.load_full() {
        let record = Record {
            time: jiff::Timestamp::now().to_string(),
            uid,
            user,
            operation,
            object,
            bundles: loaded.engine.bundles().map(|b| format!("{}@{} ({})", b.name, b.version, b.digest)).collect(),
            policies: decision.evaluated.iter().map(|e| format!("{}/{}", e.bundle, e.policy)).collect(),
            result: if decision.allowed { "allowed" } else { "denied" }.into(),
            denied_by: decision
                .denials()
                .map(|v| v.policy.clone())
                .chain(decision.failing_errors().map(|e| e.policy.clone()))
                .collect(),
            warned_by: decision.warnings.iter().map(|w| w.policy.clone()).collect(),
            skipped: decision.skipped.iter().map(|s| format!("{}/{}: {}", s.bundle, s.policy, s.reason)).collect(),
            latency_us: latency.as_micros() as u64,
        };
        // Wait for room in the queue at most until the request's deadline.
        let budget = deadline.saturating_sub(start.elapsed());
        if log.send_timeout(record, budget).await.is_err() {
            state.metrics.decision_log_dropped.inc();
            tracing::error!("decision log queue full past the deadline; a decision was not logged");
        }
    }
    json(&response)
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
    match state.engine.load_full() {
        Some(loaded) => {
            let bundles: Vec<String> =
                loaded.engine.bundles().map(|b| format!("{}@{} ({})", b.name, b.version, b.digest)).collect();
            let mut body = format!("ready: revision {}: {}\n", loaded.revision, bundles.join(", "));
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
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}
