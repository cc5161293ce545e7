//! Loading bundle sets off the request path and swapping them in atomically, and
//! watching bundle directories and the TLS files for changes (debounced).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::metrics::{BundleLabel, Metrics};
use super::tls::CertStore;
use super::{Loaded, State};
use crate::error::{Error, Result};

/// File watchers; dropping them stops watching.
pub(crate) struct Watchers {
    _bundles: Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>,
    _tls: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watchers")
    }
}

/// Loads and compiles a new bundle set; swaps it in on success, keeps the last good
/// set (and records why) on failure.
pub(crate) fn reload(state: &State) {
    let started = std::time::Instant::now();
    let revision = state.engine.load().as_ref().map_or(1, |l| l.revision + 1);
    let loaded = (state.loader)().map(|engine| Loaded { engine, revision });
    // With a live inventory, the set serves with the cluster's current objects.
    #[cfg(feature = "cluster")]
    let loaded = match &state.live {
        Some(live) => loaded.and_then(|l| live.attach(l)),
        None => loaded,
    };
    match loaded {
        Ok(loaded) => {
            let engine = &loaded.engine;
            state.metrics.bundle_info.clear();
            for b in engine.bundles() {
                state
                    .metrics
                    .bundle_info
                    .get_or_create(&BundleLabel {
                        name: b.name.clone(),
                        version: b.version.clone(),
                        digest: b.digest.clone(),
                    })
                    .set(1);
            }
            let bundles: Vec<String> = engine.bundles().map(|b| format!("{}@{}", b.name, b.version)).collect();
            for (e, days) in engine.exceptions().map(|x| x.expiring()).unwrap_or_default() {
                tracing::warn!(exception = %e.name, expires = %e.expires, days_left = days, "exception expires soon");
            }
            state.engine.store(Some(Arc::new(loaded)));
            state.metrics.revision.set(revision as i64);
            Metrics::count(&state.metrics.reloads, "success");
            if let Ok(mut e) = state.last_reload_error.lock() {
                *e = None;
            }
            tracing::info!(revision, bundles = ?bundles, took_ms = started.elapsed().as_millis() as u64, "bundles loaded");
        }
        Err(e) => {
            Metrics::count(&state.metrics.reloads, "failure");
            let message = format!("{e}");
            let serving = state.engine.load().as_ref().map(|l| l.revision);
            tracing::error!(error = %message, serving_revision = ?serving, "bundle load failed; the last good set keeps serving");
            if let Ok(mut last) = state.last_reload_error.lock() {
                *last = Some(message);
            }
        }
    }
}

/// Checks `poll`'s fingerprint every `poll.every` (the first check at start sets the
/// baseline) and reloads when it changed.
pub(crate) fn spawn_poll(state: &Arc<State>, poll: super::BundlePoll) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        let mut tick = tokio::time::interval(poll.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let check = poll.fingerprint.clone();
            let now = match tokio::task::spawn_blocking(move || check()).await {
                Ok(Ok(now)) => now,
                Ok(Err(e)) => {
                    Metrics::count(&state.metrics.reloads, "poll_failure");
                    tracing::warn!(error = %e, "bundle poll failed; the serving set stays");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "bundle poll did not finish");
                    continue;
                }
            };
            if last.as_ref().is_some_and(|l| *l != now) {
                tracing::info!(now = %now, "bundle source changed; reloading");
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || reload(&s)).await;
            }
            last = Some(now);
        }
    })
}

fn debouncer(
    debounce: Duration,
    what: &'static str,
    relevant: impl Fn(&std::path::Path) -> bool + Send + 'static,
    on_change: impl Fn() + Send + 'static,
) -> Result<Debouncer<notify::RecommendedWatcher, RecommendedCache>> {
    new_debouncer(debounce, None, move |res: DebounceEventResult| match res {
        Ok(events) => {
            // Reading the files (our own reload among others) raises access events: ignore them.
            let changed = events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Access(_)))
                .any(|e| e.paths.iter().any(|p| relevant(p)));
            if changed {
                on_change();
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!("watching {what} failed: {e}");
            }
        }
    })
    .map_err(|e| Error::input(what, format!("cannot watch for changes: {e}")))
}

/// Starts the watchers: bundle directories (recursive) and the TLS files' directories.
pub(crate) fn watch(state: &Arc<State>, certs: Arc<CertStore>) -> Result<Watchers> {
    let bundles = if state.config.watch.is_empty() {
        None
    } else {
        let s = state.clone();
        let mut d = debouncer(
            state.config.reload_debounce,
            "bundles",
            |_| true,
            move || {
                tracing::info!("bundle files changed; reloading");
                reload(&s);
            },
        )?;
        for dir in &state.config.watch {
            d.watch(dir, RecursiveMode::Recursive)
                .map_err(|e| Error::input(dir.display().to_string(), format!("cannot watch: {e}")))?;
        }
        Some(d)
    };
    let s = state.clone();
    let store = certs.clone();
    let relevant = certs.watched_files();
    let is_relevant = move |path: &std::path::Path| {
        // The files themselves, or the kubelet's `..data` symlink swap of a Secret volume.
        relevant.iter().any(|f| f == path) || path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".."))
    };
    let mut tls = debouncer(state.config.reload_debounce, "TLS files", is_relevant, move || match store.reload() {
        Ok(false) => {}
        Ok(true) => {
            Metrics::count(&s.metrics.tls_reloads, "success");
            tracing::info!("TLS certificate and key reloaded");
        }
        Err(e) => {
            Metrics::count(&s.metrics.tls_reloads, "failure");
            tracing::error!(error = %e, "new TLS certificate or key rejected; keeping the current pair");
        }
    })?;
    let dirs: Vec<PathBuf> = certs.watch_dirs();
    for dir in &dirs {
        tls.watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| Error::input(dir.display().to_string(), format!("cannot watch: {e}")))?;
    }
    Ok(Watchers { _bundles: bundles, _tls: tls })
}
